#!/usr/bin/env python3
"""Expected outputs of the join golden cases (join_*.sql), computed
independently of the engine from the documented semantics, over whole
inputs (no streaming):

  - lookup join: the right file (or the CREATE TABLE) is complete before
    the stream is read; a key has its latest row; NULL keys never match;
    extra ON conditions are part of the match (LEFT keeps the row with
    NULLs on the right when they fail);
  - interval join: keys equal (not NULL) and
    a.ts + lower <= b.ts <= a.ts + upper, both ends inclusive; outer rows
    that found no partner appear once, NULL-padded;
  - window join: both rows in the same tumbling window
    [floor(ts / size) * size, + size); outer rows per window;
  - ORDER BY ascending with NULLS LAST; CSV: NULL is an empty field.

Run from the repository root: python3 tests/sql/tools/join_expected.py
(writes tests/sql/expected/join_*.out).
"""
import csv
import datetime as dt
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(HERE, "..", "expected")
MIN = 60


def ts(text):
    d = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return int(d.replace(tzinfo=dt.timezone.utc).timestamp())


def fmt_ts(sec):
    d = dt.datetime.fromtimestamp(sec, tz=dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


def load(name, ints=(), times=()):
    rows = []
    with open(os.path.join(DATA, name), newline="") as f:
        for r in csv.DictReader(f):
            row = {}
            for k, v in r.items():
                if v == "":
                    row[k] = None
                elif k in ints:
                    row[k] = int(v)
                elif k in times:
                    row[k] = ts(v)
                else:
                    row[k] = v
            rows.append(row)
    return rows


def sort_key(values):
    # ASC, NULLS LAST
    return tuple((v is None, v if v is not None else 0) for v in values)


def cell(v, is_ts=False):
    if v is None:
        return ""
    if is_ts:
        return fmt_ts(v)
    return str(v)


def write(name, header, rows, order, ts_cols=()):
    rows = sorted(rows, key=lambda r: sort_key(order(r)))
    with open(os.path.join(OUT, name + ".out"), "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(cell(v, i in ts_cols) for i, v in enumerate(r))
                    + "\n")


orders = load("join_orders.csv", ints=("order_id", "customer_id", "amount"),
              times=("ts",))
customers = load("join_customers.csv", ints=("id",))
changes = load("join_tier_changes.csv", ints=("id",))
clicks = load("join_clicks.csv", times=("ts",))
buys = load("join_buys.csv", ints=("amount",), times=("ts",))

NULL_C = {"id": None, "name": None, "tier": None}


def lookup(stream, table, skey, tkey, left, cond=lambda s, t: True):
    latest = {}
    for t in table:
        if t[tkey] is not None:
            latest[t[tkey]] = t
    out = []
    for s in stream:
        t = latest.get(s[skey]) if s[skey] is not None else None
        if t is not None and cond(s, t):
            out.append((s, t))
        elif left:
            out.append((s, None))
    return out


def g(t, k):
    return None if t is None else t[k]


# join_lookup_inner
rows = [(o["order_id"], o["customer_id"], c["name"], o["amount"])
        for o, c in lookup(orders, customers, "customer_id", "id", False)]
write("join_lookup_inner", ["order_id", "customer_id", "name", "amount"],
      rows, lambda r: (r[0],))

# join_lookup_left
rows = [(o["order_id"], o["customer_id"], g(c, "name"), g(c, "tier"))
        for o, c in lookup(orders, customers, "customer_id", "id", True)]
write("join_lookup_left", ["order_id", "customer_id", "name", "tier"], rows,
      lambda r: (r[0],))

# join_lookup_residual
rows = [(o["order_id"], g(c, "name"), g(c, "tier"))
        for o, c in lookup(orders, customers, "customer_id", "id", True,
                           lambda s, t: t["tier"] == "gold")]
write("join_lookup_residual", ["order_id", "name", "tier"], rows,
      lambda r: (r[0],))

# join_lookup_table: CREATE TABLE tiers = LAST_VALUE(tier), COUNT(*) per id
tiers = {}
for ch in changes:
    t = tiers.setdefault(ch["id"], {"id": ch["id"], "tier": None,
                                    "changes": 0})
    t["tier"] = ch["tier"]
    t["changes"] += 1
rows = [(o["order_id"], o["customer_id"], g(t, "tier"), g(t, "changes"))
        for o, t in lookup(orders, list(tiers.values()), "customer_id", "id",
                           True)]
write("join_lookup_table", ["order_id", "customer_id", "tier", "changes"],
      rows, lambda r: (r[0],))

# join_lookup_aggregate
groups = {}
for o, c in lookup(orders, customers, "customer_id", "id", False):
    n, s = groups.get(c["tier"], (0, 0))
    groups[c["tier"]] = (n + 1, s + o["amount"])
rows = [(k, n, s) for k, (n, s) in groups.items()]
write("join_lookup_aggregate", ["tier", "orders", "revenue"], rows,
      lambda r: (r[0],))


def interval(lower, upper, left, right):
    pairs = []
    lm, rm = set(), set()
    for i, a in enumerate(clicks):
        for j, b in enumerate(buys):
            if (a["user_id"] is not None and a["user_id"] == b["user_id"]
                    and a["ts"] + lower <= b["ts"] <= a["ts"] + upper):
                pairs.append((a, b))
                lm.add(i)
                rm.add(j)
    if left:
        pairs += [(a, None) for i, a in enumerate(clicks) if i not in lm]
    if right:
        pairs += [(None, b) for j, b in enumerate(buys) if j not in rm]
    return pairs


# join_interval_inner
rows = [(a["user_id"], a["page"], b["item"], a["ts"], b["ts"])
        for a, b in interval(0, 10 * MIN, False, False)]
write("join_interval_inner", ["user_id", "page", "item", "ts", "bts"], rows,
      lambda r: (r[3], r[4]), ts_cols=(3, 4))

# join_interval_left
rows = [(a["user_id"], a["page"], a["ts"], g(b, "item"), g(b, "amount"))
        for a, b in interval(0, 10 * MIN, True, False)]
write("join_interval_left", ["user_id", "page", "ts", "item", "amount"],
      rows, lambda r: (r[2], r[3]), ts_cols=(2,))

# join_interval_right
rows = [(b["user_id"], b["item"], b["ts"], g(a, "page"))
        for a, b in interval(0, 10 * MIN, False, True)]
write("join_interval_right", ["user_id", "item", "ts", "page"], rows,
      lambda r: (r[2], r[3]), ts_cols=(2,))

# join_interval_full
rows = [(g(a, "user_id"), g(a, "page"), g(b, "user_id"), g(b, "item"))
        for a, b in interval(0, 10 * MIN, True, True)]
write("join_interval_full", ["user_id", "page", "buyer", "item"], rows,
      lambda r: (r[0], r[1], r[3]))

# join_interval_within: -5..+5 minutes
rows = [(a["user_id"], a["page"], b["item"], a["ts"], b["ts"])
        for a, b in interval(-5 * MIN, 5 * MIN, False, False)]
write("join_interval_within", ["user_id", "page", "item"],
      [r[:3] for r in sorted(rows, key=lambda r: (r[3], r[4]))],
      lambda r: ())


def window(size, left):
    def ws(t):
        return t // size * size

    out = []
    for a in clicks:
        matched = False
        for b in buys:
            if (a["user_id"] == b["user_id"] and a["user_id"] is not None
                    and ws(a["ts"]) == ws(b["ts"])):
                out.append((ws(a["ts"]), a, b))
                matched = True
        if left and not matched:
            out.append((ws(a["ts"]), a, None))
    return out


# join_window_tumbling
rows = [(w, w + 10 * MIN, a["user_id"], a["page"], b["item"])
        for w, a, b in window(10 * MIN, False)]
write("join_window_tumbling", ["ws", "we", "user_id", "page", "item"], rows,
      lambda r: (r[0], r[2], r[3], r[4]), ts_cols=(0, 1))

# join_window_left
rows = [(w, a["user_id"], a["page"], g(b, "item"))
        for w, a, b in window(10 * MIN, True)]
write("join_window_left", ["ws", "user_id", "page", "item"], rows,
      lambda r: (r[0], r[1], r[2], r[3]), ts_cols=(0,))
