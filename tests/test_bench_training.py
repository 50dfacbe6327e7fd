"""The report of benchmarks/bench_training.py on made-up runs (no timing, no training)."""

import benchmark_scripts
import pytest


@pytest.fixture(scope="module")
def bench():
    return benchmark_scripts.load("bench_training")


def record(variant, wall, cpu=None, peak=1000.0, loss=0.02, **extra):
    """One child's JSON record, as `run_child` prints it."""
    return {
        "variant": variant,
        "wall_s": wall,
        "cpu_s": 2 * wall if cpu is None else cpu,
        "loss": [0.1, loss],
        "sse_per_image": 500.0,
        "placements": [],
        "phase_fit_s": {},
        "peak_rss_mb": peak,
        **extra,
    }


def runs_of(**walls):
    return {v: [record(v, w) for w in ws] for v, ws in walls.items()}


def test_defaults_run_both_anchors_and_the_trainers_four_times(bench):
    args = bench.parse_args([])
    assert (args.images, args.image_size, args.epochs, args.batch_size) == (4000, 128, 2, 32)
    assert args.repeats == 4
    variants = args.variants.split(",")
    assert variants == ["plain", "plain_autotune_on", "plain_numpy", "end_to_end", "greedy_cached"]
    assert bench.variant_list(args.variants) == variants
    # 0 is all faces: the child gets it as is and load_lfw gets max_images=None.
    assert bench.parse_args(["--images", "0"]).images == 0


