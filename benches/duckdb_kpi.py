"""DuckDB computes arstream's KPI summary from the raw change feed, with plain SQL.

The comparison point of `arstream bench kpi`: each entity's current state is deduplicated from
the feed with a window function (latest `_seq` per key, deletes dropped), then the very same
views as arstream's (`queries/*.sql`) run on top, with the same `params` table.

The tables arstream's models make (`src/engine/derived.rs`) are created empty, so that the
views over them resolve; DuckDB cannot run the models, so the forecast's backtest
(`forecast_accuracy`, which `kpi_summary` reads) is given as arstream stored it, when a file
is named.

    python3 benches/duckdb_kpi.py FEED AS_OF WINDOW_DAYS QUERIES_DIR [FORECAST_ACCURACY.parquet]

Prints one JSON object: seconds, peak memory and the kpi_summary row.
"""

import datetime
import decimal
import glob
import json
import os
import resource
import sys
import time

import duckdb

ENTITIES = {
    "customers": "customer_id",
    "invoices": "invoice_id",
    "payments": "payment_id",
    "adjustments": "adjustment_id",
    "disputes": "dispute_id",
    "promises": "promise_id",
    "activities": "activity_id",
    "collectors": "collector_id",
    "fx_rates": "currency, rate_date",
}


# The derived tables' columns, as `src/engine/derived.rs` declares them.
DERIVED = {
    "invoice_scores": "invoice_id VARCHAR, customer_id VARCHAR, probability DOUBLE, "
    "reasons VARCHAR, scored_as_of DATE, late_days INTEGER, scored_by VARCHAR",
    "assignments": "customer_id VARCHAR, collector_id VARCHAR, reason VARCHAR",
    "forecast_invoices": "invoice_id VARCHAR, customer_id VARCHAR, open_amount DOUBLE, "
    "expected_amount DOUBLE, expected_date DATE, basis VARCHAR, currency VARCHAR, "
    "forecast_as_of DATE",
    "forecast_weeks": "week INTEGER, week_start DATE, week_end DATE, expected DOUBLE, "
    "low DOUBLE, high DOUBLE, currency VARCHAR, forecast_as_of DATE",
    "forecast_accuracy": "as_of DATE, forecast_from DATE, wape DOUBLE, wape_due_date DOUBLE, "
    "wape_average_delay DOUBLE, band_coverage DOUBLE, actual_receipts DOUBLE, currency VARCHAR",
    "outreach_opt_outs": "customer_id VARCHAR, reason VARCHAR",
}


def plain(value):
    """A JSON-friendly value: decimals as floats, dates as ISO text."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def main():
    feed, as_of, window, queries = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    accuracy = sys.argv[5] if len(sys.argv) > 5 else None
    started = time.time()
    con = duckdb.connect()
    con.execute("SET threads = 2")
    for entity, key in ENTITIES.items():
        files = os.path.join(feed, entity, "**", "*.parquet")
        con.execute(
            f"""CREATE TABLE {entity} AS
            SELECT * EXCLUDE (_op, _seq, _ts, latest) FROM (
                SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY _seq DESC) AS latest
                FROM read_parquet('{files}', union_by_name = true)
            ) WHERE latest = 1 AND _op <> 'd'"""
        )
    loaded = time.time()
    con.execute(
        f"""CREATE TABLE params AS SELECT DATE '{as_of}' AS as_of, {window} AS window_days,
        DATE '{as_of}' - {window} AS window_start, 'USD' AS currency,
        'USD' AS rates_currency, 3 AS grace_days"""
    )
    con.execute(
        """CREATE TABLE aging_buckets AS SELECT * FROM (VALUES
        ('current', -9223372036854775807 // 2, 0, 0), ('1-30', 1, 30, 1), ('31-60', 31, 60, 2),
        ('61-90', 61, 90, 3), ('91-120', 91, 120, 4), ('121+', 121, NULL, 5))
        AS t(bucket, min_days, max_days, ord)"""
    )
    for table, columns in DERIVED.items():
        con.execute(f"CREATE TABLE {table} ({columns})")
    if accuracy:
        con.execute(f"INSERT INTO forecast_accuracy SELECT * FROM read_parquet('{accuracy}')")
    pending = sorted(glob.glob(os.path.join(queries, "*.sql")))
    while pending:
        failed = []
        for path in pending:
            try:
                con.execute(open(path).read())
            except duckdb.Error:
                failed.append(path)
        if len(failed) == len(pending):
            # Views the summary does not read may use what only arstream has (its functions).
            if os.path.join(queries, "kpi_summary.sql") in failed:
                raise SystemExit(f"views that do not resolve in DuckDB: {failed}")
            print(f"not made in DuckDB (kpi_summary does not read them): {failed}", file=sys.stderr)
            break
        pending = failed
    cursor = con.execute("SELECT * FROM kpi_summary")
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    finished = time.time()
    summary = {n: plain(v) for n, v in zip(names, row)}
    print(json.dumps({
        "seconds": finished - started,
        "load_seconds": loaded - started,
        "summary_seconds": finished - loaded,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "summary": summary,
    }))


if __name__ == "__main__":
    main()
