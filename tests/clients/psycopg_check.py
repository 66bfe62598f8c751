"""psycopg 3 against `arstream serve`: what a Python analyst does, each check printed as one
JSON line for tests/sql_server.rs to assert on.

Usage: psycopg_check.py HOST PORT USER PASSWORD
"""
import datetime
import decimal
import json
import sys
import threading
import time

import psycopg

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def connect(pw=password, **kw):
    return psycopg.connect(host=host, port=port, user=user, password=pw, dbname="arstream",
                           connect_timeout=10, **kw)


def emit(check, **fields):
    print(json.dumps({"check": check, **fields}, default=str), flush=True)


# A wrong password is refused.
try:
    connect(pw=password + "-wrong").close()
    emit("wrong_password", refused=False)
except psycopg.OperationalError as e:
    emit("wrong_password", refused=True, message=str(e).strip().splitlines()[-1])

with connect(autocommit=True) as conn:
    # The totals, typed: money as Decimal, the as-of date as a date.
    row = conn.execute("SELECT total_ar, as_of FROM kpi_summary").fetchone()
    emit("totals", total_ar=str(row[0]), total_ar_type=type(row[0]).__name__,
         as_of=str(row[1]), as_of_type=type(row[1]).__name__)

    # A server-side prepared statement with parameters, run several times.
    sql = ("SELECT invoice_id, open_amount, due_date FROM open_items "
           "WHERE open_amount > %s AND due_date <= %s ORDER BY open_amount DESC, invoice_id LIMIT 3")
    rows = None
    for _ in range(3):
        rows = conn.execute(sql, (decimal.Decimal("10.00"), datetime.date(2030, 1, 1)),
                            prepare=True).fetchall()
    emit("prepared", rows=len(rows),
         types=sorted({type(v).__name__ for r in rows for v in r}),
         first_amount=str(rows[0][1]) if rows else None)

    # Writes are refused, with Postgres' read-only code.
    for statement in ["INSERT INTO invoices (invoice_id) VALUES ('X')",
                      "DELETE FROM invoices",
                      "CREATE TABLE t AS SELECT 1",
                      "COPY invoices TO '/tmp/arstream-copy-out.csv'"]:
        try:
            conn.execute(statement)
            emit("write", statement=statement, refused=False)
        except psycopg.Error as e:
            emit("write", statement=statement, refused=True, sqlstate=e.sqlstate)

    # A query over the time limit is stopped with 57014.
    conn.execute("SET statement_timeout = 300")
    started = time.monotonic()
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 3000) a, generate_series(1, 3000) b, "
                     "generate_series(1, 3000) c").fetchone()
        emit("timeout", stopped=False)
    except psycopg.Error as e:
        emit("timeout", stopped=True, sqlstate=e.sqlstate, seconds=time.monotonic() - started)
    conn.execute("SET statement_timeout = 0")

# A cancel from another thread stops a long query.
with connect(autocommit=True) as conn:
    threading.Timer(0.5, conn.cancel).start()
    started = time.monotonic()
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 3000) a, generate_series(1, 3000) b, "
                     "generate_series(1, 3000) c").fetchone()
        emit("cancel", stopped=False)
    except psycopg.Error as e:
        emit("cancel", stopped=True, sqlstate=e.sqlstate, seconds=time.monotonic() - started)
    # The connection is usable after the cancel.
    emit("after_cancel", one=conn.execute("SELECT 1").fetchone()[0])

# Twenty clients at once, while one runs a long query that must not block them.
results = []
lock = threading.Lock()


def client(i):
    with connect(autocommit=True) as c:
        t = time.monotonic()
        v = c.execute("SELECT count(*) FROM open_items").fetchone()[0]
        with lock:
            results.append((v, time.monotonic() - t))


def slow():
    with connect(autocommit=True) as c:
        c.execute("SET statement_timeout = 8000")
        try:
            c.execute("SELECT count(*) FROM generate_series(1, 3000) a, generate_series(1, 3000) b, "
                      "generate_series(1, 3000) c").fetchone()
        except psycopg.Error:
            pass


blocker = threading.Thread(target=slow)
blocker.start()
time.sleep(0.3)
threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
started = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
emit("many", clients=len(results), distinct=len({v for v, _ in results}),
     slowest=max(s for _, s in results), wall=time.monotonic() - started)
blocker.join()
