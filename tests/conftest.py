import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LFW_DIR = REPO_ROOT.parent / "shared" / "data" / "lfw"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "backend(*names): runs only when the Keras backend is one of `names` "
        "(e.g. tf.distribute needs TensorFlow, keras.distribution.DataParallel "
        "needs JAX); skipped, with the reason, under any other backend",
    )


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    for item in items:
        marker = item.get_closest_marker("backend")
        if marker is not None and backend not in marker.args:
            reason = f"needs KERAS_BACKEND in {marker.args}; running under {backend!r}"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from the same seed and a clean Keras name scope."""
    keras.utils.set_random_seed(0)
    # Without a full garbage collection before every test: with TensorFlow
    # and JAX loaded it took 0.4-2.5 s a test, 40% of the JAX suite (as
    # Keras' docstring warns for clear_session in a loop); Python's own
    # collector still runs.
    keras.backend.clear_session(free_memory=False)
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
