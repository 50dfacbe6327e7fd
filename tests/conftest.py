import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LFW_DIR = REPO_ROOT.parent / "shared" / "data" / "lfw"


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from the same seed and a clean Keras name scope."""
    keras.utils.set_random_seed(0)
    keras.backend.clear_session()
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def lfw_dir():
    if not LFW_DIR.is_dir():
        pytest.skip(f"the real LFW folder is absent: {LFW_DIR}")
    return LFW_DIR


def run_in_fresh_process(code):
    """Runs `code` in a new Python process; returns its stdout."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
