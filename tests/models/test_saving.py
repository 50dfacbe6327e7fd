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


def test_a_saved_stack_loads_as_a_stack_with_its_levels_and_trains_on(tmp_path):
    # keras-hub's Backbone pattern: the object you configure is the one you save.
    stack = MirroredConvStack(filters=(4, 4), input_shape=(8, 8, 1), normalization="shared")
    trainer = RecursiveTrainer(stack)
    trainer.compile()
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype="float32")
    trainer.fit(x, epochs=1, batch_size=4, verbose=0)
    assert trainer.model is stack  # what callbacks see and ModelCheckpoint saves
    stack.save(tmp_path / "stack.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", stack.predict(x, verbose=0))
    out = run_in_fresh_process(
        f"""
import numpy as np, keras
from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
loaded = keras.saving.load_model({str(tmp_path / "stack.keras")!r})
assert type(loaded) is MirroredConvStack, type(loaded)
x = np.load({str(tmp_path / "x.npy")!r})
np.testing.assert_allclose(loaded.predict(x, verbose=0), np.load({str(tmp_path / "y.npy")!r}),
                           rtol=1e-5, atol=1e-6)
norm = loaded.get_layer("shared_norm_1")
assert norm in loaded.encoder_level_layers(1) and norm in loaded.decoder_level_layers(2)
trainer = RecursiveTrainer(loaded)
trainer.compile()
print(trainer.fit(x, epochs=1, batch_size=4, verbose=0).history["stage"], loaded.shapes)
"""
    )
    assert "[1, 2] [(8, 8, 1), (4, 4, 4), (2, 2, 4)]" in out


def test_an_autoencoder_of_your_own_blocks_reloads_as_itself_with_its_shared_norm(tmp_path):
    # The Backbone pattern for any pair: the model you train is the model you
    # load, levels included; the norm that E_1 and D_2 share stays one layer.
    from keras_recursive_ae import SharedBatchNorm, SymmetricAutoencoder

    layers = keras.layers
    norm = SharedBatchNorm(name="norm_1")
    encoder = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.Sequential([layers.Conv2D(4, 3, strides=2, padding="same"), norm]),
            layers.Conv2D(4, 3, strides=2, padding="same", name="e2"),
        ]
    )
    code = keras.Input((2, 2, 4))
    decoder = [
        keras.Model(
            code,
            norm(layers.Conv2DTranspose(4, 3, strides=2, padding="same")(code), site="decoder"),
        ),
        layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid", name="d1"),
    ]
    trainer = RecursiveTrainer(encoder, decoder)
    trainer.compile()
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype="float32")
    trainer.fit(x, epochs=1, batch_size=4, verbose=0)
    assert isinstance(trainer.model, SymmetricAutoencoder)
    trainer.model.save(tmp_path / "pair.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", trainer.model.predict(x, verbose=0))
    out = run_in_fresh_process(
        f"""
import numpy as np, keras
from keras_recursive_ae import RecursiveTrainer, SharedBatchNorm, SymmetricAutoencoder
loaded = keras.saving.load_model({str(tmp_path / "pair.keras")!r})
assert type(loaded) is SymmetricAutoencoder, type(loaded)
x = np.load({str(tmp_path / "x.npy")!r})
np.testing.assert_array_equal(loaded.predict(x, verbose=0), np.load({str(tmp_path / "y.npy")!r}))
norms = [l for l in loaded.layers if isinstance(l, SharedBatchNorm)]
assert len(norms) == 1, norms
assert norms[0] in loaded.encoder_level_layers(1) and norms[0] in loaded.decoder_level_layers(2)
trainer = RecursiveTrainer(loaded)
trainer.compile()
print(trainer.fit(x, epochs=1, batch_size=4, verbose=0).history["stage"], loaded.shapes)
"""
    )
    assert "[1, 2] [(8, 8, 1), (4, 4, 4), (2, 2, 4)]" in out


def test_why_your_blocks_are_saved_as_one_graph_not_one_by_one():
    # Serialized block by block, a SharedBatchNorm that E_1 and D_2 share
    # comes back as two layers (Keras keeps sharing only inside one graph):
    # so a SymmetricAutoencoder saves its flat graph with the levels' places.
    from keras_recursive_ae import SharedBatchNorm

    layers = keras.layers
    norm = SharedBatchNorm(name="norm_1")
    encoder_1 = keras.Sequential(
        [keras.Input((8, 8, 1)), layers.Conv2D(4, 3, padding="same"), norm]
    )
    code = keras.Input((8, 8, 4))
    decoder_2 = keras.Model(code, norm(layers.Conv2D(4, 3, padding="same")(code), site="decoder"))
    copies = [
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(block))
        for block in (encoder_1, decoder_2)
    ]
    norms = [b.get_layer("norm_1") for b in copies]
    assert norms[0] is not norms[1]  # the sharing is lost
