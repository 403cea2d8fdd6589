#!/usr/bin/env python3
"""Answers WORKLOAD.md Q0–Q6 with DuckDB, as the speed and correctness
baseline for `siyu bench`.

    python3 bench/duckdb_answers.py --data DIR --out DIR [--csv]

DuckDB is given truth_identities.csv (the persons), so it skips identity
resolution; siyu must not read that file. Prints a timing table in the same
shape as `siyu bench` (load, join, each question). Needs `pip install duckdb`.
"""

import argparse
import os
import time

import duckdb

NOW = 1793491200
DAY = 86400


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads={args.threads}")
    timings = []

    def timed(name, sql):
        t = time.perf_counter()
        con.execute(sql)
        timings.append((name, time.perf_counter() - t))

    d = args.data
    timed("load events.csv", f"""
        CREATE TABLE ev AS SELECT * FROM read_csv('{d}/events.csv', header=true,
          columns={{'seq':'BIGINT','ts':'BIGINT','identity':'VARCHAR','type':'VARCHAR','channel':'VARCHAR',
                   'amount':'BIGINT','ref':'VARCHAR','group':'VARCHAR','text':'VARCHAR'}})""")
    timed("load truth + spend", f"""
        CREATE TABLE ids AS SELECT * FROM read_csv('{d}/truth_identities.csv', header=true,
          columns={{'identity':'VARCHAR','person':'BIGINT'}});
        CREATE TABLE spend AS SELECT * FROM read_csv('{d}/spend.csv', header=true,
          columns={{'day':'VARCHAR','channel':'VARCHAR','spend':'BIGINT'}})""")
    timed("join persons", """
        CREATE TABLE canon AS SELECT person, min(identity) AS cid FROM ids GROUP BY person;
        CREATE TABLE e AS SELECT ev.*, ids.person FROM ev JOIN ids USING (identity)""")

    # Every question derives what it needs from `e` itself (nothing
    # precomputed across questions), like the engine's own per-question cost.
    firsts = """(SELECT person, arg_min(channel, (ts, seq)) AS ch, min(ts) AS first_ts
                 FROM e WHERE type <> 'identify' GROUP BY person)"""
    net = """(SELECT person,
               sum(CASE WHEN type='purchase' THEN amount WHEN type='refund' THEN -amount ELSE 0 END) AS net,
               bool_or(type='opt_out') AS opted FROM e GROUP BY person)"""

    questions = {
        "q0": """SELECT (SELECT count(DISTINCT person) FROM ids) AS persons, (SELECT count(*) FROM ids) AS identities""",
        "q1": f"""WITH firsts AS {firsts}, net AS {net}
            SELECT c.cid AS canonical_id FROM firsts f JOIN net n USING (person) JOIN canon c USING (person)
            WHERE f.ch='douyin' AND n.net >= 50000 AND NOT n.opted
              AND (SELECT count(*) FROM e WHERE e.person=f.person AND e.type='purchase' AND e.ts >= {NOW - 90 * DAY}) >= 2
            ORDER BY c.cid""",
        "q2": f"""WITH net AS {net}, p AS (SELECT person, max(ts) AS last, count(*) AS n FROM e WHERE type='purchase' GROUP BY person),
            s AS (SELECT
              CASE WHEN ({NOW}-last)//86400 <= 30 THEN 5 WHEN ({NOW}-last)//86400 <= 60 THEN 4
                   WHEN ({NOW}-last)//86400 <= 120 THEN 3 WHEN ({NOW}-last)//86400 <= 240 THEN 2 ELSE 1 END AS r,
              CASE WHEN n=1 THEN 1 WHEN n=2 THEN 2 WHEN n<=4 THEN 3 WHEN n<=7 THEN 4 ELSE 5 END AS f,
              CASE WHEN net<10000 THEN 1 WHEN net<30000 THEN 2 WHEN net<80000 THEN 3 WHEN net<200000 THEN 4 ELSE 5 END AS m
              FROM p JOIN net USING (person)),
            g AS (SELECT r.r, f.f, m.m FROM range(1,6) r(r), range(1,6) f(f), range(1,6) m(m))
            SELECT g.r, g.f, g.m, count(s.r) AS persons FROM g LEFT JOIN s USING (r, f, m)
            GROUP BY g.r, g.f, g.m ORDER BY g.r, g.f, g.m""",
        "q3": f"""WITH firsts AS {firsts}, af AS (SELECT person, min(ts) AS af FROM e WHERE type='add_friend' GROUP BY person),
            fr AS (SELECT f.person, f.ch, af.af FROM firsts f JOIN af USING (person) WHERE af.af - f.first_ts <= 7*86400),
            cv AS (SELECT DISTINCT fr.person FROM fr JOIN e ON e.person=fr.person AND e.type='purchase'
                   AND e.ts >= fr.af AND e.ts <= fr.af + 30*86400)
            SELECT f.ch AS channel, count(*) AS entered, count(fr.person) AS friended, count(cv.person) AS converted
            FROM firsts f LEFT JOIN fr USING (person) LEFT JOIN cv ON cv.person=f.person
            GROUP BY f.ch ORDER BY f.ch""",
        "q4": f"""WITH t AS (SELECT {NOW - 364 * DAY} AS t0),
            c AS (SELECT person, floor((min(ts) - (SELECT t0 FROM t)) / 604800)::BIGINT AS cohort
                  FROM e WHERE type='add_friend' GROUP BY person),
            c2 AS (SELECT * FROM c WHERE cohort >= 0),
            a AS (SELECT DISTINCT e.person, floor((e.ts - (SELECT t0 FROM t)) / 604800)::BIGINT - c2.cohort AS k
                  FROM e JOIN c2 USING (person) WHERE e.type IN ('message_read','purchase')),
            sz AS (SELECT cohort, count(*) AS size FROM c2 GROUP BY cohort)
            SELECT sz.cohort, sz.size, """ + ", ".join(
                f"(SELECT count(*) FROM a JOIN c2 USING (person) WHERE c2.cohort=sz.cohort AND a.k={k}) AS k{k}" for k in range(13)
            ) + " FROM sz ORDER BY sz.cohort",
        "q5": """WITH s AS (SELECT e.seq, e.ts, e.person AS invitee, ids.person AS inviter FROM e JOIN ids ON ids.identity=e.ref
                   WHERE e.type='referral_signup'),
            f AS (SELECT person, arg_min(seq, (ts, seq)) AS fseq FROM e WHERE type<>'identify' GROUP BY person),
            v AS (SELECT s.* FROM s JOIN f ON f.person=s.invitee AND f.fseq=s.seq
                  WHERE s.invitee<>s.inviter AND EXISTS (SELECT 1 FROM e WHERE e.person=s.invitee AND e.type='purchase'
                    AND e.ts >= s.ts AND e.ts <= s.ts + 14*86400)),
            n AS (SELECT inviter, count(DISTINCT invitee) AS valid FROM v GROUP BY inviter)
            SELECT c.cid AS canonical_id, n.valid FROM n JOIN canon c ON c.person=n.inviter""",
        "q6": f"""WITH firsts AS {firsts}, net AS {net}, r AS (SELECT f.ch AS channel, sum(n.net) AS revenue, count(*) AS persons FROM firsts f JOIN net n USING (person) GROUP BY f.ch),
            s AS (SELECT channel, sum(spend) AS spend FROM spend GROUP BY channel)
            SELECT coalesce(s.channel, r.channel) AS channel, coalesce(s.spend,0) AS spend, coalesce(r.revenue,0) AS revenue,
                   coalesce(r.persons,0) AS persons FROM s FULL JOIN r ON s.channel=r.channel ORDER BY 1""",
    }
    for name, sql in questions.items():
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        cols = [c[0] for c in con.description]
        timings.append((name, time.perf_counter() - t))
        with open(os.path.join(args.out, f"{name}.csv"), "w") as fh:
            if name == "q5":
                valid = [r[1] for r in rows]
                fh.write("inviters,tier1,tier2\n")
                fh.write(f"{len(valid)},{sum(1 for v in valid if 10 <= v < 20)},{sum(1 for v in valid if v >= 20)}\n\n")
                fh.write("canonical_id,valid\n")
                for cid, v in sorted(rows, key=lambda r: (-r[1], r[0]))[:10]:
                    fh.write(f"{cid},{v}\n")
            else:
                fh.write(",".join(cols) + "\n")
                for r in rows:
                    fh.write(",".join(str(x) for x in r) + "\n")
    print(f"{'step':<28} {'seconds':>10}")
    for name, secs in timings:
        print(f"{name:<28} {secs:>10.3f}")
    print(f"total queries: {sum(s for n, s in timings if n.startswith('q')):.3f} s")


if __name__ == "__main__":
    main()
