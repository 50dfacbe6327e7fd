"""The LFW runner's `--seeds N` and `--equal-time` (`experiments.lfw`)."""

import doctest
import json
import math
import re
import shutil
import types

import numpy as np
import pytest

from experiments import lfw as experiment
from experiments.lfw import seeds, training
from experiments.lfw.configurations import CONFIGURATIONS

# ---------------------------------------------------------------------------
# Command line and configurations


def test_seeds_and_equal_time_parse_with_defaults_that_change_nothing():
    args = experiment.build_parser().parse_args([])
    assert (args.seeds, args.equal_time) == (1, False)
    args = experiment.build_parser().parse_args(["--seeds", "3", "--equal-time", "--seed", "4"])
    assert (args.seeds, args.equal_time, args.seed) == (3, True, 4)
    assert seeds.model_seeds(args.seed, args.seeds) == [4, 5, 6]
    help_text = experiment.build_parser().format_help()
    assert "--seeds" in help_text and "--equal-time" in help_text and "map = " in help_text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0"], "--seeds must be at least 1. Received: 0"),
        (["--seeds", "-2"], "--seeds must be at least 1. Received: -2"),
        (["--configs", "stacked", "--equal-time"], "'stacked' trains until its wall time"),
        (["--configs", "stacked_vae", "recursive", "--equal-time"], "partner 'recursive_vae'"),
    ],
)
def test_main_rejects_bad_seeds_and_missing_partners_before_loading(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        experiment.main(argv, prog="lfw_faces")
    assert error.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_experiment_config_and_model_seeds_name_a_bad_count(count, tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"Received: seeds={count!r}")):
        seeds.model_seeds(0, count)
    with pytest.raises(ValueError, match=re.escape(f"Received: seeds={count!r}")):
        experiment.ExperimentConfig(output_dir=str(tmp_path), configs=("recursive",), seeds=count)
    assert not (tmp_path / "results.json").exists()


def test_experiment_config_refuses_an_end_to_end_configuration_without_its_partner(tmp_path):
    with pytest.raises(ValueError, match=r"'stacked_bn' .* partner 'recursive_bn'.*Received"):
        experiment.ExperimentConfig(
            output_dir=str(tmp_path), configs=("stacked_bn", "recursive"), equal_time=True
        )


def test_map_group_and_equal_time_order_run_each_partner_first():
    chosen = experiment.select_configurations(["map"])
    assert [c.name for c in chosen] == [
        "stacked",
        "recursive",
        "stacked_bn",
        "recursive_bn",
        "recursive_fine_tune",
    ]
    assert set(experiment.CONFIGURATION_GROUPS["map"]) == {c.name for c in chosen}
    ordered = [c.name for c in training.equal_time_order(chosen)]
    assert ordered == ["recursive", "stacked", "recursive_bn", "stacked_bn", "recursive_fine_tune"]
    everything = training.equal_time_order(experiment.select_configurations(["all"]))
    names = [c.name for c in everything]
    assert sorted(names) == sorted(CONFIGURATIONS)
    for configuration in everything:
        partner = training.greedy_partner(configuration)
        if configuration.schedule == "end_to_end":
            assert names.index(partner) < names.index(configuration.name), configuration.name
            assert CONFIGURATIONS[partner].schedule == "greedy"
        else:
            assert partner is None
    assert names.index("joint") < names.index("recursive_fine_tune")  # the others keep order


def test_doctests_of_the_new_modules_pass():
    for module in (seeds, training, experiment.run, experiment.cli):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


# ---------------------------------------------------------------------------
# The spread over seeds


def test_spread_is_mean_sample_std_min_max_of_the_finite_values():
    stats = seeds.spread([2.0, 4.0, 9.0])
    assert stats["mean"] == pytest.approx(5.0)
    assert stats["std"] == pytest.approx(math.sqrt(((3**2) + 1 + 4**2) / 2))  # n - 1
    assert stats["std"] == pytest.approx(np.std([2.0, 4.0, 9.0], ddof=1))
    assert (stats["min"], stats["max"], stats["count"]) == (2.0, 9.0, 3)
    assert seeds.spread([3.0, None, math.nan]) == {
        "mean": 3.0,
        "std": None,
        "min": 3.0,
        "max": 3.0,
        "count": 1,
    }
    assert seeds.spread([None])["count"] == 0 and seeds.spread([])["mean"] is None


