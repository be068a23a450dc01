"""bench/bench_report.py: the benchmarks' machine-readable output, read by bench/run-all.

Each benchmark prints its own table for people and, when the environment names a file in
BENCH_REPORT, also appends one JSON object per figure to it (JSON lines):

    {"bench": "uploads", "figure": "throughput MB/s", "value": 151.2, "anchor": 80.1,
     "anchor_name": "@tus/server", "ratio": 1.89, "target": ">=2", "unit": "MB/s"}

value is mediaedge's figure; anchor the anchor's from the same run (null when the figure has
none); ratio value/anchor unless the bench says otherwise (null without an anchor); target as
the bench's README states it ("" when none). A new benchmark (an executable file in bench/)
is picked up by run-all as it is; to appear in its table it calls report() for its figures.
"""
import json
import os


def report(bench, figure, value, anchor=None, target="", ratio=None, anchor_name="", unit=""):
    """Appends one figure to $BENCH_REPORT (nothing when unset). ratio defaults to value/anchor."""
    path = os.environ.get("BENCH_REPORT")
    if not path:
        return
    if ratio is None and anchor not in (None, 0) and value is not None:
        ratio = value / anchor
    row = {"bench": bench, "figure": figure, "value": value, "anchor": anchor, "anchor_name": anchor_name,
           "ratio": ratio, "target": target, "unit": unit}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
