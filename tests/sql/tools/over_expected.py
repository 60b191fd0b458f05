#!/usr/bin/env python3
"""Expected outputs of the OVER, top-N and dedup golden cases, computed
independently of the engine: SQLite's window functions over the same CSV
data (times as epoch seconds so RANGE frames are numeric), and for the
dedup changelog a direct simulation of the documented rule (a row passes
when its event time is >= the latest passed for its key: insert the first
time, update after).

SQLite's ROW_NUMBER leaves ties unordered; the engine keeps arrival order,
so the top-N query breaks ties by ts (the file is in time order).

Run from the repository root: python3 tests/sql/tools/over_expected.py
"""
import csv
import datetime as dt
import os
import sqlite3

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(HERE, "..", "expected")


def secs(text):
    d = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return int(d.replace(tzinfo=dt.timezone.utc).timestamp())


def fmt_ts(s):
    d = dt.datetime.fromtimestamp(s, tz=dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


def load(name):
    with open(os.path.join(DATA, name), newline="") as f:
        return [(secs(r["ts"]), r["sensor"], int(r["v"]))
                for r in csv.DictReader(f)]


def table(rows):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE r (ts INTEGER, sensor TEXT, v INTEGER)")
    db.executemany("INSERT INTO r VALUES (?, ?, ?)", rows)
    return db


def cell(name, value):
    if value is None:
        return ""
    if name == "ts":
        return fmt_ts(value)
    return str(value)


def write(case, names, rows, op=None):
    with open(os.path.join(OUT, case + ".out"), "w") as f:
        f.write(",".join((["_op"] if op else []) + names) + "\n")
        for i, row in enumerate(rows):
            cells = [cell(n, v) for n, v in zip(names, row)]
            f.write(",".join(([op[i]] if op else []) + cells) + "\n")


def query(db, case, sql):
    cur = db.execute(sql)
    names = [d[0] for d in cur.description]
    write(case, names, cur.fetchall())


W = "PARTITION BY sensor ORDER BY ts"
readings = table(load("over_readings.csv"))
query(readings, "over_row_number",
      f"SELECT sensor, ts, v, ROW_NUMBER() OVER ({W}) AS rn FROM r "
      "ORDER BY sensor, ts")
query(table(load("over_readings_ooo.csv")), "over_row_number_ooo",
      f"SELECT sensor, ts, v, ROW_NUMBER() OVER ({W}) AS rn FROM r "
      "ORDER BY sensor, ts")
query(readings, "over_lag_default",
      f"SELECT sensor, ts, v, LAG(v, 1, 0) OVER ({W}) AS prev_v, "
      f"LAG(v, 2) OVER ({W}) AS prev2_v FROM r ORDER BY sensor, ts")
query(readings, "over_lead",
      f"SELECT sensor, ts, v, LEAD(v) OVER ({W}) AS next_v, "
      f"LEAD(v, 2, -1) OVER ({W}) AS next2_v FROM r ORDER BY sensor, ts")
query(readings, "over_sum_rows",
      f"SELECT sensor, ts, v, SUM(v) OVER ({W} ROWS BETWEEN 2 PRECEDING "
      "AND CURRENT ROW) AS sum3 FROM r ORDER BY sensor, ts")
query(readings, "over_sum_range",
      f"SELECT sensor, ts, v, SUM(v) OVER ({W} RANGE BETWEEN 10 PRECEDING "
      f"AND CURRENT ROW) AS sum10s, COUNT(*) OVER ({W} RANGE BETWEEN 10 "
      "PRECEDING AND CURRENT ROW) AS n10s FROM r ORDER BY sensor, ts")
query(readings, "over_running_agg",
      f"SELECT sensor, ts, v, SUM(v) OVER ({W}) AS running_sum, "
      f"MAX(v) OVER ({W}) AS running_max, "
      f"FIRST_VALUE(v) OVER ({W}) AS first_v FROM r ORDER BY sensor, ts")
query(readings, "over_rank_ties",
      "SELECT sensor, v, ts, "
      "RANK() OVER (PARTITION BY sensor ORDER BY v DESC) AS rk, "
      "DENSE_RANK() OVER (PARTITION BY sensor ORDER BY v DESC) AS drk "
      "FROM r ORDER BY sensor, rk, ts")
query(readings, "topn_top2",
      "SELECT * FROM (SELECT sensor, ts, v, ROW_NUMBER() OVER "
      "(PARTITION BY sensor ORDER BY v DESC, ts ASC) AS rn FROM r) "
      "WHERE rn <= 2 ORDER BY sensor, rn")
query(readings, "dedup_first",
      "SELECT sensor, ts, v FROM (SELECT sensor, ts, v, ROW_NUMBER() OVER "
      "(PARTITION BY sensor ORDER BY ts ASC) AS rn FROM r) WHERE rn = 1 "
      "ORDER BY sensor")

# dedup_last: the changelog, row by row in arrival order.
latest, ops, out = {}, [], []
for t, sensor, v in load("over_latest.csv"):
    if sensor in latest and t < latest[sensor]:
        continue
    ops.append("update" if sensor in latest else "insert")
    latest[sensor] = t
    out.append((sensor, t, v))
write("dedup_last", ["sensor", "ts", "v"], out, ops)
# The changelog's end state is SQLite's answer to the same query.
db = table(load("over_latest.csv"))
final = db.execute(
    "SELECT sensor, ts, v FROM (SELECT sensor, ts, v, ROW_NUMBER() OVER "
    "(PARTITION BY sensor ORDER BY ts DESC) AS rn FROM r) WHERE rn = 1 "
    "ORDER BY sensor").fetchall()
state = {}
for row in out:
    state[row[0]] = row
assert sorted(state.values()) == final, (state, final)
