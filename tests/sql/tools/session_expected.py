#!/usr/bin/env python3
"""Expected outputs of the SESSION golden cases, computed independently of
the engine: a direct simulation of the documented rules, row by row.

  - the watermark at a row is the highest event time before it minus the
    allowed disorder;
  - a row at t opens [t, t + gap); every session of its key that it
    overlaps (t < end and start < t + gap) and that has not closed
    (end + grace > watermark) merges with it, the earliest first;
  - a row that meets no open session and whose own session would already
    have closed (t + gap + grace <= watermark) is late and dropped;
  - EMIT CHANGES: delete rows for sessions merged away, then insert (new)
    or update (existing) for the row's session; EMIT FINAL: one row per
    session, ordered by the case's ORDER BY (user_id, ws).

Run from the repository root: python3 tests/sql/tools/session_expected.py
"""
import csv
import datetime as dt
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
S = 1_000_000


def ts_us(text):
    d = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    d = d.replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp()) * S


def fmt(us):
    d = dt.datetime.fromtimestamp(us // S, tz=dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (us % S // 1000)


def load(name):
    with open(os.path.join(DATA, name), newline="") as f:
        return [(ts_us(r["ts"]), r["user_id"], int(r["amount"]))
                for r in csv.DictReader(f)]


def run(rows, gap, grace=0, ooo=0):
    """Returns (changes, finals): changes as (op, session snapshot),
    finals as session snapshots."""
    open_ = {}
    changes, finals = [], []
    maxt = None
    for t, key, amount in rows:
        wm = None if maxt is None else maxt - ooo
        sess = open_.setdefault(key, [])
        if wm is not None:
            for s in [s for s in sess if s["last"] + gap + grace <= wm]:
                finals.append(dict(s))
                sess.remove(s)
        hit = sorted((s for s in sess
                      if t < s["last"] + gap and s["start"] < t + gap),
                     key=lambda s: s["start"])
        maxt = t if maxt is None else max(maxt, t)
        if not hit:
            if wm is not None and t + gap + grace <= wm:
                continue  # late
            dst = {"start": t, "last": t, "vals": [], "emitted": False,
                   "key": key}
            sess.append(dst)
        else:
            dst = hit[0]
            for other in hit[1:]:
                changes.append(("delete",
                                dict(other, vals=list(other["vals"]))))
                dst["vals"] += other["vals"]
                dst["start"] = min(dst["start"], other["start"])
                dst["last"] = max(dst["last"], other["last"])
                sess.remove(other)
        dst["start"] = min(dst["start"], t)
        dst["last"] = max(dst["last"], t)
        dst["vals"].append(amount)
        changes.append(("update" if dst["emitted"] else "insert",
                        dict(dst, vals=list(dst["vals"]))))
        dst["emitted"] = True
    for sess in open_.values():
        finals += [dict(s) for s in sess]
    return changes, finals


def row(s, gap, parts=False):
    out = [fmt(s["start"]), fmt(s["last"] + gap), s["key"],
           str(len(s["vals"])), str(sum(s["vals"]))]
    if parts:
        out.append("+".join(str(v) for v in s["vals"]))
    return ",".join(out)


def write(case, lines):
    with open(os.path.join(HERE, "..", "expected", case + ".out"), "w") as f:
        f.write("\n".join(lines) + "\n")


def final_case(case, rows, gap, parts=False, **kw):
    _, finals = run(rows, gap, **kw)
    finals.sort(key=lambda s: (s["key"], s["start"]))
    head = "ws,we,user_id,n,total" + (",parts" if parts else "")
    write(case, [head] + [row(s, gap, parts) for s in finals])


def changes_case(case, rows, gap, **kw):
    changes, _ = run(rows, gap, **kw)
    write(case, ["_op,ws,we,user_id,n,total"] +
          [op + "," + row(s, gap) for op, s in changes])


def main():
    clicks, ooo = load("session_clicks.csv"), load("session_ooo.csv")
    gap = 30 * S
    final_case("session_basic_final", clicks, gap)
    changes_case("session_basic_changes", clicks, gap)
    changes_case("session_merge_changes", ooo, gap, ooo=60 * S)
    final_case("session_merge_final", ooo, gap, parts=True, ooo=60 * S)
    final_case("session_grace", ooo, gap, grace=60 * S)
    final_case("session_late_dropped", ooo, gap)


if __name__ == "__main__":
    main()
