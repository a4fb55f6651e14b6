/* Running a job file from C: a program with its own libuv loop hands it to
 * dbpipe's runtime, loads a job with the public API and runs it through
 * the engine, printing a line for each event.
 *
 *   run_job JOB.yaml      e.g. run_job examples/run_job.yaml
 *
 * Exits 0 when every task was done, 1 otherwise. */
#include <dbpipe.h>
#include <inttypes.h>
#include <stdio.h>

static void on_event(const dbp_run_event *ev, void *ud) {
  (void)ud;
  const char *task = ev->info != NULL ? ev->info->name : "";
  switch (ev->kind) {
    case DBP_RUN_EV_TASK_STARTED:
      printf("%s: started\n", task);
      break;
    case DBP_RUN_EV_TASK_PROGRESS:
      printf("%s: progress %" PRIu64 " rows, %" PRIu64 " bytes, %.0f rows/s\n", task, ev->rows,
             ev->bytes, ev->rows_per_sec);
      break;
    case DBP_RUN_EV_TASK_RETRY:
      printf("%s: attempt %d failed (%s), retrying in %" PRId64 " ms\n", task, ev->attempt,
             ev->message, ev->delay_ms);
      break;
    case DBP_RUN_EV_TASK_FINISHED:
      printf("%s: done %" PRIu64 " rows -> %s\n", task, ev->rows,
             ev->nfiles > 0 ? ev->files[0].path : "(no file)");
      break;
    case DBP_RUN_EV_TASK_FAILED:
      printf("%s: failed: %s\n", task, ev->message);
      break;
    case DBP_RUN_EV_MANIFEST_FAILED:
      printf("manifest %s: %s\n", ev->path, ev->message);
      break;
    case DBP_RUN_EV_RUN_FINISHED:
      printf("run %s: %zu of %zu tasks done, %" PRIu64 " rows\n",
             dbp_run_state_name(ev->summary->status), ev->summary->done, ev->summary->ntasks,
             ev->summary->rows);
      break;
    default:
      break;
  }
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: run_job JOB.yaml\n");
    return 2;
  }
  dbp_job *job = NULL;
  dbp_job_diag diag;
  if (dbp_job_load(argv[1], NULL, &job, &diag) != 0) {
    char buf[1024];
    for (size_t i = 0; i < diag.count; i++)
      fprintf(stderr, "%s\n", dbp_job_diag_format(&diag, i, buf, sizeof buf));
    dbp_job_diag_free(&diag);
    return 2;
  }

  /* The loop a service already runs; dbpipe only adds its handles to it. */
  uv_loop_t loop;
  dbp_rt *rt = NULL;
  dbp_run *run = NULL;
  int rc = uv_loop_init(&loop);
  if (rc == 0) rc = dbp_rt_new(&rt, &loop, NULL);
  dbp_run_options opts = {.progress_interval_ms = 250};
  if (rc == 0) rc = dbp_run_new(rt, job, &opts, &run);
  if (rc == 0) rc = dbp_run_subscribe(run, on_event, NULL);
  if (rc == 0) rc = dbp_run_start(run);
  if (rc != 0) {
    fprintf(stderr, "run_job: %s\n", dbp_strerror(rc));
  } else {
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  int ok = run != NULL && dbp_run_status(run) == DBP_RUN_OK;
  dbp_run_free(run);
  if (rt != NULL) dbp_rt_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT); /* the runtime's close callbacks */
  uv_loop_close(&loop);
  dbp_job_free(job);
  return ok ? 0 : 1;
}
