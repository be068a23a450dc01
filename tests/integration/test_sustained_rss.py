"""The 30-minute repeated-load run (a long suite: `make check-long`, ME_LONG=1): uploads,
photo jobs and origin reads over and over, the server's RSS sampled every 10 s; its
least-squares slope after a 5-minute warm-up must stay under 1 MiB/min. A leak detector, not a
timing assertion: a server that keeps a little of every request grows steadily with the work,
one that does not stays flat (bench/sustained-rss, which this runs, reports the figure)."""
import os
import subprocess
import sys

import pytest

BIN = os.environ.get("ME_BIN", os.path.join(os.path.dirname(__file__), "../../build/mediaedge"))
SRCDIR = os.environ.get("ME_SRCDIR", os.path.join(os.path.dirname(__file__), "../.."))
MINUTES = float(os.environ.get("ME_RSS_MINUTES", 30))


def sanitizer_build():
    args = os.path.join(os.path.dirname(os.path.abspath(BIN)), ".configure-args")
    return os.path.exists(args) and "sanitizers" in open(args).read()


pytestmark = [
    pytest.mark.skipif(os.environ.get("ME_LONG") != "1", reason="long: make check-long (ME_LONG=1)"),
    # ASan's quarantine holds freed memory up to its own bound: RSS grows for a while by design
    pytest.mark.skipif(sanitizer_build(), reason="RSS of a sanitizer build says nothing about leaks"),
]


def test_rss_does_not_grow_under_repeated_load():
    env = {k: v for k, v in os.environ.items() if k != "BENCH_REPORT"}
    env["MEDIAEDGE_BIN"] = os.path.abspath(BIN)
    p = subprocess.run([sys.executable, os.path.join(SRCDIR, "bench", "sustained-rss"), "--minutes", str(MINUTES),
                        "--warmup-minutes", "5", "--max-slope-kib", "1024"],
                       env=env, capture_output=True, text=True, timeout=MINUTES * 60 + 900)
    print(p.stdout)
    assert p.returncode == 0, f"exit {p.returncode}: {p.stdout[-3000:]} {p.stderr[-3000:]}"
    assert "errors 0:" in p.stdout, p.stdout[-3000:]
