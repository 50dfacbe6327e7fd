"""The argument handling of benchmarks/bench_joint_weights.py (no training)."""

import benchmark_scripts
import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    return benchmark_scripts.load("bench_joint_weights")


def test_defaults_compare_the_default_and_equal_weights_at_32_pixels(bench):
    args = bench.parse_args([])
    assert (args.images, args.image_size, args.epochs) == (4000, 32, 3)
    assert args.weightings == ["default", "equal"]
    assert args.normalization == "none"


@pytest.mark.parametrize("weightings", ["", "relative", "default,uniform", "1:-1", "1:x"])
def test_unknown_weightings_are_refused_naming_the_option(bench, weightings, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--weightings", weightings])
    assert "--weightings" in capsys.readouterr().err


def test_explicit_weights_are_colon_separated_outermost_first(bench):
    args = bench.parse_args(["--weightings", "default,equal,5:1:0.5"])
    assert args.weightings == ["default", "equal", "5:1:0.5"]
    assert bench.level_weights("default", 3) is None
    assert bench.level_weights("equal", 3) == [1.0, 1.0, 1.0]
    assert bench.level_weights("5:1:0.5", 3) == [5.0, 1.0, 0.5]


def test_normalization_builds_the_paper_network_with_it(bench):
    data = {"info": {"image_shape": [16, 16, 3]}}
    for name, expected in (("none", None), ("batch", "batch")):
        stack = bench.paper_network(bench.parse_args(["--normalization", name]), data)
        assert stack.get_config()["normalization"] == expected


def test_level_variances_are_those_of_the_inner_encoder_tensors(bench):
    from keras_recursive_ae import MirroredConvStack

    stack = MirroredConvStack(filters=(4, 8, 8), input_shape=(16, 16, 3))
    images = np.random.default_rng(0).random((8, 16, 16, 3), dtype="float32")
    t_1 = stack.encoder_levels[0].predict(images, verbose=0)
    t_2 = stack.encoder_levels[1].predict(t_1, verbose=0)
    np.testing.assert_allclose(
        bench.level_variances(stack, images), [t_1.var(), t_2.var()], rtol=1e-5
    )
