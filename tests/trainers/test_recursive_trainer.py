import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_in_fresh_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer, SharedBatchNorm

layers = keras.layers


def _images(n=32, shape=(16, 16, 3), seed=0):
    return np.random.default_rng(seed).random((n,) + shape, dtype="float32")


def _user_pair(with_input=True):
    """A user's own symmetric pair with a SharedBatchNorm at both sites of T_1."""
    norm = SharedBatchNorm(name="norm_1")
    level_1 = keras.Sequential(
        [layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"), norm], name="e1"
    )
    level_2 = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="e2")
    encoder = keras.Sequential(
        ([keras.Input((16, 16, 3))] if with_input else []) + [level_1, level_2]
    )
    code = keras.Input((4, 4, 8))
    rebuilt = layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(code)
    decoder_2 = keras.Model(code, norm(rebuilt, site="decoder"), name="d2")
    decoder_1 = layers.Conv2DTranspose(
        3, 3, strides=2, padding="same", activation="sigmoid", name="d1"
    )
    decoder = keras.Sequential([decoder_2, decoder_1])  # innermost first
    return encoder, decoder


def _weights_by_layer(layer_list):
    return {id(l): [np.array(w) for w in l.weights] for l in layer_list}


def test_user_pair_trains_and_history_names_the_stages():
    encoder, decoder = _user_pair()
    trainer = RecursiveTrainer(encoder, decoder)
    trainer.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = _images()
    history = trainer.fit(x, epochs=[2, 3], batch_size=8, validation_data=x[:8], verbose=0)
    assert history.history["stage"] == [1, 1, 2, 2, 2]
    assert history.epoch == [0, 1, 2, 3, 4]
    for key in ("loss", "mae", "val_loss", "val_mae"):
        assert len(history.history[key]) == 5
        assert np.all(np.isfinite(history.history[key]))
    for model in (trainer.model, trainer.encoder, trainer.decoder):
        assert isinstance(model, keras.Model)  # functional: savable and loadable
    assert trainer.encoder.output.shape[1:] == (4, 4, 8)
    assert trainer.model.predict(x[:2], verbose=0).shape == (2, 16, 16, 3)


def test_outermost_first_decoder_list_gives_the_same_levels():
    encoder, decoder = _user_pair()
    outer_first = list(decoder.layers)[::-1]
    trainer = RecursiveTrainer(
        list(encoder.layers), outer_first, input_shape=(16, 16, 3), decoder_order="outermost_first"
    )
    assert trainer.autoencoder.shapes == [(16, 16, 3), (8, 8, 4), (4, 4, 8)]
    assert [d.name for d in trainer.autoencoder.decoder_blocks] == ["d1", "d2"]


def test_input_shape_is_taken_from_the_data():
    encoder, decoder = _user_pair(with_input=False)
    trainer = RecursiveTrainer(encoder, decoder)
    with pytest.raises(ValueError, match="does not know the input shape"):
        trainer.model  # noqa: B018 (the property raises)
    trainer.compile()
    trainer.fit(_images(8), epochs=1, verbose=0)
    assert trainer.model.input.shape[1:] == (16, 16, 3)


def test_progress_bars_are_labelled_with_the_stage(capsys):
    trainer = RecursiveTrainer(MirroredConvStack(filters=(2, 2), input_shape=(8, 8, 1)))
    trainer.compile()
    trainer.fit(_images(8, (8, 8, 1)), epochs=2, batch_size=4, verbose=1)
    out = capsys.readouterr().out
    assert "Stage 1/2 - Epoch 1/2" in out and "Stage 2/2 - Epoch 2/2" in out
    assert "━" in out  # Keras' own progress bar
    trainer.fit(_images(8, (8, 8, 1)), epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_tf_data_inputs_and_validation():
    x = _images(24)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
    pairs = tf.data.Dataset.from_tensor_slices((x, x)).batch(8)
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 8), input_shape=(16, 16, 3)))
    trainer.compile()
    history = trainer.fit(dataset, epochs=1, validation_data=pairs, verbose=0)
    assert history.history["stage"] == [1, 2]
    assert np.all(np.isfinite(history.history["val_loss"]))


