"""The argument handling of benchmarks/bench_vae_kl.py (no training)."""

import benchmark_scripts
import pytest


@pytest.fixture(scope="module")
def bench():
    return benchmark_scripts.load("bench_vae_kl")


def test_defaults_are_the_measured_workload(bench):
    args = bench.parse_args([])
    assert (args.images, args.image_size, args.test_images) == (0, 128, 0)
    assert (args.epochs, args.learning_rate, args.batch_size) == (3, 1e-3, 32)
    assert args.kl_scales == [1.0, 0.1, 0.01, 0.0]


def test_scales_take_numbers_of_at_least_zero(bench):
    assert bench.parse_scales("1, 0.5,0") == [1.0, 0.5, 0.0]


@pytest.mark.parametrize("scales", ["-1", "big", "1,,", "nan", "inf"])
def test_bad_scales_are_refused_naming_the_option(bench, scales, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args([f"--kl-scales={scales}"])
    assert f"--kl-scales {scales!r}" in capsys.readouterr().err
