"""SQLAlchemy 2 (postgresql+psycopg) and pandas against `arstream serve`: what a notebook does,
each check printed as one JSON line (like psycopg_check.py) for tests/sql_server.rs to assert on.

Usage: pandas_check.py HOST PORT USER PASSWORD

A check that fails prints {"check": ..., "ok": false, "error": ...} and the script goes on.
SQLAlchemy's own start-up (dialect.initialize: `select pg_catalog.version()`, `select
current_schema()`, `show standard_conforming_strings`, and psycopg's TypeInfo.fetch('hstore') in a
SAVEPOINT) is checked first with a stock engine; the later checks use an engine that works around
what the stock one trips on, so that they test the queries themselves.
"""
import datetime
import decimal
import json
import sys

import pandas
import psycopg
import sqlalchemy as sa

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
URL = sa.URL.create("postgresql+psycopg", username=user, password=password, host=host, port=port,
                    database="arstream")
CONNECT_ARGS = {"connect_timeout": 10}


def emit(check, **fields):
    print(json.dumps({"check": check, **fields}, default=str), flush=True)


def error(e):
    """The driver's error under SQLAlchemy's and pandas' wrappers: its SQLSTATE and first line."""
    orig, seen = e, set()
    while not isinstance(orig, psycopg.Error) and id(orig) not in seen:
        seen.add(id(orig))
        nxt = getattr(orig, "orig", None) or orig.__cause__
        if nxt is None:
            orig = e
            break
        orig = nxt
    return {"sqlstate": getattr(orig, "sqlstate", None),
            "error": f"{type(orig).__name__}: {str(orig).strip().splitlines()[0] if str(orig).strip() else ''}"}


def libpq_version(conn):
    """The server version from the startup ParameterStatus (server_version), as libpq parses it."""
    major, minor = divmod(conn.connection.dbapi_connection.info.server_version, 10000)
    return (major, minor)


def engine(patch_version=False, native_hstore=True):
    e = sa.create_engine(URL, connect_args=CONNECT_ARGS, use_native_hstore=native_hstore,
                         pool_pre_ping=False)
    if patch_version:
        e.dialect._get_server_version_info = libpq_version
    return e


def try_connect(check, e):
    try:
        with e.connect() as c:
            emit(check, ok=True, server_version_info=c.dialect.server_version_info,
                 default_schema=c.dialect.default_schema_name,
                 isolation=c.dialect.default_isolation_level)
            return True
    except Exception as ex:  # noqa: BLE001 - report whatever the stack raises
        emit(check, ok=False, **error(ex))
        return False
    finally:
        e.dispose()


# 1. A stock engine, as `create_engine("postgresql+psycopg://...")` gives a notebook user.
try_connect("connect_stock", engine())
# 2. Past `select pg_catalog.version()` (SQLAlchemy's version regex), still fetching hstore's type
#    info (psycopg TypeInfo.fetch runs inside a transaction, so in a SAVEPOINT).
try_connect("connect_version_patched", engine(patch_version=True))
# 3. Both worked around.
eng = engine(patch_version=True, native_hstore=False)
if not try_connect("connect", eng):
    sys.exit(0)

# The totals into a DataFrame: pandas turns Decimal into float64 unless coerce_float=False.
try:
    df = pandas.read_sql("SELECT total_ar, dso, as_of FROM kpi_summary", eng)
    exact = pandas.read_sql("SELECT total_ar, as_of FROM kpi_summary", eng, coerce_float=False)
    emit("read_sql_kpi", ok=len(df) == 1, rows=len(df),
         dtypes={k: str(v) for k, v in df.dtypes.items()},
         total_ar=df["total_ar"].iloc[0], dso=df["dso"].iloc[0],
         as_of=df["as_of"].iloc[0], as_of_type=type(df["as_of"].iloc[0]).__name__,
         exact_total_ar=str(exact["total_ar"].iloc[0]),
         exact_total_ar_type=type(exact["total_ar"].iloc[0]).__name__)
except Exception as ex:  # noqa: BLE001
    emit("read_sql_kpi", ok=False, **error(ex))

# read_sql with bound parameters over open_items (SQLAlchemy text() with named binds).
OPEN = sa.text("SELECT invoice_id, open_amount, due_date FROM open_items "
               "WHERE open_amount > :amount AND due_date <= :due "
               "ORDER BY open_amount DESC, invoice_id LIMIT 5")
for label, amount in [("decimal", decimal.Decimal("10.00")), ("int", 10), ("float", 10.0)]:
    try:
        df = pandas.read_sql(OPEN, eng, params={"amount": amount, "due": datetime.date(2030, 1, 1)})
        emit(f"read_sql_params_{label}", ok=len(df) > 0, rows=len(df),
             dtypes={k: str(v) for k, v in df.dtypes.items()},
             first_amount=df["open_amount"].iloc[0] if len(df) else None)
    except Exception as ex:  # noqa: BLE001
        emit(f"read_sql_params_{label}", ok=False, **error(ex))

# A pandas-style query through the SQLAlchemy Core: select() over a reflected view.
try:
    md = sa.MetaData()
    kpi = sa.Table("kpi_summary", md, autoload_with=eng)
    df = pandas.read_sql(sa.select(kpi.c.total_ar, kpi.c.as_of), eng)
    emit("reflect_kpi", ok=len(df) == 1, columns=len(kpi.columns),
         total_ar_type=str(kpi.c.total_ar.type), as_of_type=str(kpi.c.as_of.type))
except Exception as ex:  # noqa: BLE001
    emit("reflect_kpi", ok=False, **error(ex))

# pandas.read_sql_table reflects the table itself.
try:
    df = pandas.read_sql_table("aging", eng)
    emit("read_sql_table", ok=len(df) > 0, rows=len(df), columns=list(df.columns))
except Exception as ex:  # noqa: BLE001
    emit("read_sql_table", ok=False, **error(ex))

# The inspector, call by call: what a schema browser (or pandas' has_table) asks.
insp = sa.inspect(eng)
for name, call, good in [
        ("get_schema_names", insp.get_schema_names, lambda r: "public" in r),
        ("get_table_names", insp.get_table_names, lambda r: len(r) > 0),
        ("get_view_names", insp.get_view_names, lambda r: "kpi_summary" in r),
        ("has_table", lambda: insp.has_table("open_items"), lambda r: r is True),
        ("get_columns", lambda: insp.get_columns("kpi_summary"), lambda r: len(r) > 0),
        ("get_pk_constraint", lambda: insp.get_pk_constraint("invoices"), lambda r: True),
        ("get_indexes", lambda: insp.get_indexes("invoices"), lambda r: True)]:
    try:
        result = call()
        summary = result if not isinstance(result, list) else {"count": len(result),
                                                              "first": result[:3]}
        emit("inspector_" + name, ok=bool(good(result)), result=summary)
    except Exception as ex:  # noqa: BLE001
        emit("inspector_" + name, ok=False, **error(ex))

# Writes through pandas are refused with the read-only code.
try:
    pandas.DataFrame({"x": [1]}).to_sql("pandas_probe", eng, index=False)
    emit("to_sql", ok=False, refused=False)
except Exception as ex:  # noqa: BLE001
    info = error(ex)
    emit("to_sql", ok=info["sqlstate"] == "25006", refused=True, **info)

eng.dispose()
