"""The pure logic of benchmarks/bench_time_to_quality.py (no timing, no training)."""

import pathlib

import benchmark_scripts
import pytest


@pytest.fixture(scope="module")
def bench():
    return benchmark_scripts.load("bench_time_to_quality")


def _curve(*points):
    return [{"epoch": i, "wall_s": wall, "sse": sse} for i, (wall, sse) in enumerate(points, 1)]


def test_defaults_are_the_issue_workload(bench):
    args = bench.parse_args([])
    assert (args.images, args.image_size, args.test_images) == (0, 128, 0)
    assert (args.epochs, args.fine_tune_epochs, args.batch_size) == (3, 1, 32)
    assert (args.learning_rate, args.budget, args.seed) == (1e-3, 4.0, 0)
    assert args.dtype_policy == "float32"
    assert args.rows == ["greedy", "greedy_fine_tune", "plain"]
    assert not args.numpy and args.data_npz is None and args.save_npz is None
    assert args.json is None and args.plot is None
    assert pathlib.Path(args.data_dir) == bench.REPO_ROOT.parent / "shared" / "data" / "lfw"


def test_rows_are_kept_in_table_order(bench):
    assert bench.parse_args(["--rows", "greedy"]).rows == ["greedy"]
    assert bench.parse_args(["--rows", "plain,greedy_fine_tune"]).rows == [
        "greedy_fine_tune",
        "plain",
    ]


def test_an_npz_file_means_numpy_feeding(bench, tmp_path):
    path = tmp_path / "faces.npz"
    path.write_bytes(b"")
    args = bench.parse_args(["--data-npz", str(path), "--dtype-policy", "mixed_bfloat16"])
    assert args.numpy and args.data_npz == str(path)
    assert args.dtype_policy == "mixed_bfloat16"


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--rows", "greedy,fast"], "--rows"),
        (["--rows", ","], "--rows"),
        (["--rows", "greedy,greedy"], "--rows"),
        (["--rows", "plain"], "--rows"),
        (["--budget", "0"], "--budget"),
        (["--budget", "-1"], "--budget"),
        (["--budget", "inf"], "--budget"),
        (["--budget", "four"], "--budget"),
        (["--learning-rate", "0"], "--learning-rate"),
        (["--epochs", "0"], "--epochs"),
        (["--fine-tune-epochs", "0"], "--fine-tune-epochs"),
        (["--images", "-1"], "--images"),
        (["--images", "many"], "--images"),
        (["--test-images", "-1"], "--test-images"),
        (["--image-size", "0"], "--image-size"),
        (["--batch-size", "0"], "--batch-size"),
        (["--seed", "-1"], "--seed"),
        (["--dtype-policy", "float64"], "--dtype-policy"),
        (["--data-npz", "/nonexistent/faces.npz"], "--data-npz"),
        (["--data-npz", "a.npz", "--save-npz", "b.npz"], "--save-npz"),
    ],
)
def test_bad_values_are_refused_naming_the_option(bench, capsys, argv, option):
    with pytest.raises(SystemExit) as raised:
        bench.parse_args(argv)
    assert raised.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert option in error and "error" in error
    assert "Received" in error


def test_first_reaching_takes_the_first_point_at_or_below(bench):
    curve = _curve((10.0, 50.0), (20.0, 30.0), (30.0, 25.0), (40.0, 20.0))
    assert bench.first_reaching(curve, 30.0)["epoch"] == 2  # equal counts
    assert bench.first_reaching(curve, 29.9)["epoch"] == 3
    assert bench.first_reaching(curve, 100.0)["epoch"] == 1
    assert bench.first_reaching(curve, 19.9) is None
    assert bench.first_reaching([], 1.0) is None
    # Not monotonic: the first crossing counts, not a later one.
    bumpy = _curve((1.0, 40.0), (2.0, 10.0), (3.0, 60.0), (4.0, 5.0))
    assert bench.first_reaching(bumpy, 20.0)["wall_s"] == 2.0


def test_should_stop_once_every_row_is_reached_or_past_its_own_budget(bench):
    rows = [(30.0, 400.0), (25.0, 100.0)]  # (target SSE, time limit) per greedy row
    assert bench.should_stop(_curve((10.0, 27.0)), rows) is None  # one target is not enough
    assert bench.should_stop(_curve((10.0, 25.0)), rows) == "reached"
    # Past the second row's limit, but the first row still has time left.
    assert bench.should_stop(_curve((100.5, 40.0)), rows) is None
    # The first row was reached earlier and the second is past its limit.
    assert bench.should_stop(_curve((50.0, 29.0), (100.5, 40.0)), rows) == "budget"
    assert bench.should_stop(_curve((100.0, 40.0), (400.5, 40.0)), rows) == "budget"
    assert bench.should_stop(_curve((400.0, 40.0)), rows) is None  # at the limit: one more
    # An earlier crossing counts even when a later epoch is worse.
    assert bench.should_stop(_curve((10.0, 24.0), (20.0, 35.0)), rows) == "reached"
    assert bench.should_stop(_curve((500.0, 20.0)), rows) == "reached"  # reached wins


def test_ratio_text(bench):
    assert bench.ratio_text(10.0, 40.0) == "0.25"
    assert bench.ratio_text(10.0, 50.0) == "0.20"
    assert bench.ratio_text(30.0, 20.0) == "1.50"
    # Never reached: the ratio is below greedy / plain's total, rounded up.
    assert bench.ratio_text(10.0, None, 40.0) == "below 0.25"
    assert bench.ratio_text(10.0, None, 39.0) == "below 0.26"  # 0.2564...
    assert bench.ratio_text(7.0, None, 100.0) == "below 0.07"  # not 0.08 from float noise
    assert bench.ratio_text(29.0, None, 100.0) == "below 0.29"


def test_summarize_row_when_plain_reaches_the_error(bench):
    curve = _curve((50.0, 40.0), (100.0, 28.0), (150.0, 20.0))
    row = bench.summarize_row("greedy", 25.0, 30.0, curve, 150.0)
    assert row["plain_epochs"] == 2 and row["plain_wall_s"] == 100.0
    assert row["ratio"] == 0.25 and row["ratio_text"] == "0.25"
    assert row["reached"] and row["meets_goal"] is True
    slow = bench.summarize_row("greedy_fine_tune", 40.0, 20.0, curve, 150.0)
    assert slow["plain_epochs"] == 3 and slow["ratio_text"] == "0.27"
    assert slow["meets_goal"] is False


def test_summarize_row_when_plain_never_gets_there(bench):
    curve = _curve((50.0, 40.0), (100.0, 35.0))
    row = bench.summarize_row("greedy", 20.0, 30.0, curve, 100.0)
    assert row["plain_epochs"] is None and row["plain_wall_s"] is None
    assert not row["reached"]
    assert row["ratio_text"] == "below 0.20" and row["meets_goal"] is True
    # A bound above the goal says nothing about the goal.
    late = bench.summarize_row("greedy", 40.0, 30.0, curve, 100.0)
    assert late["ratio_text"] == "below 0.40" and late["meets_goal"] is None


def test_summarize_row_without_plain(bench):
    row = bench.summarize_row("greedy", 20.0, 30.0, None, None)
    assert row["ratio"] is None and row["meets_goal"] is None
    assert row["ratio_text"].startswith("n/a")
