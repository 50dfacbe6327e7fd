"""The argument handling of benchmarks/bench_backends.py (no timing, no training)."""

import sys

import benchmark_scripts
import pytest


@pytest.fixture(scope="module")
def bench():
    return benchmark_scripts.load("bench_backends")


def test_defaults_are_the_documented_workload(bench):
    args = bench.parse_args([])
    assert (args.images, args.image_size, args.epochs, args.batch_size) == (1024, 128, 2, 32)
    assert args.repeats == 3
    assert args.variants == ["plain", "greedy", "end_to_end"]
    assert args.runs == ["tensorflow", "jax", "torch"]
    assert not args.backends_given
    assert args.python == {} and args.env == {}


def test_tagged_runs_pythons_and_settings(bench):
    args = bench.parse_args(
        [
            "--backends",
            "tensorflow,jax,jax@eigen1,torch@1thread",
            "--variants",
            "plain,levels",
            "--python",
            f"jax={sys.executable},torch={sys.executable}",
            "--python",
            f"tensorflow={sys.executable}",
            "--env",
            "jax@eigen1:XLA_FLAGS=--xla_cpu_multi_thread_eigen=false --xla_dump_to=a:b",
            "--env",
            "torch@1thread:OMP_NUM_THREADS=1",
            "--env",
            "torch@1thread:MKL_NUM_THREADS=1",
        ]
    )
    assert args.runs == ["tensorflow", "jax", "jax@eigen1", "torch@1thread"]
    assert args.variants == ["plain", "levels"]
    assert set(args.python) == {"jax", "torch", "tensorflow"}
    # Everything after the first "=" is the value, colons and "=" included.
    assert args.env == {
        "jax@eigen1": {
            "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false --xla_dump_to=a:b",
        },
        "torch@1thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    }
    # A tagged run takes its backend's Python and only its own settings.
    assert bench._python_of(args, "jax@eigen1") == sys.executable
    tagged, untagged = bench._env(args, "jax@eigen1"), bench._env(args, "jax")
    assert tagged["KERAS_BACKEND"] == untagged["KERAS_BACKEND"] == "jax"
    assert tagged["XLA_FLAGS"].startswith("--xla_cpu_multi_thread_eigen=false")
    assert untagged.get("XLA_FLAGS") == bench.os.environ.get("XLA_FLAGS")
    assert bench._env(args, "torch@1thread")["KERAS_BACKEND"] == "torch"


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--repeats", "0"], "--repeats"),
        (["--epochs", "-1"], "--epochs"),
        (["--images", "many"], "--images"),
        (["--images", "-5"], "--images"),
        (["--image-size", "0"], "--image-size"),
        (["--batch-size", "0"], "--batch-size"),
        (["--variants", "plain,fast"], "--variants"),
        (["--variants", ","], "--variants"),
        (["--variants", "plain,plain"], "--variants"),
        (["--backends", "tensorflow,mxnet"], "--backends"),
        (["--backends", "jax@"], "--backends"),
        (["--backends", "jax@a b"], "--backends"),
        (["--backends", "jax,jax"], "--backends"),
        (["--python", "jax"], "--python"),
        (["--python", "mxnet=python3"], "--python"),
        (["--python", "jax=/nonexistent/bin/python"], "--python"),
        (["--env", "jax:XLA_FLAGS"], "--env"),
        (["--env", "XLA_FLAGS=--x"], "--env"),
        (["--env", "jax:1BAD=1"], "--env"),
        (["--backends", "jax", "--env", "torch:OMP_NUM_THREADS=1"], "--env"),
        (["--backends", "jax", "--env", "jax@other:XLA_FLAGS=--x"], "--env"),
    ],
)
def test_bad_values_are_refused_naming_the_option(bench, capsys, argv, option):
    with pytest.raises(SystemExit) as raised:
        bench.parse_args(argv)
    assert raised.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert option in error and "error" in error


def test_every_repeat_runs_each_pair_once_in_a_rotated_order(bench):
    runs, variants = ["tensorflow", "jax", "torch"], ["plain", "greedy"]
    order = bench.schedule(runs, variants, repeats=3)
    assert len(order) == 3 * len(runs) * len(variants)
    for repeat in (1, 2, 3):
        pairs = [(v, r) for n, v, r in order if n == repeat]
        assert sorted(pairs) == sorted((v, r) for v in variants for r in runs)
    firsts = [next((v, r) for n, v, r in order if n == repeat) for repeat in (1, 2, 3)]
    assert firsts == [("plain", "tensorflow"), ("greedy", "jax"), ("plain", "torch")]
