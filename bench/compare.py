#!/usr/bin/env python3
"""Runs `siyu bench` (JSONL and CSV) and the DuckDB baseline on the same data
in one session, checks the answers agree byte for byte, and prints the
per-question times with the DuckDB/siyu ratio.

    python3 bench/compare.py --data DIR [--siyu target/release/siyu]
"""

import argparse
import filecmp
import os
import re
import subprocess
import sys
import tempfile
import time


def timings(text: str) -> dict:
    """`step   seconds` lines of either tool's timing table, keyed by step."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^total (queries|wall): ([0-9.]+) s", line)
        if m:
            out[f"total {m.group(1)}"] = float(m.group(2))
            continue
        parts = line.rsplit(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9]+\.[0-9]+", parts[1]):
            key = parts[0].strip()
            out[key[:2] if re.match(r"q\d\b", key) else key] = float(parts[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--siyu", default="target/release/siyu")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="siyu-compare-")
    runs = {}
    for name, cmd in [
        ("siyu jsonl", [args.siyu, "bench", "--data", args.data, "--out", f"{tmp}/jsonl"]),
        ("siyu csv", [args.siyu, "bench", "--data", args.data, "--out", f"{tmp}/csv", "--csv"]),
        ("duckdb", [sys.executable, os.path.join(os.path.dirname(__file__), "duckdb_answers.py"), "--data", args.data, "--out", f"{tmp}/duckdb"]),
    ]:
        print(f"running {name} …", file=sys.stderr)
        started = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - started
        print(p.stdout)
        runs[name] = timings(p.stdout)
        # Process start → exit, measured from outside: the same clock for both tools.
        runs[name]["process"] = elapsed
    for q in [f"q{i}" for i in range(7)]:
        same = filecmp.cmp(f"{tmp}/jsonl/{q}.csv", f"{tmp}/duckdb/{q}.csv", shallow=False) and filecmp.cmp(
            f"{tmp}/csv/{q}.csv", f"{tmp}/duckdb/{q}.csv", shallow=False
        )
        if not same:
            sys.exit(f"{q}: answers differ between siyu and DuckDB (see {tmp})")
    print("answers: q0..q6 identical across siyu (JSONL, CSV) and DuckDB\n")
    s, d = runs["siyu jsonl"], runs["duckdb"]
    print(f"{'question':<16}{'siyu s':>10}{'duckdb s':>10}{'ratio':>9}")
    for q in [f"q{i}" for i in range(7)] + ["total queries"]:
        if q in s and q in d:
            ratio = d[q] / s[q] if s[q] > 0 else float("inf")
            print(f"{q:<16}{s[q]:>10.4f}{d[q]:>10.4f}{ratio:>8.1f}x")
    load_duck = d.get("load events.csv", 0) + d.get("load truth + spend", 0) + d.get("join persons", 0)
    for name in ["siyu jsonl", "siyu csv"]:
        load = runs[name].get("load (parse+resolve+build)")
        if load:
            print(f"load {name:<11}{load:>10.3f}   (DuckDB load + join, persons given: {load_duck:.3f})")
    # siyu's `total wall` ends when its answers are written (the bench then
    # measures its snapshot, which DuckDB has no counterpart of); DuckDB's
    # is its process's life, Python's start included.
    duck = runs["duckdb"]["process"]
    print("\nend to end, files in → every answer written:")
    print(f"  {'duckdb':<11}{duck:>9.3f} s   (process start → exit)")
    for name in ["siyu jsonl", "siyu csv"]:
        wall = runs[name].get("total wall", runs[name]["process"])
        print(f"  {name:<11}{wall:>9.3f} s   DuckDB/siyu {duck / wall:>5.2f}x   (process {runs[name]['process']:.3f} s)")


if __name__ == "__main__":
    main()
