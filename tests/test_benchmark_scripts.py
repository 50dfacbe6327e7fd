"""One smoke test per script of benchmarks/ and experiments/studies/.

Each runs the script's smallest real configuration in a fresh process, from
another folder, on a few dozen generated faces in LFW's layout (no real
data), and checks that it finishes and writes its numbers. TensorFlow only:
the scripts pick or compare backends themselves.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.backend("tensorflow")

BENCHMARKS = REPO_ROOT / "benchmarks"
STUDIES = REPO_ROOT / "experiments" / "studies"


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """12 people x 4 noise "faces", 250x250 JPEGs as in LFW."""
    from PIL import Image

    root = tmp_path_factory.mktemp("lfw")
    rng = np.random.default_rng(0)
    for p in range(12):
        person = root / f"Person_{chr(ord('A') + p)}"
        person.mkdir()
        for k in range(1, 5):
            pixels = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(person / f"{person.name}_{k:04d}.jpg")
    return root


def _completed(script, argv, cwd, status, timeout):
    """The finished process of `script argv`, which must exit with `status`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(script), *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    assert result.returncode == status, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def run(script, *argv, cwd):
    return _completed(script, argv, cwd, status=0, timeout=300).stdout


SMALL = ("--images", 0, "--image-size", 32)


def test_bench_training(faces, tmp_path):
    out = run(
        BENCHMARKS / "bench_training.py",
        *("--data-dir", faces, *SMALL, "--epochs", 1, "--repeats", 1),
        *("--variants", "greedy_cached"),
        cwd=tmp_path,
    )
    assert "| greedy_cached |" in out


def rejected(script, *argv, cwd):
    """The stderr of a script that argparse refuses (exit status 2)."""
    return _completed(script, argv, cwd, status=2, timeout=60).stderr


def test_bench_time_to_quality(faces, tmp_path):
    script = BENCHMARKS / "bench_time_to_quality.py"
    path = tmp_path / "ttq.json"
    out = run(
        script,
        *("--data-dir", faces, *SMALL, "--epochs", 1, "--fine-tune-epochs", "1,2"),
        *("--goal", 0.5, "--json", path, "--plot", tmp_path / "ttq.png"),
        cwd=tmp_path,
    )
    assert "| greedy_fine_tune_2 |" in out
    result = json.loads(path.read_text())
    assert result["goal"] == 0.5
    rows = {row["row"]: row for row in result["rows"]}
    assert list(rows) == ["greedy", "greedy_fine_tune_1", "greedy_fine_tune_2"]
    # One greedy run: its stages, then 2 fine-tuning epochs, each row an epoch's end.
    curve = result["greedy"]["curve"]
    assert len(curve) == result["depth"] + 2
    for row, point in zip(rows.values(), curve[-3:]):
        assert (row["greedy_wall_s"], row["greedy_sse"]) == (point["wall_s"], point["sse"])
    # Plain Keras settles every row: it reached the error, or ran past 1 / goal
    # times the row's greedy time, which meets the goal.
    plain_wall = result["plain"]["wall_s"]
    for row in rows.values():
        assert row["plain_budget_s"] == row["greedy_wall_s"] / 0.5
        assert row["reached"] or (plain_wall > row["plain_budget_s"] and row["meets_goal"])
        assert isinstance(row["meets_goal"], bool)
    assert (tmp_path / "ttq.png").stat().st_size > 0

    for argv, message in [
        (("--goal", 0), "--goal must be a number above 0 and at most 1"),
        (("--goal", "1.5"), "Received: --goal 1.5"),
        (("--fine-tune-epochs", "1,x"), "Received: --fine-tune-epochs '1,x'"),
        (("--fine-tune-epochs", "0"), "--fine-tune-epochs must be a comma-separated list"),
        (("--rows", "greedy_fine_tune_2"), "--fine-tune-epochs 1,3 does not give"),
    ]:
        assert message in rejected(script, *argv, cwd=tmp_path)


def test_bench_backends(faces, tmp_path):
    out = run(
        BENCHMARKS / "bench_backends.py",
        *("--data-dir", faces, "--images", 32, "--image-size", 32),
        *("--epochs", 1, "--repeats", 1, "--backends", "tensorflow", "--variants", "plain"),
        cwd=tmp_path,
    )
    assert "tensorflow" in out


def test_bench_commits(faces, tmp_path):
    out = run(
        BENCHMARKS / "bench_commits.py",
        *("HEAD", "HEAD", "--repeats", 1, "--variant", "plain", "--"),
        *("--data-dir", faces, *SMALL, "--epochs", 1),
        cwd=REPO_ROOT,  # it reads the commits of this checkout
    )
    assert "B / A: wall" in out


def test_study_fine_tuning(faces, tmp_path):
    path = tmp_path / "ft.json"
    out = run(
        STUDIES / "fine_tuning.py",
        *("--data-dir", faces, *SMALL, "--epochs", 1, "--fine-tune-epochs", 2),
        *("--fine-tune-rates", "1e-4,default", "--json", path),
        *("--seeds", 2, "--split", "experiment", "--test-images", 3),
        *("--plot", "ft.png", "--goal", 150),
        cwd=tmp_path,
    )
    assert (tmp_path / "ft.png").stat().st_size > 0
    results = json.loads(path.read_text())
    assert [trained["seed"] for trained in results["seeds"]] == [0, 1]
    for trained in results["seeds"]:
        assert [r["rate"] for r in trained["rates"]] == [1e-4, "default"]
        assert [len(r["curve"]) for r in trained["rates"]] == [2, 2]
    # The experiment's split holds out validation people: fewer faces trained on.
    assert results["data"]["num_test"] == 3
    assert results["data"]["num_train"] < 48 * 0.9
    assert "seeds 0-1" in out and " ± " in out


def test_study_joint_weights(faces, tmp_path):
    path = tmp_path / "jw.json"
    run(
        STUDIES / "joint_weights.py",
        *("--data-dir", faces, *SMALL, "--epochs", 1, "--weightings", "equal", "--json", path),
        cwd=tmp_path,
    )
    assert json.loads(path.read_text())


def test_study_vae_kl(faces, tmp_path):
    path = tmp_path / "vae_kl.json"
    run(
        STUDIES / "vae_kl.py",
        *("--data-dir", faces, *SMALL, "--epochs", 1, "--kl-scales", 1, "--json", path),
        cwd=tmp_path,
    )
    assert json.loads(path.read_text())


def test_study_greedy_failures(faces, tmp_path):
    path = tmp_path / "gf.json"
    run(
        STUDIES / "greedy_failures.py",
        *("--data-dir", faces, *SMALL, "--parts", "paper", "--paper-epochs", 1, "--json", path),
        cwd=tmp_path,
    )
    assert json.loads(path.read_text())


def test_study_feeding(tmp_path):
    out = run(
        STUDIES / "feeding.py",
        *("--levels", 1, "--image-size", 32, "--images", 64, "--epochs", 1, "--rounds", 1),
        cwd=tmp_path,
    )
    assert "tf_gather" in out


def test_bench_user_pairs(faces, tmp_path):
    path = tmp_path / "user_pairs.json"
    out = run(
        BENCHMARKS / "bench_user_pairs.py",
        *("--data-dir", faces, "--faces", 48, "--digits", 100, "--pairs", "denoise,vae"),
        *("--seeds", 1, "--epochs", 1, "--json", path),
        cwd=tmp_path,
    )
    assert "| denoise | greedy+ft |" in out
    rows = json.loads(path.read_text())["rows"]
    assert {row["mode"] for row in rows} == {"greedy", "greedy+ft", "end_to_end"}
