"""Smoke test of experiments/studies/greedy_targets.py, as tests/test_benchmark_scripts.py runs
the other studies: its smallest real configuration in a fresh process, from another folder."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.backend("tensorflow")

SCRIPT = REPO_ROOT / "experiments" / "studies" / "greedy_targets.py"


def test_study_greedy_targets(tmp_path):
    path = tmp_path / "greedy_targets.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--seeds", "1", "--epochs", "1", "--digits", "100"]
        + ["--activations", "relu", "--json", str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for variant in ("A", "B", "C", "end_to_end"):
        assert f"| relu | {variant} |" in result.stdout
    records = {r["variant"]: r for r in json.loads(path.read_text())["records"]}
    assert set(records) == {"A", "B", "C", "end_to_end"}
    # Stage 1 is the same in A, B and C: B's and C's second fit kept level 1.
    assert records["A"]["level_1_mse"] == records["B"]["level_1_mse"] == records["C"]["level_1_mse"]
    # The inner stages differ, so the whole models do.
    assert len({records[v]["mse"] for v in ("A", "B", "C")}) == 3
