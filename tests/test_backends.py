"""Every Keras backend: the suite runs on the one asked for, and models move
between backends through `.keras` files.

CI runs the whole suite under TensorFlow and the core suite under JAX and
PyTorch (KERAS_BACKEND set, `-m "not slow"`); a venv with more than one
backend installed also checks every pair of them below.
"""

import importlib.util
import os
import subprocess
import sys

import keras
import pytest
from conftest import REPO_ROOT

BACKENDS = ("tensorflow", "jax", "torch")
INSTALLED = [name for name in BACKENDS if importlib.util.find_spec(name) is not None]
PAIRS = [(saved, loaded) for saved in INSTALLED for loaded in INSTALLED if saved != loaded]


def test_the_suite_runs_on_the_backend_it_was_asked_for():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


def _run(backend, code):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, f"under {backend}:\n{result.stderr[-3000:]}"
    return result.stdout


SAVE = """
import numpy as np, keras
from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
assert keras.backend.backend() == {backend!r}
keras.utils.set_random_seed(0)
images = np.random.default_rng(0).random((16, 12, 12, 3), dtype="float32")
stack = MirroredConvStack(filters=(4, 6), input_shape=(12, 12, 3), normalization="shared")
trainer = RecursiveTrainer(stack)
trainer.compile(optimizer="adam")
trainer.fit(images, epochs=1, batch_size=8, verbose=0)
from keras_recursive_ae import SharedBatchNorm
for name in ("model", "encoder"):
    model = getattr(trainer, name)
    print(name, sum(isinstance(l, SharedBatchNorm) for l in model.layers))
    model.save({root!r} + f"/{{name}}.keras")
    np.save({root!r} + f"/{{name}}_out.npy", keras.ops.convert_to_numpy(model.predict(images, verbose=0)))
np.save({root!r} + "/images.npy", images)
"""

LOAD = """
import numpy as np, keras
import keras_recursive_ae
assert keras.backend.backend() == {backend!r}
images = np.load({root!r} + "/images.npy")
for name in ("model", "encoder"):
    model = keras.saving.load_model({root!r} + f"/{{name}}.keras")
    norms = [l for l in model.layers if isinstance(l, keras_recursive_ae.SharedBatchNorm)]
    got = keras.ops.convert_to_numpy(model.predict(images, verbose=0))
    expected = np.load({root!r} + f"/{{name}}_out.npy")
    print(name, len(norms), float(np.max(np.abs(got - expected))))
"""


@pytest.mark.parametrize(
    "saved_under, loaded_under",
    PAIRS
    or [
        pytest.param(
            None,
            None,
            marks=pytest.mark.skip(
                reason=f"only {INSTALLED} installed; pip install '.[jax]' or '.[torch]' "
                "to check models moving between backends"
            ),
        )
    ],
)
def test_a_model_saved_under_one_backend_gives_the_same_outputs_under_another(
    tmp_path, saved_under, loaded_under
):
    root = str(tmp_path)
    saved = _run(saved_under, SAVE.format(backend=saved_under, root=root))
    norms = dict(line.split() for line in saved.strip().splitlines())
    out = _run(loaded_under, LOAD.format(backend=loaded_under, root=root))
    lines = {line.split()[0]: line.split()[1:] for line in out.strip().splitlines()}
    for name, (count, gap) in lines.items():
        # The shared norms are still single layers called at both sites.
        assert count == norms[name] != "0", f"{name}: {count} SharedBatchNorm, saved {norms[name]}"
        # Convolutions differ in summation order between backends.
        assert float(gap) < 1e-5, f"{name}: {saved_under} -> {loaded_under} differs by {gap}"
