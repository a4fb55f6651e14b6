-- The bench table for MariaDB, generated on the server (sequence engine).
--
--   { echo 'SET @rows = 1000000;'; cat sql/bench/mysql.sql; } | mariadb ... shop
--
-- Row g (1..@rows) holds values computed from g alone, with the same formulas
-- as sql/bench/postgres.sql, so both servers hold the same logical table.

SET NAMES utf8mb4;
SET time_zone = '+00:00';
SET @rows = COALESCE(@rows, 1000000);

DROP TABLE IF EXISTS bench;

CREATE TABLE bench (
    id         BIGINT NOT NULL,
    qty        INT,
    amount     DECIMAL(12,2),
    ratio      DOUBLE,
    flag       BOOLEAN,
    code       VARCHAR(16) NOT NULL,
    note       TEXT,
    created_at DATETIME,
    day        DATE,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- seq is unsigned; g is made signed so that "- 50000" may go below zero.
-- Rows arrive in key order, so filling the table with its primary key
-- already in place is cheap.
INSERT INTO bench (id, qty, amount, ratio, flag, code, note, created_at, day)
SELECT g,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (g * 7919) % 100000 - 50000 END,
       CASE WHEN g % 19 = 0 THEN NULL ELSE ((g * 104729) % 100000000) / 100 END,
       CASE WHEN g % 23 = 0 THEN NULL ELSE CAST(g AS DOUBLE) / 7 END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE g % 3 = 0 END,
       CONCAT('c', LPAD(g % 100000, 5, '0')),
       CASE WHEN g % 1000 = 3 THEN CONCAT('line one', CHAR(10 USING utf8mb4), 'line two')
            WHEN g % 10 = 0 THEN 'say "hi", friend'
            WHEN g % 10 = 5 THEN 'it''s, fine'
            WHEN g % 10 = 7 THEN NULL
            WHEN g % 10 = 8 THEN CONCAT('café ☕ ', g)
            WHEN g % 10 = 9 THEN ''
            ELSE CONCAT('note ', g)
       END,
       CASE WHEN g % 29 = 0 THEN NULL
            ELSE TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (g * 37) SECOND END,
       CASE WHEN g % 31 = 0 THEN NULL ELSE DATE '2020-01-01' + INTERVAL (g % 3650) DAY END
FROM (SELECT CAST(seq AS SIGNED) AS g
      FROM seq_1_to_1000000000000
      WHERE seq <= @rows) AS s;

ANALYZE TABLE bench;
