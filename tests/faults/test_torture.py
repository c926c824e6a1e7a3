"""A short run of the torture campaign (tests/support/torture.py; ``make torture``
runs a longer one): random structural damage x every recovery mode x every
CLI subcommand, with a fixed seed and number of cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TORTURE = Path(__file__).resolve().parents[1] / "support" / "torture.py"


@pytest.mark.timeout(900)
def test_a_short_torture_run_breaches_nothing(tmp_path: Path) -> None:
    r = subprocess.run(
        # a fixed seed and number of cases: the same damage on every machine
        [
            sys.executable,
            str(TORTURE),
            *("--seed", "7", "--max-cases", "8", "--seconds", "600", "--keep", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=840,
    )
    summary = json.loads(r.stdout)
    assert summary["cases"] == 8, summary
    assert summary["cli_runs"] >= 30 and summary["opens"] >= 12, summary
    for key in (
        "tracebacks",
        "hangs",
        "bad_exit_codes",
        "bad_json",
        "read_only_writes",
        "silent_losses",
        "strict_not_original",
        "unexpected_exceptions",
        "wiped_after_end_of_log",
    ):
        assert summary[key] == 0, (key, summary["breaches"])
