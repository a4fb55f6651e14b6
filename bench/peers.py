#!/usr/bin/env python3
"""The Python peers dbpipe's benchmarks compare against: asyncpg and aiomysql.

Each subcommand does what a user who picked asyncpg or aiomysql instead of
dbpipe would write, in the plainest idiomatic form, and prints one line of
key=value pairs on stdout. bench/run times the whole process from outside,
as it does for every other program, so interpreter start-up is included for
the peers just as process start-up is included for dbpipe and psql.

  peers.py pg-copy   DSN QUERY OUT     asyncpg copy_from_query(), CSV + header
  peers.py pg-fetch  DSN QUERY OUT     asyncpg cursor, rows through csv.writer
  peers.py my-fetch  DSN QUERY OUT     aiomysql SSCursor, rows through csv.writer
  peers.py pg-points DSN --clients N --pool P --seconds S --sql SQL --ids K
  peers.py my-points DSN --clients N --pool P --seconds S --sql SQL --ids K

The *-points commands run N tasks over a pool of P connections; each task
runs the point query with a random key in 1..K, acquiring a connection from
the pool for every query, and the command prints
`qps=... p50_us=... p99_us=... errors=...` like `dbpipe-bench queries`.
"""

import argparse
import asyncio
import csv
import random
import sys
import time
import urllib.parse

import asyncpg
import aiomysql

# Rows handed over per round trip when streaming: large enough that the
# per-batch overhead vanishes, small enough to keep memory flat.
FETCH_BATCH = 10000


def mysql_params(dsn):
    """Splits a mysql:// or mariadb:// URL into aiomysql's keyword arguments."""
    u = urllib.parse.urlsplit(dsn)
    if u.scheme not in ("mysql", "mariadb"):
        sys.exit(f"peers.py: not a MySQL DSN: {u.scheme}://...")
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 3306,
        "user": urllib.parse.unquote(u.username or ""),
        "password": urllib.parse.unquote(u.password or ""),
        "db": urllib.parse.unquote(u.path.lstrip("/")) or None,
        "charset": "utf8mb4",
        "autocommit": True,
    }


async def pg_copy(dsn, query, out):
    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.copy_from_query(query, output=out, format="csv", header=True)
    finally:
        await conn.close()
    print(f"status={status.replace(' ', '_')}")


async def pg_fetch(dsn, query, out):
    conn = await asyncpg.connect(dsn)
    rows = 0
    try:
        with open(out, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            async with conn.transaction():
                cur = conn.cursor(query, prefetch=FETCH_BATCH)
                header = None
                async for rec in cur:
                    if header is None:
                        header = list(rec.keys())
                        w.writerow(header)
                    w.writerow(rec.values())
                    rows += 1
    finally:
        await conn.close()
    print(f"rows={rows}")


async def my_fetch(dsn, query, out):
    conn = await aiomysql.connect(**mysql_params(dsn))
    rows = 0
    try:
        with open(out, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            async with conn.cursor(aiomysql.SSCursor) as cur:
                await cur.execute(query)
                w.writerow([d[0] for d in cur.description])
                while True:
                    batch = await cur.fetchmany(FETCH_BATCH)
                    if not batch:
                        break
                    w.writerows(batch)
                    rows += len(batch)
    finally:
        conn.close()
    print(f"rows={rows}")


def percentile(sorted_us, q):
    if not sorted_us:
        return 0
    i = min(len(sorted_us) - 1, int(q * len(sorted_us)))
    return sorted_us[i]


async def run_points(acquire_and_query, args):
    """Runs args.clients tasks until args.seconds have passed; returns the
    latencies (microseconds) of the queries that finished in time, the
    number of failed ones and the measured seconds."""
    lat = []
    errors = 0
    warm = 0
    all_warm = asyncio.Event()
    start = asyncio.Event()
    stop = False

    async def client(seed):
        nonlocal errors, warm
        rnd = random.Random(seed)
        # One untimed query first, so that every pooled connection is open
        # before the clock starts.
        try:
            await acquire_and_query(rnd.randint(1, args.ids))
        except Exception as e:
            print(f"peers.py: {e}", file=sys.stderr)
            errors += 1
        warm += 1
        if warm == args.clients:
            all_warm.set()
        await start.wait()
        while not stop:
            key = rnd.randint(1, args.ids)
            t0 = time.perf_counter_ns()
            try:
                await acquire_and_query(key)
            except Exception as e:  # counted, the run goes on
                if errors == 0:
                    print(f"peers.py: {e}", file=sys.stderr)
                errors += 1
                continue
            if not stop:
                lat.append((time.perf_counter_ns() - t0) // 1000)

    tasks = [asyncio.create_task(client(i + 1)) for i in range(args.clients)]
    await all_warm.wait()
    t0 = time.perf_counter()
    start.set()
    await asyncio.sleep(args.seconds)
    stop = True
    elapsed = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    return lat, errors, elapsed


def report(lat, errors, elapsed, args):
    lat.sort()
    qps = len(lat) / elapsed if elapsed > 0 else 0.0
    print(f"qps={qps:.0f} p50_us={percentile(lat, 0.50)} p99_us={percentile(lat, 0.99)} "
          f"clients={args.clients} pool={args.pool} seconds={args.seconds} errors={errors}")


async def pg_points(args):
    pool = await asyncpg.create_pool(args.dsn, min_size=args.pool, max_size=args.pool)

    async def one(key):
        async with pool.acquire() as conn:
            await conn.fetchval(args.sql, key)

    try:
        lat, errors, elapsed = await run_points(one, args)
    finally:
        await pool.close()
    report(lat, errors, elapsed, args)


async def my_points(args):
    pool = await aiomysql.create_pool(minsize=args.pool, maxsize=args.pool, **mysql_params(args.dsn))

    async def one(key):
        async with pool.acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute(args.sql, (key,))
                await cur.fetchall()

    try:
        lat, errors, elapsed = await run_points(one, args)
    finally:
        pool.close()
        await pool.wait_closed()
    report(lat, errors, elapsed, args)


def main():
    ap = argparse.ArgumentParser(prog="peers.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("pg-copy", "pg-fetch", "my-fetch"):
        p = sub.add_parser(name)
        p.add_argument("dsn")
        p.add_argument("query")
        p.add_argument("out")
    for name, sql in (("pg-points", "SELECT abalance FROM pgbench_accounts WHERE aid = $1"),
                      ("my-points", "SELECT c FROM sbtest1 WHERE id = %s")):
        p = sub.add_parser(name)
        p.add_argument("dsn")
        p.add_argument("--clients", type=int, default=16)
        p.add_argument("--pool", type=int, default=4)
        p.add_argument("--seconds", type=float, default=10)
        p.add_argument("--sql", default=sql)
        p.add_argument("--ids", type=int, default=100000, help="keys are 1..IDS")
    args = ap.parse_args()

    if args.cmd == "pg-copy":
        asyncio.run(pg_copy(args.dsn, args.query, args.out))
    elif args.cmd == "pg-fetch":
        asyncio.run(pg_fetch(args.dsn, args.query, args.out))
    elif args.cmd == "my-fetch":
        asyncio.run(my_fetch(args.dsn, args.query, args.out))
    elif args.cmd == "pg-points":
        asyncio.run(pg_points(args))
    else:
        asyncio.run(my_points(args))


if __name__ == "__main__":
    main()
