"""The argument handling of benchmarks/bench_fine_tuning.py (no training)."""

import benchmark_scripts
import pytest


@pytest.fixture(scope="module")
def bench():
    return benchmark_scripts.load("bench_fine_tuning")


def test_defaults_are_the_measured_workload(bench):
    args = bench.parse_args([])
    assert (args.images, args.image_size, args.test_images) == (0, 128, 0)
    assert (args.epochs, args.fine_tune_epochs, args.learning_rate) == (3, 2, 1e-3)
    assert args.fine_tune_rates == [1e-3, 3e-4, 1e-4, 3e-5]
    assert args.normalization == "none"


def test_rates_take_numbers_and_the_library_default(bench):
    assert bench.parse_rates("1e-4, default,0.5") == [1e-4, "default", 0.5]


@pytest.mark.parametrize("rates", ["0", "-1e-3", "fast", "1e-3,,", "nan"])
def test_bad_rates_are_refused_naming_the_option(bench, rates, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args([f"--fine-tune-rates={rates}"])
    assert f"--fine-tune-rates {rates!r}" in capsys.readouterr().err


def test_bad_normalization_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--normalization", "layer"])
    assert "--normalization" in capsys.readouterr().err