def _run(seed, sse, ssim, seconds, epochs, sample_sse=None):
    return {
        "seed": seed,
        "metrics": {"sum_squared_error": sse, "psnr": 20.0, "ssim": ssim, "sharpness_ratio": 0.5},
        "train_seconds": seconds,
        "epochs_run": epochs,
        "epochs_by_stage": [["end_to_end", epochs]],
        "samples": {
            "count": 8,
            "nearest_training_sse": sample_sse,
            "sharpness_ratio": 0.25,
            "pixel_spread": 0.1,
        },
    }


def test_seed_spread_aggregates_every_numeric_score():
    runs = [_run(0, 10.0, 0.5, 1.0, 3, 7.0), _run(1, 14.0, 0.7, 2.0, 5, None)]
    record = seeds.seed_spread(runs)
    assert set(record) == {"metrics", "train_seconds", "epochs_run", "samples"}
    assert set(record["metrics"]) == {key for key, _, _ in experiment.METRICS}
    sse = record["metrics"]["sum_squared_error"]
    std = pytest.approx(2 * math.sqrt(2))
    assert sse == {"mean": 12.0, "std": std, "min": 10.0, "max": 14.0, "count": 2}
    assert record["metrics"]["ssim"]["mean"] == pytest.approx(0.6)
    assert record["metrics"]["psnr"]["std"] == 0.0
    assert record["train_seconds"]["max"] == 2.0 and record["epochs_run"]["min"] == 3
    assert record["samples"]["nearest_training_sse"]["count"] == 1
    assert record["samples"]["sharpness_ratio"]["mean"] == 0.25


# ---------------------------------------------------------------------------
# results.md


def _results(runs_by_name, count):
    entries = []
    for name, runs in runs_by_name.items():
        first = {k: v for k, v in runs[0].items() if k != "seed"}
        entries.append(
            {
                "name": name,
                "description": CONFIGURATIONS[name].description,
                **first,
                "paper_sum_squared_error": CONFIGURATIONS[name].paper_error,
                "seeds": runs,
                "spread": seeds.seed_spread(runs),
            }
        )
        entries[-1]["samples"]["density"] = "gaussian_mixture"
        entries[-1]["samples"]["density_components"] = 2
    return {
        "command": "lfw_faces --seeds 3",
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {"platform": "Linux", "cpu_count": 2},
        "wall_seconds": 9.0,
        "data": {
            "source": "LFW folder x",
            "num_images": {"train": 8, "validation": 1, "test": 1},
            "image_shape": [32, 32, 3],
            "test_images_scored": 1,
            "test_people_scored": 1,
        },
        "settings": {
            "depth": 2,
            "base_filters": 16,
            "shapes": [],
            "optimizer": "Adam",
            "epochs": 3,
            "loss": "mse",
            "batch_size": 32,
            "seed": 7,
            "seeds": count,
            "shared_bn_decoder_statistics": "encoder",
        },
        "budget": "3 epochs per weight",
        "paper_comparable": False,
        "configurations": entries,
        "held_out_real": {"count": 1, "nearest_training_sse": 3.0, "sharpness_ratio": 1.0},
    }


def _rows(markdown, section):
    text = markdown.split(section, 1)[1].split("\n## ", 1)[0]
    return {
        m.group(1): [c.strip() for c in m.group(2).split("|")]
        for m in re.finditer(r"^\| `(\w+)` \|(.*)\|$", text, flags=re.M)
    }