@pytest.mark.parametrize("cache", ["memory", "off"])
def test_training_lowers_the_stage_loss(cache):
    x = _images(64)
    trainer = RecursiveTrainer(
        MirroredConvStack(filters=(8, 8), input_shape=(16, 16, 3)), cache=cache
    )
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = trainer.fit(x, epochs=4, batch_size=16, verbose=0)
    loss = np.array(history.history["loss"])
    assert loss[3] < loss[0] and loss[7] < loss[4]


def test_cache_modes_train_the_same_weights():
    results = []
    for cache in ("memory", "off"):
        keras.utils.set_random_seed(1)
        stack = MirroredConvStack(filters=(4, 4), input_shape=(8, 8, 1), normalization="shared")
        trainer = RecursiveTrainer(stack, cache=cache)
        trainer.compile(optimizer="adam")
        trainer.fit(_images(16, (8, 8, 1)), epochs=2, batch_size=8, shuffle=False, verbose=0)
        results.append(trainer.model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@st.composite
def freezing_cases(draw):
    depth = draw(st.integers(1, 4))
    return {
        "depth": depth,
        "level": draw(st.integers(1, depth)),
        "normalization": draw(st.sampled_from([None, "batch", "shared"])),
        "cache": draw(st.sampled_from(["memory", "off"])),
    }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(freezing_cases())
def test_a_stage_trains_its_level_and_nothing_else(case):
    keras.backend.clear_session()
    depth, level = case["depth"], case["level"]
    stack = MirroredConvStack(
        filters=[3] * depth, input_shape=(16, 16, 2), normalization=case["normalization"]
    )
    trainer = RecursiveTrainer(stack, cache=case["cache"])
    trainer.compile(optimizer=keras.optimizers.SGD(0.05))
    all_layers = [l for l in stack.layers if l.weights]
    flags = {id(l): l.trainable for l in all_layers}
    before = _weights_by_layer(all_layers)
    training = stack.encoder_level_layers(level) + [
        l
        for l in stack.decoder_level_layers(level)
        if l not in [x for k in range(1, level) for x in stack.encoder_level_layers(k)]
    ]
    epochs = [0] * depth
    epochs[level - 1] = 1
    trainer.fit(_images(16, (16, 16, 2)), epochs=epochs, batch_size=8, verbose=0)
    after = _weights_by_layer(all_layers)
    for layer in all_layers:
        changed = [not np.array_equal(a, b) for a, b in zip(before[id(layer)], after[id(layer)])]
        if layer in training:
            assert any(changed), f"{layer.name} of level {level} did not train"
        else:
            assert not any(changed), f"{layer.name} moved in stage {level}"
    assert {id(l): l.trainable for l in all_layers} == flags


def test_trained_models_reload_in_a_fresh_process(tmp_path):
    encoder, decoder = _user_pair()
    trainer = RecursiveTrainer(encoder, decoder)
    trainer.compile()
    x = _images(16)
    trainer.fit(x, epochs=1, batch_size=8, verbose=0)
    np.save(tmp_path / "x.npy", x)
    for name in ("model", "encoder", "decoder"):
        model = getattr(trainer, name)
        model.save(tmp_path / f"{name}.keras")
        inputs = x if name != "decoder" else trainer.encoder.predict(x, verbose=0)
        np.save(tmp_path / f"{name}_in.npy", inputs)
        np.save(tmp_path / f"{name}_out.npy", model.predict(inputs, verbose=0))
    out = run_in_fresh_process(f"""
import numpy as np, keras
import keras_recursive_ae
root = {str(tmp_path)!r}
for name in ("model", "encoder", "decoder"):
    model = keras.saving.load_model(f"{{root}}/{{name}}.keras")
    got = model.predict(np.load(f"{{root}}/{{name}}_in.npy"), verbose=0)
    np.testing.assert_array_equal(got, np.load(f"{{root}}/{{name}}_out.npy"))
    norms = [l for l in model.layers if isinstance(l, keras_recursive_ae.SharedBatchNorm)]
    print(name, len(norms), len(model.weights))
""")
    counts = {line.split()[0]: line.split()[1:] for line in out.strip().splitlines()}
    assert counts["model"] == ["1", str(len(trainer.model.weights))]


# --- bad input ---------------------------------------------------------------


def test_decoder_level_with_the_wrong_output_shape():
    encoder = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            layers.Conv2D(4, 3, strides=2, padding="same"),
            layers.Conv2D(8, 3, strides=2, padding="same"),
        ]
    )
    decoder = keras.Sequential(
        [
            layers.Conv2DTranspose(5, 3, strides=2, padding="same", name="bad"),
            layers.Conv2DTranspose(3, 3, strides=2, padding="same"),
        ]
    )
    with pytest.raises(ValueError, match=r"Decoder level 2 \('bad'\).*\(8, 8, 4\).*\(8, 8, 5\)"):
        RecursiveTrainer(encoder, decoder)


