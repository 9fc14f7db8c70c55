#!/usr/bin/env python3
"""Draws the figures recorded in docs/benchmarks.md (and docs/testing.md's test-harness table) as
SVG charts in docs/images/, the ones docs/benchmarks.md shows.

It reads the Markdown tables themselves, so the charts are redrawn from whatever the docs record:

- the three-node ensemble table (ZooKeeper 3.8, MiniZK in 3 processes, MiniZK in 1 process);
- the standalone storage table (MiniZK, ZooKeeper 3.8);
- the ZKTesting table of docs/testing.md (MiniZK `testing-bench`, Curator).

usage: scripts/plot-benchmarks.py [--docs docs] [--out docs/images]
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchplot import hbar_chart, side_by_side_charts, write  # noqa: E402

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")


def numbers(cell):
    """The numbers of a cell, ignoring what is in brackets (the individual runs)."""
    cell = re.sub(r"\([^)]*\)", "", cell)
    return [float(n.replace(",", "")) for n in NUMBER.findall(cell)]


def tables(text):
    """Every Markdown table: (header cells, [row cells])."""
    found, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1]):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            found.append((header, rows))
        else:
            i += 1
    return found


def table_with(text, *columns):
    for header, rows in tables(text):
        if all(c in header for c in columns):
            return header, rows
    raise SystemExit(f"no table with columns {columns}")


# The ensemble table's rows: label prefix -> figure keys (a cell "a / b" holds two figures).
ENSEMBLE_ROWS = [
    ("start until", ["startup_s"], "start until all answer"),
    ("pipelined creates", ["create_rate"], "creates, 6 × 64"),
    ("pipelined setData", ["set_rate"], "setData, 6 × 64"),
    ("pipelined getData", ["get_rate"], "getData, 6 × 64"),
    ("pipelined exists", ["exists_rate"], "exists, 6 × 64"),
    ("setData one at a time, p50", ["set_p50_ms"], "setData 1 × 1, p50"),
    ("setData one at a time, p99", ["set_p99_ms"], "setData 1 × 1, p99"),
    ("getData one at a time", ["get_p50_ms", "get_p99_ms"], ["getData 1 × 1, p50", "getData 1 × 1, p99"]),
    ("kill -9 of the leader", ["failover_s"], "leader kill -9 to first write"),
]

STORAGE_ROWS = [
    ("creates/s, 1 connection", ["create1_rate"], "creates, 1 × 1"),
    ("creates/s, 1 × 100", ["create100_rate"], "creates, 1 × 100"),
    ("setData/s, 1 × 1", ["set1_rate"], "setData, 1 × 1"),
    ("setData/s, 1 × 100", ["set100_rate"], "setData, 1 × 100"),
    ("write latency p50", ["create1_p50_ms", "set1_p50_ms"], ["create p50, 1 × 1", "setData p50, 1 × 1"]),
    ("setData p99, 1 × 100", ["set100_p99_ms"], "setData p99, 1 × 100"),
    ("restart until serving", ["restart_s"], "restart until serving, 1M znodes"),
    ("RSS with the znodes", ["rss_loaded_mib"], "RSS, 1M znodes loaded"),
    ("RSS after a restart", ["rss_restart_mib"], "RSS after a restart"),
    ("data folder", ["data_mib"], "data folder"),
]


def collect(rows, columns, mapping):
    """{key: {column title: value}} and {key: label} from table rows."""
    table, labels = {}, {}
    for row in rows:
        for prefix, keys, names in mapping:
            # "setData/s, 1 × 1" must not take the row "setData/s, 1 × 100".
            if not row[0].startswith(prefix) or row[0][len(prefix):len(prefix) + 1].isdigit():
                continue
            names = names if isinstance(names, list) else [names]
            for index, title in columns:
                values = numbers(row[index])
                if prefix.startswith("kill") or prefix.startswith("start"):
                    values = values[:1]
                for key, name, value in zip(keys, names, values):
                    table.setdefault(key, {})[title] = value
                    labels[key] = name
            break
    return table, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--docs", default=os.path.join(repo, "docs"))
    parser.add_argument("--out", default=os.path.join(repo, "docs", "images"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    benchmarks = open(os.path.join(args.docs, "benchmarks.md")).read()

    header, rows = table_with(benchmarks, "ZooKeeper 3.8", "MiniZK, 3 processes", "MiniZK, 1 process")
    servers = ["ZooKeeper 3.8", "MiniZK, 3 processes", "MiniZK, 1 process"]
    table, labels = collect(rows, [(header.index(s), s) for s in servers], ENSEMBLE_ROWS)
    for name, svg in side_by_side_charts(table, servers, labels, baseline="ZooKeeper 3.8").items():
        write(os.path.join(args.out, f"bench-ensemble-{name}.svg"), svg)

    header, rows = table_with(benchmarks, "MiniZK", "ZooKeeper 3.8", "MiniZK / ZooKeeper")
    servers = ["ZooKeeper 3.8", "MiniZK"]
    table, labels = collect(rows, [(header.index(s), s) for s in servers], STORAGE_ROWS)
    for name, svg in side_by_side_charts(table, servers, labels, baseline="ZooKeeper 3.8").items():
        write(os.path.join(args.out, f"bench-storage-{name}.svg"), svg)

    testing = open(os.path.join(args.docs, "testing.md")).read()
    header, rows = table_with(testing, "scenario", "Curator")
    ours = next(i for i, c in enumerate(header) if c.startswith("MiniZK"))
    theirs = header.index("Curator")
    scenarios = [re.sub(r"\s*\(.*\)$", "", row[0]) for row in rows]
    write(os.path.join(args.out, "bench-zktesting.svg"), hbar_chart(
        "A test's ZooKeeper: MiniZK TestEnsemble against Curator",
        scenarios, [("Curator 5.4 + ZooKeeper 3.8", [numbers(r[theirs])[0] for r in rows]),
                    ("MiniZK testing-bench", [numbers(r[ours])[0] for r in rows])],
        unit="seconds, whole process (log scale)", log=True, subtitle="less is better; medians of 5 runs"))


if __name__ == "__main__":
    main()