def test_repeats_below_one_are_refused(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--repeats", "0"])


def test_the_anchors_are_always_run(bench):
    assert bench.variant_list("greedy_cached") == ["plain", "plain_numpy", "greedy_cached"]
    assert bench.variant_list("plain_numpy,plain,greedy_recipe", jit=True) == [
        "plain_numpy",
        "plain",
        "greedy_recipe",
        "plain_jit",
        "greedy_cached_jit",
    ]
    assert bench.variant_list("all") == list(bench.VARIANTS)
    with pytest.raises(SystemExit, match="greedy_fast"):
        bench.variant_list("plain,greedy_fast")


def test_medians_of_an_odd_and_an_even_number_of_runs(bench):
    odd = bench.summarize(runs_of(plain=[30.0, 10.0, 20.0]))["plain"]
    assert odd["wall_s"] == 20.0 and odd["cpu_s"] == 40.0
    assert odd["walls"] == [30.0, 10.0, 20.0]  # repeat order kept
    even = bench.summarize(runs_of(plain=[40.0, 10.0, 20.0, 30.0]))["plain"]
    assert even["wall_s"] == 25.0  # the mean of the middle two
    assert (even["runs"], even["failed"]) == (4, 0)


def test_peak_memory_is_the_largest_and_failures_are_left_out(bench):
    runs = {
        "greedy_cached": [
            record("greedy_cached", 50.0, peak=2000.0, loss=0.03),
            {"variant": "greedy_cached", "failed": -9},
            record("greedy_cached", 70.0, peak=2500.0, loss=0.05),
        ],
        "end_to_end": [{"variant": "end_to_end", "failed": 1}],
    }
    summaries = bench.summarize(runs)
    greedy = summaries["greedy_cached"]
    assert (greedy["runs"], greedy["failed"]) == (2, 1)
    assert greedy["wall_s"] == 60.0 and greedy["peak_rss_mb"] == 2500.0
    assert greedy["last_loss"] == pytest.approx(0.04)
    assert greedy["walls"] == [50.0, None, 70.0]
    assert "wall_s" not in summaries["end_to_end"]


def test_the_best_plain_is_the_lowest_median_not_the_fastest_run(bench):
    runs = runs_of(
        # plain has the single fastest run, plain_numpy the lowest median.
        plain=[30.0, 45.0, 46.0, 47.0],
        plain_autotune_on=[44.0, 44.0, 50.0, 50.0],
        plain_numpy=[42.0, 43.0, 43.0, 60.0],
        greedy_cached=[47.3, 47.3, 47.3, 47.3],
        plain_jit=[1.0, 1.0, 1.0, 1.0],  # XLA: not a plain pipeline
    )
    summaries = bench.summarize(runs)
    assert bench.best_plain(summaries) == "plain_numpy"
    ratios = bench.anchor_ratios(summaries)
    assert ratios["greedy_cached"]["plain_numpy"] == pytest.approx((1.1, 1.1))
    assert ratios["greedy_cached"]["best plain"] == pytest.approx((1.1, 1.1))
    assert ratios["plain"]["plain_numpy"][0] == pytest.approx(45.5 / 43.0)
    assert ratios["plain_numpy"]["best plain"] == (1.0, 1.0)


def test_ratios_to_a_tf_data_best_plain_and_cpu_of_that_pipeline(bench):
    runs = {
        "plain": [record("plain", w, cpu=80.0) for w in (40.0, 41.0)],
        "plain_numpy": [record("plain_numpy", w, cpu=60.0) for w in (50.0, 52.0)],
        "end_to_end": [record("end_to_end", w, cpu=100.0) for w in (45.1, 36.9)],
    }
    summaries = bench.summarize(runs)
    assert bench.best_plain(summaries) == "plain"
    ratios = bench.anchor_ratios(summaries)
    # Median 41.0 s over plain's 40.5 s and numpy's 51.0 s; CPU over each one's CPU.
    assert ratios["end_to_end"]["best plain"] == pytest.approx((41.0 / 40.5, 100.0 / 80.0))
    assert ratios["end_to_end"]["plain_numpy"] == pytest.approx((41.0 / 51.0, 100.0 / 60.0))


def test_no_anchor_gives_no_ratio(bench):
    runs = runs_of(greedy_cached=[10.0])
    runs["plain_numpy"] = [{"variant": "plain_numpy", "failed": 1}]
    summaries = bench.summarize(runs)
    assert bench.best_plain(summaries) is None
    assert bench.anchor_ratios(summaries)["greedy_cached"] == {
        "plain_numpy": None,
        "best plain": None,
    }


def test_the_tables_show_medians_and_both_ratios(bench):
    runs = runs_of(plain=[40.0, 44.0], plain_numpy=[38.0, 42.0], greedy_cached=[42.0, 46.0])
    runs["greedy_cached"][0]["phase_fit_s"] = {"1": 20.0, "2": 15.0}
    runs["greedy_cached"][1]["phase_fit_s"] = {"1": 22.0, "2": 15.0}
    runs["greedy_cached"][0]["placements"] = [
        {"shape": [8, 8], "location": "memory", "mb": 100.0, "s": 3.0}
    ]
    runs["greedy_cached"][1]["placements"] = [
        {"shape": [8, 8], "location": "memory", "mb": 100.0, "s": 5.0}
    ]
    runs["end_to_end"] = [{"variant": "end_to_end", "failed": 1}] * 2
    summaries = bench.summarize(runs)
    table = bench.median_table(summaries).splitlines()
    assert "wall / plain_numpy" in table[0] and "wall / best plain" in table[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in table[2:]}
    assert rows["greedy_cached"].startswith("| greedy_cached | 2 | 44.0 | 88.0 | 1.100 | 1.100 |")
    assert "memory, largest 100 MiB (4.0)" in rows["greedy_cached"]
    assert rows["plain"].startswith("| plain | 2 | 42.0 | 84.0 | 1.050 | 1.050 |")
    assert "every run failed" in rows["end_to_end"]
    repeats = bench.repeats_table(summaries)
    assert "| greedy_cached | 42.0, 46.0 | 44.0 | 1.095 |" in repeats
    assert "| end_to_end | failed, failed | n/a | n/a |" in repeats
    split = bench.time_split_table(summaries)
    # Medians: fits 35 and 37 s, caches 3 and 5 s, the rest 4 s both times.
    assert "| greedy_cached | 44.0 | 36.0 | 4.0 | 4.0 | 1 21.0, 2 15.0 |" in split
