-- The bench table for PostgreSQL, generated on the server.
--
--   psql -X -v ON_ERROR_STOP=1 -v rows=1000000 -d "$DBPIPE_PG_DSN" -f sql/bench/postgres.sql
--
-- Row g (1..rows) holds values computed from g alone, with the same formulas
-- as sql/bench/mysql.sql, so both servers hold the same logical table. Some
-- rows have NULLs; note sometimes holds a comma, quotes, a newline or an
-- empty string.

\if :{?rows}
\else
\set rows 1000000
\endif

SET client_encoding = 'UTF8';
SET client_min_messages = warning;

DROP TABLE IF EXISTS bench;

CREATE TABLE bench (
    id         bigint NOT NULL,
    qty        integer,
    amount     numeric(12,2),
    ratio      double precision,
    flag       boolean,
    code       varchar(16) NOT NULL,
    note       text,
    created_at timestamp,
    day        date
);

INSERT INTO bench (id, qty, amount, ratio, flag, code, note, created_at, day)
SELECT g,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (g * 7919) % 100000 - 50000 END,
       CASE WHEN g % 19 = 0 THEN NULL ELSE ((g * 104729) % 100000000)::numeric / 100 END,
       CASE WHEN g % 23 = 0 THEN NULL ELSE g::double precision / 7 END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE g % 3 = 0 END,
       'c' || lpad((g % 100000)::text, 5, '0'),
       CASE WHEN g % 1000 = 3 THEN 'line one' || chr(10) || 'line two'
            WHEN g % 10 = 0 THEN 'say "hi", friend'
            WHEN g % 10 = 5 THEN 'it''s, fine'
            WHEN g % 10 = 7 THEN NULL
            WHEN g % 10 = 8 THEN 'café ☕ ' || g
            WHEN g % 10 = 9 THEN ''
            ELSE 'note ' || g
       END,
       CASE WHEN g % 29 = 0 THEN NULL
            ELSE timestamp '2024-01-01 00:00:00' + (g * 37) * interval '1 second' END,
       CASE WHEN g % 31 = 0 THEN NULL ELSE date '2020-01-01' + (g % 3650)::integer END
FROM generate_series(1::bigint, :rows::bigint) AS g;

ALTER TABLE bench ADD PRIMARY KEY (id);
ANALYZE bench;
