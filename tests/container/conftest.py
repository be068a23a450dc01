"""conftest.py: prints the container test's figures (build time, image size, start-to-ready) at
the end of the run, from the report test_container.py writes."""
import json
import os
from pathlib import Path

REPORT = Path(os.environ.get("ME_BIN", Path(__file__).resolve().parents[2] / "build" / "mediaedge")).resolve().parent \
    / "container-report.json"
_started = {}


def pytest_sessionstart(session):
    _started["mtime"] = REPORT.stat().st_mtime if REPORT.exists() else 0


def pytest_terminal_summary(terminalreporter):
    if REPORT.exists() and REPORT.stat().st_mtime > _started.get("mtime", 0):
        terminalreporter.write_sep("-", f"container figures ({REPORT})")
        for k, v in json.loads(REPORT.read_text()).items():
            terminalreporter.write_line(f"{k}: {v}")
