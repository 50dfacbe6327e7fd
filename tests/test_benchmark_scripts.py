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


def run(script, *argv, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(script), *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


SMALL = ("--images", 0, "--image-size", 32)


def test_bench_training(faces, tmp_path):
    out = run(
        BENCHMARKS / "bench_training.py",
        *("--data-dir", faces, *SMALL, "--epochs", 1, "--repeats", 1),
        *("--variants", "greedy_cached"),
        cwd=tmp_path,
    )
    assert "| greedy_cached |" in out


def test_bench_time_to_quality(faces, tmp_path):
    path = tmp_path / "ttq.json"
    run(
        BENCHMARKS / "bench_time_to_quality.py",
        *("--data-dir", faces, *SMALL, "--epochs", 1, "--json", path),
        cwd=tmp_path,
    )
    assert json.loads(path.read_text())


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
    run(
        STUDIES / "fine_tuning.py",
        *("--data-dir", faces, *SMALL, "--epochs", 1, "--fine-tune-epochs", 1),
        *("--fine-tune-rates", "1e-4", "--json", path),
        cwd=tmp_path,
    )
    assert json.loads(path.read_text())


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
