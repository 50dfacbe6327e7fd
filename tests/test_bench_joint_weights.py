"""The argument handling of benchmarks/bench_joint_weights.py (no training)."""

import benchmark_scripts
import pytest


@pytest.fixture(scope="module")
def bench():
    return benchmark_scripts.load("bench_joint_weights")


def test_defaults_compare_the_default_and_equal_weights_at_32_pixels(bench):
    args = bench.parse_args([])
    assert (args.images, args.image_size, args.epochs) == (4000, 32, 3)
    assert args.weightings == ["default", "equal"]


@pytest.mark.parametrize("weightings", ["", "relative", "default,uniform"])
def test_unknown_weightings_are_refused_naming_the_option(bench, weightings, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--weightings", weightings])
    assert "--weightings" in capsys.readouterr().err
