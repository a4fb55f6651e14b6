/* Format and compression names, from file names and from strings; the
 * numbered names of split exports. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "dbpipe/export.h"
#include "export/export_int.h"

static void expect_path(const char *path, dbp_format f, dbp_compression c) {
  dbp_format gf;
  dbp_compression gc;
  dbp_format_from_path(path, &gf, &gc);
  cr_expect_eq(gf, f, "%s: format %s", path, dbp_format_name(gf));
  cr_expect_eq(gc, c, "%s: compression %s", path, dbp_compression_name(gc));
}

Test(encode_format, from_path) {
  expect_path("out.csv", DBP_FMT_CSV, DBP_COMP_NONE);
  expect_path("out.tsv", DBP_FMT_TSV, DBP_COMP_NONE);
  expect_path("out.jsonl", DBP_FMT_JSONL, DBP_COMP_NONE);
  expect_path("dir.x/out.jsonl.zst", DBP_FMT_JSONL, DBP_COMP_ZSTD);
  expect_path("/a/b/out.csv.gz", DBP_FMT_CSV, DBP_COMP_GZIP);
  expect_path("OUT.TSV.GZ", DBP_FMT_TSV, DBP_COMP_GZIP);
  expect_path("out.ndjson", DBP_FMT_JSONL, DBP_COMP_NONE);
  expect_path("out.txt", DBP_FMT_CSV, DBP_COMP_NONE);
  expect_path("out", DBP_FMT_CSV, DBP_COMP_NONE);
  expect_path("out.gz", DBP_FMT_CSV, DBP_COMP_GZIP);
  expect_path("dir.tsv/out", DBP_FMT_CSV, DBP_COMP_NONE);
  expect_path(".gz", DBP_FMT_CSV, DBP_COMP_NONE);
  dbp_format_from_path("x.tsv", NULL, NULL); /* either pointer may be NULL */
}

/* detect says only what the name says: AUTO for the rest. */
Test(encode_format, detect_leaves_unknown_auto) {
  dbp_format f;
  dbp_compression c;
  dbp_format_detect("out.txt", &f, &c);
  cr_expect_eq(f, DBP_FMT_AUTO);
  cr_expect_eq(c, DBP_COMP_AUTO);
  dbp_format_detect("out.gz", &f, &c);
  cr_expect_eq(f, DBP_FMT_AUTO);
  cr_expect_eq(c, DBP_COMP_GZIP);
  dbp_format_detect("a/out.JSONL", &f, &c);
  cr_expect_eq(f, DBP_FMT_JSONL);
  cr_expect_eq(c, DBP_COMP_AUTO);
  dbp_format_detect("out.tsv.zst", &f, &c);
  cr_expect_eq(f, DBP_FMT_TSV);
  cr_expect_eq(c, DBP_COMP_ZSTD);
}

Test(encode_format, parse_and_names) {
  dbp_format f;
  dbp_compression c;
  cr_expect_eq(dbp_format_parse("csv", &f), 0);
  cr_expect_eq(f, DBP_FMT_CSV);
  cr_expect_eq(dbp_format_parse("TSV", &f), 0);
  cr_expect_eq(f, DBP_FMT_TSV);
  cr_expect_eq(dbp_format_parse("jsonl", &f), 0);
  cr_expect_eq(f, DBP_FMT_JSONL);
  cr_expect_eq(dbp_format_parse("xml", &f), DBP_EFORMAT);
  cr_expect_eq(dbp_compression_parse("none", &c), 0);
  cr_expect_eq(c, DBP_COMP_NONE);
  cr_expect_eq(dbp_compression_parse("gz", &c), 0);
  cr_expect_eq(c, DBP_COMP_GZIP);
  cr_expect_eq(dbp_compression_parse("gzip", &c), 0);
  cr_expect_eq(c, DBP_COMP_GZIP);
  cr_expect_eq(dbp_compression_parse("zstd", &c), 0);
  cr_expect_eq(c, DBP_COMP_ZSTD);
  cr_expect_eq(dbp_compression_parse("zst", &c), 0);
  cr_expect_eq(c, DBP_COMP_ZSTD);
  cr_expect_eq(dbp_compression_parse("bz2", &c), DBP_EFORMAT);
  cr_expect_eq(dbp_format_parse(NULL, &f), DBP_EINVAL);
  cr_expect_str_eq(dbp_format_name(DBP_FMT_JSONL), "jsonl");
  cr_expect_str_eq(dbp_compression_name(DBP_COMP_ZSTD), "zstd");
}

static void expect_part(const char *path, unsigned i, const char *want) {
  char *got = dbp__part_path(path, i);
  cr_assert_not_null(got);
  cr_expect_str_eq(got, want);
  free(got);
}

Test(encode_format, part_names_number_before_the_extensions) {
  expect_part("out.csv.gz", 1, "out-00001.csv.gz");
  expect_part("dir/out.jsonl.zst", 12, "dir/out-00012.jsonl.zst");
  expect_part("out.tsv", 99999, "out-99999.tsv");
  expect_part("out.tsv", 100000, "out-100000.tsv");
  expect_part("a.b/out", 3, "a.b/out-00003");
  expect_part("data.txt.gz", 2, "data-00002.txt.gz");
  expect_part("/x/.hidden", 1, "/x/.hidden-00001");
}

Test(encode_format, buffer_grows_and_resets) {
  dbp_buf b = {0};
  for (int i = 0; i < 1000; i++) cr_assert_eq(dbp_buf_append(&b, "0123456789", 10), 0);
  cr_expect_eq(b.len, 10000);
  cr_expect_geq(b.cap, b.len);
  cr_expect(memcmp(b.data + 9990, "0123456789", 10) == 0);
  cr_expect_eq(dbp_buf_reserve(&b, SIZE_MAX), DBP_ENOMEM);
  cr_expect_eq(b.len, 10000);
  dbp_buf_free(&b);
  cr_expect_null(b.data);
  cr_expect_eq(b.len, 0);
}
