"""benchmarks/bench_greedy_failures.py: its arguments, diagnostics and tables (no LFW)."""

import benchmark_scripts
import keras
import numpy as np
import pytest

from keras_recursive_ae import RecursiveTrainer


@pytest.fixture(scope="module")
def bench():
    return benchmark_scripts.load("bench_greedy_failures")


def test_defaults_are_the_issue_workload(bench):
    args = bench.parse_args([])
    assert (args.images, args.image_size, args.test_images) == (4000, 32, 0)
    assert args.parts == ["user", "paper"]
    assert args.variants == ["bn_dropout", "bn", "dropout", "neither", "bn_encoder_dropout"]
    assert args.filters == [32, 64, 128] and args.dropout == 0.2
    assert (args.greedy_epochs, args.end_to_end_epochs, args.paper_epochs) == (4, 12, 3)
    assert (args.batch_size, args.learning_rate, args.seed) == (32, 1e-3, 0)
    assert args.json is None


def test_lists_are_kept_in_table_order(bench):
    args = bench.parse_args(["--variants", "neither, bn", "--parts", "paper,user"])
    assert args.variants == ["bn", "neither"] and args.parts == ["user", "paper"]
    args = bench.parse_args(["--filters", "8,16", "--dropout", "0.5", "--parts", "user"])
    assert args.filters == [8, 16] and args.dropout == 0.5 and args.parts == ["user"]


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--variants", "bn,batchnorm"], "--variants"),
        (["--variants", ","], "--variants"),
        (["--variants", "bn,bn"], "--variants"),
        (["--parts", "user,stack"], "--parts"),
        (["--parts", ""], "--parts"),
        (["--filters", "32,a"], "--filters"),
        (["--filters", "32,0"], "--filters"),
        (["--filters", ""], "--filters"),
        (["--dropout", "1"], "--dropout"),
        (["--dropout", "0"], "--dropout"),
        (["--dropout", "lots"], "--dropout"),
        (["--greedy-epochs", "0"], "--greedy-epochs"),
        (["--end-to-end-epochs", "0"], "--end-to-end-epochs"),
        (["--paper-epochs", "0"], "--paper-epochs"),
        (["--images", "-1"], "--images"),
        (["--image-size", "0"], "--image-size"),
        (["--learning-rate", "0"], "--learning-rate"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_values_are_refused_naming_the_option(bench, capsys, argv, option):
    with pytest.raises(SystemExit) as raised:
        bench.parse_args(argv)
    assert raised.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert option in error and "error" in error and "Received" in error


# ------------------------------------------------------------ pure logic


def test_image_errors_and_scale(bench):
    images = np.zeros((2, 2, 2, 1), "float32")
    rebuilt = images.copy()
    rebuilt[0] = 0.5  # image 0: 4 values off by 0.5; image 1 exact
    errors = bench.image_errors(rebuilt, images)
    assert errors["mse"] == pytest.approx(0.125)
    assert errors["sse"] == pytest.approx(0.5)  # (1.0 + 0.0) / 2 images
    target = np.array([1.0, 2.0, -3.0])
    assert bench.scale(0.8 * target, target) == pytest.approx(0.8)
    assert bench.scale(target + np.array([1.0, -0.5, 0.0]), target) == pytest.approx(1.0)


def test_level_diagnostics_on_levels_with_known_errors(bench):
    # T_1 = 2x, T_2 = 4x; D_2 adds a, D_1 adds b: each level alone is off by
    # its own constant, but D_1 fed R_1 = T_1 + a is off by a / 2 + b.
    a, b = 0.2, 0.1
    x = np.random.default_rng(0).random((5, 3, 3, 2))
    diagnostics = bench.level_diagnostics(
        [lambda t: 2 * t, lambda t: 2 * t],
        [lambda t: t / 2 + b, lambda t: t / 2 + a],
        x,
    )
    truncated, levels = diagnostics["truncated"], diagnostics["levels"]
    assert [t["level"] for t in truncated] == [1, 2] == [lv["level"] for lv in levels]
    assert truncated[0]["mse"] == pytest.approx(b**2)
    assert truncated[1]["mse"] == pytest.approx((a / 2 + b) ** 2)
    assert truncated[1]["sse"] == pytest.approx((a / 2 + b) ** 2 * 18)  # 3 * 3 * 2 values
    assert levels[0]["exact_mse"] == pytest.approx(b**2)
    assert levels[0]["rebuilt_mse"] == pytest.approx((a / 2 + b) ** 2)
    # The innermost level is fed T_n in both cases.
    assert levels[1]["exact_mse"] == pytest.approx(a**2) == levels[1]["rebuilt_mse"]
    assert levels[0]["mean_tensor_mse"] == pytest.approx(np.mean(np.var(x, axis=0)))
    assert levels[1]["mean_tensor_mse"] == pytest.approx(4 * np.mean(np.var(x, axis=0)))
    t1 = 2 * x
    assert levels[1]["scale"] == pytest.approx(np.sum((t1 + a) * t1) / np.sum(t1 * t1))
    assert levels[0]["scale"] == pytest.approx(np.sum((x + b) * x) / np.sum(x * x))


def test_level_diagnostics_refuses_unequal_depths(bench):
    with pytest.raises(ValueError, match="2 encoder and 1 decoder"):
        bench.level_diagnostics([abs, abs], [abs], np.zeros((1, 2)))


def _result(model, depth, recalibrated=False):
    result = {
        "model": model,
        "greedy": {"mse": 0.01, "sse": 30.72},
        "end_to_end": {"mse": 0.02, "sse": 61.44},
        "diagnostics": {
            "truncated": [{"level": k, "mse": k / 1000, "sse": 0.0} for k in range(1, depth + 1)],
            "levels": [
                {
                    "level": k,
                    "exact_mse": 0.002,
                    "rebuilt_mse": 0.003 if k < depth else 0.002,
                    "mean_tensor_mse": 0.01,
                    "scale": 0.8,
                }
                for k in range(1, depth + 1)
            ],
        },
    }
    if recalibrated:
        result["greedy_bn_recalibrated"] = {"mse": 0.005, "sse": 15.36}
    return result


def test_markdown_table(bench):
    table = bench.markdown_table(["a", "b"], [[1, "x"], [2.5, ""]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2.5 |  |"]


def test_tables(bench):
    results = [_result("user bn", 3, recalibrated=True), _result("paper", 5)]
    rows = bench.summary_rows(results, {"mse": 0.04, "sse": 122.88})
    assert rows[0] == ["mean training face", "", "0.0400", "122.9"]
    assert rows[1] == ["user bn", "greedy", "0.0100", "30.7"]
    assert rows[2] == ["user bn", "end_to_end", "0.0200", "61.4"]
    assert (
        rows[3][0] == "user bn"
        and "re-estimated" in rows[3][1]
        and rows[3][2:]
        == [
            "0.0050",
            "15.4",
        ]
    )
    assert [r[:2] for r in rows[4:]] == [["paper", "greedy"], ["paper", "end_to_end"]]

    headers, rows = bench.truncation_rows(results)
    assert headers == [f"cut at {k}" for k in range(1, 6)]
    assert rows[0] == ["user bn", "0.0010", "0.0020", "0.0030", "", ""]
    assert rows[1] == ["paper", "0.0010", "0.0020", "0.0030", "0.0040", "0.0050"]

    rows = bench.level_rows(results)
    assert len(rows) == 8
    assert rows[0] == ["user bn", 1, "0.00200", "0.00300", "1.50", "0.01000", "0.800"]
    assert rows[2][4] == "1.00"  # the innermost level: the same input

    text = bench.report(results, {"mse": 0.04, "sse": 122.88})
    assert text.count("| model |") == 3 and "cut at 5" in text


# ------------------------------------------------- a tiny model, untrained


@pytest.mark.parametrize(
    "variant, norms, dropouts",
    # Two levels: both encoder levels and decoder level 2 end in BN -> LeakyReLU -> Dropout.
    [("bn_dropout", 3, 3), ("bn", 3, 0), ("dropout", 0, 3), ("neither", 0, 0)]
    + [("bn_encoder_dropout", 3, 2)],
)
def test_the_user_pair_of_each_variant(bench, variant, norms, dropouts):
    encoder, decoder, decoder_norms = bench.build_user_pair([4, 6], *bench.VARIANTS[variant], 0.2)
    trainer = RecursiveTrainer(encoder, decoder, input_shape=(8, 8, 3))
    autoencoder = trainer.autoencoder
    assert autoencoder.shapes == [(8, 8, 3), (4, 4, 4), (2, 2, 6)]
    layers = [layer for k in (1, 2) for layer in autoencoder.encoder_level_layers(k)]
    layers += [layer for k in (1, 2) for layer in autoencoder.decoder_level_layers(k)]
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds.count("BatchNormalization") == norms
    assert kinds.count("Dropout") == dropouts
    level_1 = autoencoder.decoder_level_layers(1)
    assert [type(layer).__name__ for layer in level_1 if not isinstance(layer, keras.Model)] == [
        "Conv2DTranspose"
    ]
    assert autoencoder.decoder_levels[0].output.shape[1:] == (8, 8, 3)
    if norms:
        ((conv, norm),) = decoder_norms
        assert norm in autoencoder.decoder_level_layers(2)
        assert conv in autoencoder.decoder_level_layers(2)
    else:
        assert decoder_norms == [None]


def test_diagnose_cuts_the_trainers_model_at_its_levels(bench):
    encoder, decoder, _ = bench.build_user_pair([4, 6, 8], True, True, True, 0.2)
    trainer = RecursiveTrainer(encoder, decoder, input_shape=(16, 16, 3))
    x = np.random.default_rng(1).random((20, 16, 16, 3)).astype("float32")
    diagnostics = bench.diagnose(trainer, x)
    assert len(diagnostics["truncated"]) == 3 == len(diagnostics["levels"])
    full = bench.score(trainer.model, x)
    # Truncated at n is the full model; the innermost level gets T_n either way.
    assert diagnostics["truncated"][-1]["mse"] == pytest.approx(full["mse"], rel=1e-5)
    assert diagnostics["truncated"][-1]["sse"] == pytest.approx(full["sse"], rel=1e-5)
    levels = diagnostics["levels"]
    assert levels[-1]["exact_mse"] == pytest.approx(levels[-1]["rebuilt_mse"])
    assert levels[0]["rebuilt_mse"] == pytest.approx(full["mse"], rel=1e-5)
    assert levels[0]["exact_mse"] == pytest.approx(diagnostics["truncated"][0]["mse"])


def test_recalibration_normalizes_each_decoder_norms_actual_input(bench):
    encoder, decoder, norms = bench.build_user_pair([4, 6, 8], True, True, True, 0.2)
    trainer = RecursiveTrainer(encoder, decoder, input_shape=(16, 16, 3))
    x = np.random.default_rng(2).random((40, 16, 16, 3)).astype("float32")
    encoder_weights = [w.copy() for w in trainer.encoder.get_weights()]
    bench.recalibrate_decoder_norms(trainer, norms, x)
    autoencoder = trainer.autoencoder
    rebuilt = bench.batched(autoencoder.encoder)(x)  # R_3 = T_3
    for k in (3, 2):
        conv, norm = norms[k - 2]
        features = keras.ops.convert_to_numpy(conv(rebuilt))
        normalized = keras.ops.convert_to_numpy(norm(features, training=False))
        # Per channel, over the calibration images: mean beta (0), variance
        # var / (var + epsilon) with gamma 1.
        variance = features.var(axis=(0, 1, 2))
        assert np.allclose(normalized.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
        assert np.allclose(
            normalized.var(axis=(0, 1, 2)), variance / (variance + norm.epsilon), rtol=1e-3
        )
        rebuilt = bench.batched(autoencoder.decoder_levels[k - 1])(rebuilt)
    # The encoder (its BN statistics included) is left alone.
    for before, after in zip(encoder_weights, trainer.encoder.get_weights()):
        np.testing.assert_array_equal(before, after)