def test_results_markdown_shows_mean_std_min_max_with_several_seeds():
    stacked = [_run(7, 10.0, 0.5, 1.0, 3, 7.0), _run(8, 14.0, 0.7, 2.0, 5, 9.0)]
    stacked.append(_run(9, 12.0, None, 3.0, 4, 8.0))
    for run in stacked:
        run["equal_time"] = {"partner": "recursive", "partner_seconds": run["train_seconds"] - 0.1}
    recursive = [_run(s, 20.0 + s, 0.4, 1.0, 3, 6.0) for s in (7, 8, 9)]
    for run in recursive:
        run["epochs_by_stage"] = [[1, 3], [2, 3]]
    markdown = experiment.results_markdown(
        _results({"stacked": stacked, "recursive": recursive}, 3)
    )
    rows = _rows(markdown, "## Scores on held-out faces")
    assert rows["stacked"] == [
        "12.0 ± 2.0 (10.0-14.0)",
        "20.00 ± 0.00 (20.00-20.00)",
        "0.6000 ± 0.1414 (0.5000-0.7000) [2 of 3 seeds finite]",
        "0.500 ± 0.000 (0.500-0.500)",
        "2.0 ± 1.0 (1.0-3.0)",
        "3-5 end_to_end",
    ]
    assert rows["recursive"][0] == "28.0 ± 1.0 (27.0-29.0)"
    assert rows["recursive"][-1] == "3 x 2 stages"
    samples = _rows(markdown, "## Samples")
    assert samples["stacked"][1:] == [
        "8.0 ± 1.0 (7.0-9.0)",
        "0.250 ± 0.000 (0.250-0.250)",
        "0.1000 ± 0.0000 (0.1000-0.1000)",
    ]
    assert "| held-out real faces (1) | - | 3.0 | 1.000 |" in markdown
    assert "seeds 7 to 9 (weights, data order, samples; the split is seed 7's)" in markdown
    assert "every configuration trained 3 times" in markdown
    assert (
        "- `stacked` until `recursive`'s wall time: seed 7: 3 epochs in 1.0 s "
        "(`recursive`: 0.9 s); seed 8: 5 epochs in 2.0 s (`recursive`: 1.9 s); "
        "seed 9: 4 epochs in 3.0 s (`recursive`: 2.9 s)"
    ) in markdown


def test_results_markdown_with_one_seed_is_as_without_seeds():
    one = _results({"stacked": [_run(7, 10.0, 0.5, 1.0, 3, 7.0)]}, 1)
    before = json.loads(json.dumps(one))
    for entry in before["configurations"]:
        del entry["seeds"], entry["spread"]
    del before["settings"]["seeds"]
    markdown = experiment.results_markdown(one)
    assert markdown == experiment.results_markdown(before)
    assert "±" not in markdown and "Seeds:" not in markdown and "Equal wall time" not in markdown
    assert _rows(markdown, "## Scores on held-out faces")["stacked"][0] == "10.0"


# ---------------------------------------------------------------------------
# Equal time


def _fake_clock(step):
    ticks = iter(range(0, 10_000, step))
    return lambda: float(next(ticks))


def test_wall_time_stop_ends_the_first_epoch_at_or_past_the_time():
    for seconds, step, epochs in [(10, 4, 3), (12, 4, 3), (12.5, 4, 4), (0, 4, 1)]:
        stop = training.WallTimeStop(seconds, clock=_fake_clock(step))
        model = types.SimpleNamespace(stop_training=False)
        stop.set_model(model)
        stop.on_train_begin()
        for epoch in range(100):
            stop.on_epoch_end(epoch)
            if model.stop_training:
                break
        assert (stop.epochs, epoch + 1) == (epochs, epochs), (seconds, step)
        assert stop.elapsed == step * epochs >= seconds
    with pytest.raises(ValueError, match=r"Received: seconds=-1"):
        training.WallTimeStop(-1)


@pytest.fixture
def tiny_stack():
    def build(name):
        return experiment.build_autoencoder(
            CONFIGURATIONS[name], (8, 8, 1), base_filters=2, depth=2
        )

    return build


def test_wall_time_stop_ends_a_trainer_run(tiny_stack):
    images = np.random.default_rng(0).random((16, 8, 8, 1), dtype="float32")
    stop = training.WallTimeStop(10, clock=_fake_clock(4))
    stacked = CONFIGURATIONS["stacked"]
    _, history, _ = training.train_configuration(
        stacked, tiny_stack("stacked"), images, epochs=20, verbose=0, callbacks=[stop]
    )
    assert len(history.history["loss"]) == stop.epochs == 3
    _, history, seconds = training.train_configuration(
        stacked, tiny_stack("stacked"), images, epochs=1, verbose=0, wall_time=0.0
    )
    assert len(history.history["loss"]) == 1 and seconds > 0
    with pytest.raises(ValueError, match=r"Received: wall_time=1.0 for 'recursive'"):
        training.train_configuration(
            CONFIGURATIONS["recursive"], tiny_stack("recursive"), images, wall_time=1.0
        )


# ---------------------------------------------------------------------------
# Runs


def _fallback_run(folder, configs, extra=()):
    argv = ["--configs", *configs, "--epochs", "1", "--base-filters", "2", "--depth", "2"]
    argv += ["--test-images", "6", "--samples", "4", "--density-components", "1"]
    argv += ["--output-dir", str(folder), "--verbose", "0", *extra]
    with pytest.warns(UserWarning, match="scikit-image"):
        assert experiment.main(argv, prog="lfw_faces") == 0
    return json.loads((folder / "results.json").read_text())


