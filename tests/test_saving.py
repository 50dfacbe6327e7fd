"""Every model the library produces round-trips through .keras in a fresh process."""

import json

import keras
import numpy as np
import pytest
from conftest import run_in_fresh_process

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

CASES = [
    ("greedy", None, False),
    ("greedy", "batch", False),
    ("greedy", "shared", False),
    ("joint", "shared", False),
    ("end_to_end", "batch", False),
    ("greedy", "shared", True),
    ("end_to_end", None, True),
]


def test_every_schedule_normalization_and_vae_reloads_identically(tmp_path):
    x = np.random.default_rng(0).random((8, 12, 12, 2), dtype="float32")
    np.save(tmp_path / "x.npy", x)
    expected = {}
    for schedule, normalization, variational in CASES:
        keras.backend.clear_session()
        stack = MirroredConvStack(
            filters=(3, 4),
            input_shape=(12, 12, 2),
            normalization=normalization,
            variational=variational,
            latent_dim=5 if variational else None,
        )
        trainer = RecursiveTrainer(stack, schedule=schedule)
        trainer.compile()
        trainer.fit(
            x, epochs=1, batch_size=4, fine_tune_epochs=1 if schedule == "greedy" else 0, verbose=0
        )
        name = f"{schedule}-{normalization}-{'vae' if variational else 'ae'}"
        for part in ("model", "encoder", "decoder"):
            model = getattr(trainer, part)
            model.save(tmp_path / f"{name}-{part}.keras")
        expected[name] = {
            "model": trainer.model.predict(x, verbose=0).tolist(),
            "code": trainer.encoder.predict(x, verbose=0).tolist(),
        }
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    out = run_in_fresh_process(f"""
import json, numpy as np, keras
import keras_recursive_ae  # registers the library's layers: no custom_objects
root = {str(tmp_path)!r}
x = np.load(root + "/x.npy")
expected = json.loads(open(root + "/expected.json").read())
for name, values in expected.items():
    load = lambda part: keras.saving.load_model(f"{{root}}/{{name}}-{{part}}.keras", safe_mode=True)
    model, encoder, decoder = load("model"), load("encoder"), load("decoder")
    np.testing.assert_array_equal(model.predict(x, verbose=0), np.array(values["model"], "float32"))
    code = encoder.predict(x, verbose=0)
    np.testing.assert_array_equal(code, np.array(values["code"], "float32"))
    np.testing.assert_allclose(decoder.predict(code, verbose=0), np.array(values["model"]), atol=1e-6)
    print(name, "ok")
""")
    assert out.split().count("ok") == len(CASES)


@pytest.mark.slow
def test_two_runs_with_the_same_seed_give_identical_weights(tmp_path):
    script = """
import sys
import numpy as np, keras
from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
keras.utils.set_random_seed(3)
x = np.random.default_rng(0).random((32, 16, 16, 3), dtype="float32")
trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 8), input_shape=(16, 16, 3),
                                             normalization="shared"))
trainer.compile()
trainer.fit(x, epochs=2, batch_size=8, fine_tune_epochs=1, verbose=0)
np.savez(OUTPUT, *trainer.model.get_weights())
"""
    for run in ("first", "second"):
        run_in_fresh_process(script.replace("OUTPUT", repr(str(tmp_path / f"{run}.npz"))))
    first, second = np.load(tmp_path / "first.npz"), np.load(tmp_path / "second.npz")
    assert len(first.files) > 4
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
