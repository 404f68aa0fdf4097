#!/usr/bin/env python3
"""The application during an incident, for scripts/bench: a steady writer against production
while the tool copies, timing every write.

    app_writer.py write --port P --user U --password-file F --table bench --rows N \
        --samples FILE [--rate 200]
    app_writer.py summarize --samples FILE --events EVENTS.json

`write` makes, at --rate per second, autocommit, one of: an UPDATE of a random existing key
(1..N, where the tool's chunks hold their locks), or an INSERT of a new key above the
restored ones, until SIGTERM or SIGINT; each write is one line of FILE: its wall-clock start,
its latency in milliseconds, and 0, or the error code of a lock wait timeout (1205) or a
deadlock (1213). `summarize` prints, for the writes made during the tool's copy step (its
step_started and step_finished events), one JSON line: writes, p50/p99/max latency, timeouts.
"""

import argparse
import datetime
import json
import random
import signal
import sys
import time

import pymysql


def write(args) -> int:
    with open(args.password_file, encoding="utf-8") as f:
        password = f.read().strip()
    conn = pymysql.connect(
        host=args.host,
        port=args.port,
        user=args.user,
        password=password,
        database=args.database,
        autocommit=True,
    )
    stop = False

    def on_signal(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    table = "`" + args.table.replace("`", "``") + "`"
    next_new = args.rows + 1_000_000
    interval = 1.0 / args.rate
    due = time.monotonic()
    with open(args.samples, "w", encoding="utf-8") as out, conn.cursor() as cur:
        while not stop:
            if random.random() < 0.5:
                key = random.randint(1, args.rows)
                sql = f"UPDATE {table} SET amount = amount + 1 WHERE id = %s"
            else:
                next_new += 1
                key = next_new
                sql = (
                    f"INSERT INTO {table} (id, customer_id, amount, currency, created_at) "
                    "VALUES (%s, 1, 1, 'EUR', UTC_TIMESTAMP())"
                )
            wall = time.time()
            started = time.perf_counter()
            code = 0
            try:
                cur.execute(sql, (key,))
            except pymysql.err.OperationalError as e:
                if e.args[0] not in (1205, 1213):
                    raise
                code = e.args[0]
            out.write(f"{wall:.6f} {(time.perf_counter() - started) * 1000.0:.3f} {code}\n")
            due += interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                due = time.monotonic()
    return 0


def epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def summarize(args) -> int:
    start = end = None
    with open(args.events, encoding="utf-8") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("step") == "copy" and e.get("event") == "step_started":
                start = epoch(e["time"])
            if e.get("step") == "copy" and e.get("event") == "step_finished":
                end = epoch(e["time"])
    if start is None or end is None:
        print(json.dumps({"error": "no copy step in the events"}))
        return 1
    latencies, timeouts = [], 0
    with open(args.samples, encoding="utf-8") as f:
        for line in f:
            wall, ms, code = line.split()
            if start <= float(wall) <= end:
                latencies.append(float(ms))
                timeouts += int(code) != 0
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    print(
        json.dumps(
            {
                "writes": len(latencies),
                "p50_ms": round(pct(0.50), 2),
                "p99_ms": round(pct(0.99), 2),
                "max_ms": round(latencies[-1], 2) if latencies else 0.0,
                "timeouts": timeouts,
            }
        )
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--user", required=True)
    w.add_argument("--password-file", required=True)
    w.add_argument("--database", default="shop")
    w.add_argument("--table", required=True)
    w.add_argument("--rows", type=int, required=True)
    w.add_argument("--rate", type=float, default=200.0)
    w.add_argument("--samples", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("--samples", required=True)
    s.add_argument("--events", required=True)
    args = ap.parse_args()
    return write(args) if args.command == "write" else summarize(args)


if __name__ == "__main__":
    sys.exit(main())