def test_decoder_level_that_cannot_take_its_input():
    encoder = [layers.Conv2D(4, 3, strides=2, padding="same")]
    decoder = [layers.Dense(3, name="flat")]
    decoder = [keras.Sequential([layers.Flatten(), layers.Dense(3)], name="flat")]
    with pytest.raises(ValueError, match=r"Decoder level 1 \('flat'\).*\(16, 16, 3\)"):
        RecursiveTrainer(encoder, decoder, input_shape=(16, 16, 3))


def test_encoder_and_decoder_of_different_depths():
    with pytest.raises(ValueError, match="2 encoder levels.*1 decoder levels"):
        RecursiveTrainer([layers.Conv2D(4, 3), layers.Conv2D(4, 3)], [layers.Conv2D(3, 3)])


def test_encoder_of_the_wrong_type():
    with pytest.raises(TypeError, match="encoder of type Dense"):
        RecursiveTrainer(layers.Dense(3), [layers.Dense(3)])


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((4, 16, 16)), r"shape \(16, 16, 3\).*Received: x with shape \(4, 16, 16\)"),
        (np.zeros((4, 16, 16, 1)), r"Received: x with shape \(4, 16, 16, 1\)"),
        (np.zeros((0, 16, 16, 3)), r"`x` is empty.*\(0, 16, 16, 3\)"),
        ([1, 2, 3], "x of type list"),
    ],
)
def test_images_of_the_wrong_shape(x, message):
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4,), input_shape=(16, 16, 3)))
    trainer.compile()
    with pytest.raises((ValueError, TypeError), match=message):
        trainer.fit(x, verbose=0)


def test_empty_and_unbatched_datasets():
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4,), input_shape=(16, 16, 3)))
    trainer.compile()
    empty = tf.data.Dataset.from_tensor_slices(_images(4)).take(0).batch(2)
    with pytest.raises(ValueError, match="`x` is empty"):
        trainer.fit(empty, verbose=0)
    filtered = tf.data.Dataset.from_tensor_slices(_images(4)).filter(lambda x: False).batch(2)
    with pytest.raises(ValueError, match="`x` is empty"):
        trainer.fit(filtered, verbose=0)
    unbatched = tf.data.Dataset.from_tensor_slices(_images(4))
    with pytest.raises(ValueError, match=r"element shape \(16, 16, 3\).*\.batch"):
        trainer.fit(unbatched, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        trainer.fit(_images(4), validation_data=empty, verbose=0)


def test_invalid_trainer_arguments():
    stack = MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="cache='disk-ish'"):
        RecursiveTrainer(stack, cache="disk-ish")
    with pytest.raises(ValueError, match="decoder="):
        RecursiveTrainer(stack, [layers.Conv2D(3, 3)])
    trainer = RecursiveTrainer(stack)
    with pytest.raises(RuntimeError, match="compile"):
        trainer.fit(_images(4))
    with pytest.raises(ValueError, match="nope"):
        trainer.compile(optimizer="nope")
    trainer.compile()
    with pytest.raises(ValueError, match=r"epochs=\[1, 2, 3\]"):
        trainer.fit(_images(4), epochs=[1, 2, 3])
    with pytest.raises(ValueError, match="epochs=-1"):
        trainer.fit(_images(4), epochs=-1)


def test_an_error_inside_a_stage_leaves_the_trainable_flags_as_they_were():
    stack = MirroredConvStack(filters=(4, 4, 4), input_shape=(8, 8, 1), normalization="shared")
    flags = {id(l): l.trainable for l in stack.layers}
    stack.get_layer("encoder_conv_2").trainable = False  # the user's own choice
    flags[id(stack.get_layer("encoder_conv_2"))] = False

    class Explode(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:  # stage 3's first epoch in the run
                raise RuntimeError("boom")

    trainer = RecursiveTrainer(stack)
    trainer.compile()
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(_images(8, (8, 8, 1)), epochs=1, callbacks=[Explode()], verbose=0)
    assert {id(l): l.trainable for l in stack.layers} == flags
