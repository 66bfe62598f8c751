"""Load on `arstream serve` from CLIENTS connections at once, each running SQL again and
again for SECONDS: prints one JSON object with the latencies (p50, p99, max, in ms, each
from sending the query to its last row received) and the queries per second over all.

Usage: sql_load.py HOST PORT CLIENTS SECONDS SQL
"""
import json
import sys
import threading
import time

import psycopg

host, port, clients, seconds, sql = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                     float(sys.argv[4]), sys.argv[5])
latencies = []
rows = []
errors = []
lock = threading.Lock()
start = threading.Barrier(clients + 1)


def client():
    with psycopg.connect(host=host, port=port, user="arstream", dbname="arstream",
                         autocommit=True) as conn:
        mine = []
        start.wait()
        until = time.monotonic() + seconds
        got = []
        while True:  # at least once
            t = time.perf_counter()
            try:
                got = conn.execute(sql).fetchall()
            except psycopg.Error as e:
                with lock:
                    errors.append(str(e))
                if time.monotonic() >= until:
                    break
                continue
            mine.append((time.perf_counter() - t) * 1000)
            if time.monotonic() >= until:
                break
        with lock:
            latencies.extend(mine)
            rows.append(len(got))


threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
start.wait()
began = time.monotonic()
for t in threads:
    t.join()
wall = time.monotonic() - began
latencies.sort()


def pct(p):
    return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None


print(json.dumps({"clients": clients, "queries": len(latencies), "errors": len(errors),
                  "first_error": errors[0] if errors else None, "rows": max(rows, default=0),
                  "p50_ms": pct(0.50), "p99_ms": pct(0.99),
                  "max_ms": latencies[-1] if latencies else None,
                  "qps": len(latencies) / wall}))