@pytest.mark.slow
def test_merge_keeps_every_seed_and_refuses_another_seed_count(tmp_path):
    a = _fallback_run(tmp_path / "a", ["recursive"], ["--seeds", "2"])
    b = _fallback_run(tmp_path / "b", ["joint"], ["--seeds", "2"])
    for run in (a, b):
        assert run["settings"]["seeds"] == 2 and run["settings"]["equal_time"] is False
        (entry,) = run["configurations"]
        assert [s["seed"] for s in entry["seeds"]] == [0, 1]
    merged = experiment.merge_results([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert [c["name"] for c in merged["configurations"]] == ["recursive", "joint"]
    assert merged["configurations"][0] == a["configurations"][0]
    rows = _rows((tmp_path / "m" / "results.md").read_text(), "## Scores on held-out faces")
    assert all("±" in cell for cell in rows["joint"][:5])
    # A run with another seed count is another budget.
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    b["settings"]["seeds"] = 1
    (tmp_path / "c" / "results.json").write_text(json.dumps(b))
    with pytest.raises(ValueError, match=r"settings differ in \['seeds'\]"):
        experiment.merge_results([tmp_path / "a", tmp_path / "c"], tmp_path / "n")


@pytest.mark.slow
def test_two_seeds_at_equal_time_on_real_faces(lfw_dir, tmp_path):
    argv = ["--data-dir", str(lfw_dir), "--image-size", "16", "--max-images", "200"]
    argv += ["--epochs", "1", "--seeds", "2", "--configs", "recursive", "stacked"]
    argv += ["--equal-time", "--samples", "8", "--density-components", "1", "--save-models"]
    argv += ["--base-filters", "4", "--depth", "2", "--test-images", "8", "--figure-faces", "4"]
    argv += ["--output-dir", str(tmp_path), "--verbose", "0"]
    assert experiment.main(argv, prog="lfw_faces") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["settings"]["seeds"] == 2 and results["settings"]["equal_time"] is True
    stacked, recursive = results["configurations"]
    assert (stacked["name"], recursive["name"]) == ("stacked", "recursive")
    for entry in (stacked, recursive):
        first, second = entry["seeds"]
        assert (first["seed"], second["seed"]) == (0, 1)
        sse = [run["metrics"]["sum_squared_error"] for run in entry["seeds"]]
        assert sse[0] != sse[1], entry["name"]  # other weights, other scores
        assert entry["metrics"] == first["metrics"]  # the top level is the first seed's
        for key in ("sum_squared_error", "ssim", "sharpness_ratio"):
            stats = entry["spread"]["metrics"][key]
            assert stats["count"] == 2 and stats["std"] > 0
            assert stats["min"] <= stats["mean"] <= stats["max"]
        assert entry["spread"]["train_seconds"]["count"] == 2
        assert entry["spread"]["samples"]["nearest_training_sse"]["count"] == 2
        assert [run["model"] for run in entry["seeds"]] == [
            f"{entry['name']}.keras",
            f"{entry['name']}_seed1.keras",
        ]
        for run in entry["seeds"]:
            assert (tmp_path / run["model"]).is_file()
            assert (tmp_path / run["samples"]["density_file"]).is_file()
    assert "equal_time" not in recursive
    for run, partner in zip(stacked["seeds"], recursive["seeds"]):
        assert run["equal_time"] == {
            "partner": "recursive",
            "partner_seconds": pytest.approx(partner["train_seconds"], abs=1e-3),
        }
        assert run["train_seconds"] >= run["equal_time"]["partner_seconds"]
        assert run["epochs_run"] >= 1 and run["epochs_by_stage"] == [
            ["end_to_end", run["epochs_run"]]
        ]
    markdown = (tmp_path / "results.md").read_text()
    rows = _rows(markdown, "## Scores on held-out faces")
    assert re.fullmatch(r"\d+\.\d ± \d+\.\d \(\d+\.\d-\d+\.\d\)", rows["stacked"][0])
    assert "- `stacked` until `recursive`'s wall time: seed 0: " in markdown
    with np.load(tmp_path / "figure_arrays.npz") as arrays:
        assert arrays["reconstruction__stacked"].shape[0] == 4
