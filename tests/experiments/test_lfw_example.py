"""The LFW reference experiment (`experiments.lfw`)."""

import dataclasses
import json
import math
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT

from experiments import lfw as experiment
from experiments.lfw import scores
from experiments.lfw.configurations import CONFIGURATIONS
from keras_recursive_ae import MirroredConvStack, metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The paper's Table 1 (DESIGN.md), by configuration.
PAPER_TABLE_1 = {
    "recursive_bn": 7831,
    "stacked_bn": 467,
    "stacked": 258,
    "recursive": 239,
    "stacked_shared_bn": 643,
    "recursive_shared_bn": 455,
    "stacked_shared_bn_relu": 643,
    "recursive_shared_bn_relu": 2020,
}


# ---------------------------------------------------------------------------
# Configurations


def test_configurations_are_the_papers_eight_its_two_vaes_and_two_more():
    assert list(CONFIGURATIONS) == [
        "stacked", "recursive",
        "stacked_bn", "recursive_bn",
        "stacked_shared_bn", "recursive_shared_bn",
        "stacked_shared_bn_relu", "recursive_shared_bn_relu",
        "stacked_vae", "recursive_vae",
        "joint", "recursive_fine_tune",
    ]  # fmt: skip
    paper = {n: c.paper_error for n, c in CONFIGURATIONS.items() if c.paper_error is not None}
    assert paper == PAPER_TABLE_1
    for name, c in CONFIGURATIONS.items():
        assert (
            c.schedule
            == {"stacked": "end_to_end", "recursive": "greedy", "joint": "joint"}[
                name.split("_")[0]
            ]
        )
        assert c.variational == name.endswith("_vae")
        assert c.fine_tune == (name == "recursive_fine_tune")
        assert c.activation == ("relu" if name.endswith("_relu") else "selu")
        if "_shared_bn" in name:
            assert c.normalization == "shared"
        elif name.endswith("_bn"):
            assert c.normalization == "batch"
        else:
            assert c.normalization is None


@pytest.mark.parametrize(
    "names, expected",
    [
        (None, list(CONFIGURATIONS)),
        (["all"], list(CONFIGURATIONS)),
        (["recursive,stacked"], ["stacked", "recursive"]),
        (["recursive", "stacked", "recursive"], ["stacked", "recursive"]),
        ("vae", ["stacked_vae", "recursive_vae"]),
        (["beyond", "recursive"], ["recursive", "joint", "recursive_fine_tune"]),
        (["paper"], [n for n in CONFIGURATIONS if n in PAPER_TABLE_1]),
    ],
)
def test_select_configurations_expands_groups_in_canonical_order(names, expected):
    assert [c.name for c in experiment.select_configurations(names)] == expected


def test_select_configurations_rejects_unknown_and_empty_names():
    with pytest.raises(ValueError, match="Received: 'recursive_typo'"):
        experiment.select_configurations(["recursive,recursive_typo"])
    with pytest.raises(ValueError, match="at least one name"):
        experiment.select_configurations([" , "])


# ---------------------------------------------------------------------------
# Architecture


@pytest.mark.parametrize(
    "size, depth", [(1, 1), (2, 1), (3, 2), (16, 4), (25, 5), (32, 5), (64, 6), (128, 7), (250, 7)]
)
def test_paper_preset_reaches_a_one_by_one_code_up_to_the_papers_seven_levels(size, depth):
    # One definition for the runner, the quickstart and the guides: log2
    # rounded up, so a 25x25 face gets 5 levels (13, 7, 4, 2, 1).
    stack = MirroredConvStack.paper(input_shape=(size, size, 3))
    assert len(stack.filters) == depth
    assert stack.shapes[-1][:2] == ((1, 1) if size <= 128 else (2, 2))
    built = experiment.build_autoencoder(CONFIGURATIONS["recursive"], (size, size, 3))
    assert built.get_config() == stack.get_config()


@pytest.mark.parametrize("name", ["recursive", "stacked_shared_bn"])
def test_build_autoencoder_at_128_is_the_papers_preset(name):
    configuration = CONFIGURATIONS[name]
    stack = experiment.build_autoencoder(configuration, (128, 128, 3))
    paper = MirroredConvStack.paper(normalization=configuration.normalization)
    assert stack.get_config() == paper.get_config()
    assert stack.shapes[-1] == (1, 1, 1024)


def test_build_autoencoder_scales_the_architecture_and_applies_the_configuration():
    stack = experiment.build_autoencoder(
        CONFIGURATIONS["recursive_shared_bn_relu"],
        (32, 32, 3),
        base_filters=4,
        decoder_statistics="batch",
    )
    assert stack.shapes == [(32, 32, 3), (16, 16, 4), (8, 8, 8), (4, 4, 16), (2, 2, 32), (1, 1, 64)]
    config = stack.get_config()
    assert config["activation"] == "relu"
    assert config["normalization"] == "shared"
    assert config["decoder_statistics"] == "batch"
    assert config["kernel_sizes"] == [[5, 5]] + [[3, 3]] * 4
    assert config["output_activation"] == "sigmoid"
    odd = experiment.build_autoencoder(
        CONFIGURATIONS["stacked"], (25, 25, 1), base_filters=2, depth=2
    )
    assert odd.shapes == [(25, 25, 1), (13, 13, 2), (7, 7, 4)]


@pytest.mark.parametrize(
    "name, kl_weight", [("recursive_vae", 0.01 / (2 * 2 * 16)), ("stacked_vae", 1 / (16 * 16 * 3))]
)
def test_vae_code_matches_the_plain_code_and_kl_weighs_per_rebuilt_value(name, kl_weight):
    # Greedy: a hundredth of one over T_{n-1}'s values; the ELBO's one diverged
    # at 128x128 on all of LFW (docs/results.md run F).
    stack = experiment.build_autoencoder(CONFIGURATIONS[name], (16, 16, 3), base_filters=4)
    config = stack.get_config()
    assert config["variational"] is True
    assert config["latent_dim"] == 1 * 1 * 32  # T_4 of the plain stack: 1x1x32
    assert config["kl_weight"] == pytest.approx(kl_weight)
    assert stack.shapes[-1] == (32,)
    given = experiment.build_autoencoder(
        CONFIGURATIONS[name], (16, 16, 3), base_filters=4, latent_dim=5, kl_weight=0.25
    )
    assert (given.get_config()["latent_dim"], given.get_config()["kl_weight"]) == (5, 0.25)


# ---------------------------------------------------------------------------
# Scores and reports


def test_evaluate_reconstructions_agrees_with_hand_computed_values():
    images = np.zeros((2, 8, 8, 3), dtype="float32")
    scores = experiment.evaluate_reconstructions(images, images + 0.5)
    assert scores["sum_squared_error"] == pytest.approx(8 * 8 * 3 * 0.25)
    assert scores["psnr"] == pytest.approx(10 * math.log10(1 / 0.25), rel=1e-5)
    # A constant offset keeps the structure but not the luminance.
    c1 = 0.01**2
    assert scores["ssim"] == pytest.approx(c1 / (0.25 + c1), rel=1e-4)
    assert scores["sharpness_ratio"] == pytest.approx(1.0)

    rng = np.random.default_rng(0)
    x = rng.random((3, 16, 16, 3)).astype("float32")
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype("float32")
    scores = experiment.evaluate_reconstructions(x, y)
    assert scores["ssim"] == pytest.approx(float(metrics.ssim(x, y).mean()))
    assert scores["sharpness_ratio"] == pytest.approx(float(metrics.sharpness_ratio(x, y).mean()))
    assert all(isinstance(v, float) for v in scores.values())


@pytest.mark.parametrize(
    "stages, text",
    [
        ([1, 1, 2, 2, 3, 3], "2 x 3 stages"),
        ([1, 2, 2], "stages 1/2"),
        ([1, 1, 2, 2, "fine_tune", "fine_tune"], "2 x 2 stages + 2 fine_tune"),
        (["end_to_end"] * 3, "3 end_to_end"),
        (["joint"], "1 joint"),
        ([], "0"),
    ],
)
def test_epochs_column_says_how_many_epochs_each_stage_ran(stages, text):
    assert scores.format_epochs(scores.epochs_by_stage(stages)) == text


def _fake_results(image_shape, configurations=("stacked", "recursive")):
    entries = []
    for i, name in enumerate(configurations):
        entries.append(
            {
                "name": name,
                "description": CONFIGURATIONS[name].description,
                "metrics": {
                    "sum_squared_error": 123.456 + i,
                    "psnr": 20.123,
                    "ssim": 0.71234,
                    "sharpness_ratio": None if i else 0.8766,
                },
                "train_seconds": 12.345,
                "epochs_by_stage": [["end_to_end", 3]] if i == 0 else [[1, 3], [2, 3]],
                "paper_sum_squared_error": CONFIGURATIONS[name].paper_error,
            }
        )
    return {
        "command": "python -m experiments.lfw --epochs 3",
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {
            "platform": "Linux",
            "cpu_count": 2,
            "python": "3.11",
            "keras": "3",
            "backend": "tensorflow",
        },
        "load_average_before": [1.0, 2.0, 3.0],
        "load_average_after": [1.5, 2.0, 3.0],
        "wall_seconds": 60.0,
        "data": {
            "source": "LFW folder x",
            "num_images": {"train": 8, "validation": 1, "test": 1},
            "image_shape": list(image_shape),
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
            "seed": 0,
            "shared_bn_decoder_statistics": "encoder",
        },
        "budget": "3 epochs per weight",
        "paper_comparable": tuple(image_shape) == (128, 128, 3),
        "configurations": entries,
        "figures": {"reconstructions": "reconstructions.png"},
    }


def _table_rows(markdown, section="## Scores on held-out faces"):
    """Maps configuration name to its cells in the table of `section`."""
    rows = {}
    text = markdown.split(section, 1)[1].split("\n## ", 1)[0]
    for line in text.splitlines():
        match = re.match(r"\| `(\w+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_results_markdown_shows_the_papers_column_only_at_128x128x3():
    small = experiment.results_markdown(_fake_results((32, 32, 3)))
    assert "paper's error" not in small
    assert "not comparable with the paper's Table 1" in small
    rows = _table_rows(small)
    assert rows["stacked"] == ["123.5", "20.12", "0.7123", "0.877", "12.3", "3 end_to_end"]
    assert rows["recursive"] == ["124.5", "20.12", "0.7123", "nan", "12.3", "3 x 2 stages"]
    assert "![reconstructions](reconstructions.png)" in small
    assert "before: 1.00, 2.00, 3.00" in small

    full = experiment.results_markdown(_fake_results((128, 128, 3)))
    assert "paper's error" in full and "this run trained on 8 images for 3 epochs" in full
    rows = _table_rows(full)
    assert rows["stacked"][4] == "258" and rows["recursive"][4] == "239"


def test_write_results_refuses_to_write_non_finite_json(tmp_path):
    results = _fake_results((32, 32, 3))
    experiment.write_results(results, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    results["configurations"][0]["train_seconds"] = math.nan
    with pytest.raises(ValueError):
        experiment.write_results(results, tmp_path)


# ---------------------------------------------------------------------------
# Figures


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000, path


@pytest.mark.parametrize("channels", [1, 3])
def test_figures_are_written_as_png(tmp_path, channels):
    rng = np.random.default_rng(0)
    images = rng.random((3, 12, 12, channels)).astype("float32")
    experiment.plot_reconstructions(
        images, {"stacked": images * 0.5, "recursive": images + 0.7}, tmp_path / "r.png"
    )
    experiment.plot_samples(
        {"stacked_vae": images, "recursive_vae": images[:2]}, tmp_path / "s.png"
    )
    experiment.plot_training_curves(
        {
            "recursive": {
                "stage": [1, 1, 2, 2],
                "loss": [0.1, 0.05, 0.3, 0.2],
                "val_loss": [0.1, 0.06, None, 0.25],
            },
            "stacked": {"stage": ["end_to_end"], "loss": [0.1]},
            "joint": {"stage": ["joint"] * 2, "loss": [None, None]},
        },
        tmp_path / "c.png",
    )
    for name in ("r.png", "s.png", "c.png"):
        _assert_png(tmp_path / name)


def test_image_grids_show_the_pixels_unresampled(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    images = rng.random((3, 12, 12, 3)).astype("float32")
    experiment.plot_reconstructions(images, {"a": images[::-1], "b": images}, tmp_path / "r.png")
    # Scale round(64 / 12) = 5, gaps of 5 pixels, labels in a 170-pixel margin.
    grid = np.asarray(Image.open(tmp_path / "r.png").convert("RGB")).astype(int)
    assert grid.shape == (3 * 65 - 5, 170 + 3 * 65 - 5, 3)
    for row, batch in enumerate([images, images[::-1], images]):
        for column, image in enumerate(batch):
            top, left = row * 65, 170 + column * 65
            cell = grid[top : top + 60, left : left + 60]
            expected = np.repeat(np.repeat(np.round(image * 255), 5, axis=0), 5, axis=1)
            assert np.abs(cell - expected).max() <= 1, (row, column)


# ---------------------------------------------------------------------------
# Command line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--configs", "recursive_typo"], "recursive_typo"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--image-size", "0"], "--image-size must be at least 1"),
        (["--data-dir", "/no/such/lfw"], "--data-dir does not exist: /no/such/lfw"),
    ],
)
def test_main_rejects_bad_flags_before_loading_anything(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        experiment.main(argv, prog="lfw_faces")
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_are_small_enough_for_two_cores():
    args = experiment.build_parser().parse_args([])
    assert (args.image_size, args.epochs, args.max_images, args.test_images) == (None, 3, 4000, 100)
    assert args.configs == ["all"] and args.batch_size == 32 and args.base_filters == 16


def test_the_command_lines_defaults_are_the_configs():
    args = experiment.build_parser().parse_args([])
    assert experiment.config_from_args(args) == experiment.ExperimentConfig()
    args = experiment.build_parser().parse_args(["--max-images", "0", "--configs", "map"])
    config = experiment.config_from_args(args)
    assert (config.max_images, config.configs) == (None, ("map",))
    assert {c.name for c in config.configurations} == set(experiment.CONFIGURATION_GROUPS["map"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mixed_precision": "half"}, "Received: mixed_precision='half'"),
        ({"epochs": 0}, "Received: epochs=0"),
        ({"fine_tune_epochs": -1}, "Received: fine_tune_epochs=-1"),
        ({"configs": ("nope",)}, "nope"),
    ],
)
def test_experiment_config_checks_its_values_when_made(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        experiment.ExperimentConfig(**kwargs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.ExperimentConfig().epochs = 5


def test_without_data_dir_it_falls_back_to_scikit_image_faces_and_says_so(tmp_path, capsys):
    argv = [
        "--configs",
        "recursive",
        "--epochs",
        "1",
        "--base-filters",
        "2",
        "--depth",
        "2",
        "--test-images",
        "6",
        "--output-dir",
        str(tmp_path),
        "--verbose",
        "2",
    ]
    with pytest.warns(UserWarning, match="scikit-image"):
        assert experiment.main(argv, prog="lfw_faces") == 0
    out = capsys.readouterr().out
    assert "No --data-dir given: falling back to the 100 LFW faces" in out
    assert "=== Configuration 1/1: recursive - recursive (greedy), no BN, SELU ===" in out
    assert "Stage 2/2 - Epoch 1/1" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["command"] == "lfw_faces " + " ".join(argv)
    assert results["data"]["image_shape"] == [25, 25, 1]
    assert results["data"]["test_images_scored"] == 6
    assert "split by image index: no person names" in (tmp_path / "results.md").read_text()
    (entry,) = results["configurations"]
    assert entry["epochs_by_stage"] == [[1, 1], [2, 1]]
    assert entry["history"]["stage"] == [1, 2]
    assert all(math.isfinite(v) for v in entry["metrics"].values())
    assert str(tmp_path) in out.splitlines()[-1]


@pytest.fixture(scope="module")
def fallback_runs(tmp_path_factory):
    """Three tiny runs on scikit-image's faces: two sittings, one misfit."""
    folders = {}
    for name, configs, epochs in [
        ("a", "recursive", 1),
        ("b", "stacked,stacked_vae", 1),
        ("misfit", "joint", 2),
    ]:
        folders[name] = tmp_path_factory.mktemp(name)
        argv = [
            "--configs",
            configs,
            "--epochs",
            str(epochs),
            "--base-filters",
            "2",
            "--depth",
            "2",
            "--test-images",
            "6",
            "--output-dir",
            str(folders[name]),
            "--verbose",
            "0",
        ]
        with pytest.warns(UserWarning, match="scikit-image"):
            assert experiment.main(argv, prog="lfw_faces") == 0
    return folders


def test_merge_joins_sittings_with_the_same_data_and_budget(fallback_runs, tmp_path, capsys):
    a, b = fallback_runs["a"], fallback_runs["b"]
    argv = ["--merge", str(b), str(a), "--output-dir", str(tmp_path)]
    assert experiment.main(argv, prog="lfw_faces") == 0
    merged = _check_outputs(tmp_path, ["stacked", "recursive", "stacked_vae"])
    runs = [json.loads((d / "results.json").read_text()) for d in (b, a)]
    assert merged["sittings"] == [r["sittings"][0] for r in runs]
    assert merged["wall_seconds"] == pytest.approx(sum(r["wall_seconds"] for r in runs), abs=0.11)
    assert merged["command"] == "lfw_faces " + " ".join(argv)
    by_name = {c["name"]: c for r in runs for c in r["configurations"]}
    assert merged["configurations"] == [by_name[n] for n in ("stacked", "recursive", "stacked_vae")]
    assert set(merged["figures"]) == {"reconstructions", "samples", "training_curves"}
    markdown = (tmp_path / "results.md").read_text()
    assert "Merged from 2 sittings" in markdown
    assert "1. Configurations: stacked, stacked_vae" in markdown
    assert "2. Configurations: recursive" in markdown
    with np.load(tmp_path / "figure_arrays.npz") as arrays:
        shown = arrays["images"]
    experiment.main(argv[:-1] + [str(tmp_path / "four"), "--figure-faces", "4"], prog="lfw_faces")
    with np.load(tmp_path / "four" / "figure_arrays.npz") as arrays:
        assert {k: v.shape[0] for k, v in arrays.items()} == dict.fromkeys(arrays.files, 4)
        np.testing.assert_array_equal(arrays["images"], shown[:4])
    with np.load(tmp_path / "figure_arrays.npz") as arrays:
        assert sorted(arrays.files) == [
            "images",
            "reconstruction__recursive",
            "reconstruction__stacked",
            "reconstruction__stacked_vae",
            "samples__recursive",
            "samples__stacked",
            "samples__stacked_vae",
        ]
        assert arrays["images"].shape == (6, 25, 25, 1) and arrays["images"].dtype == np.uint8


def test_merge_refuses_other_budgets_and_twice_the_same_configuration(fallback_runs, tmp_path):
    a, misfit = fallback_runs["a"], fallback_runs["misfit"]
    with pytest.raises(ValueError, match=r"settings differ in \['epochs', 'fine_tune_epochs'\]"):
        experiment.merge_results([a, misfit], tmp_path)
    with pytest.raises(ValueError, match="Configuration 'recursive' is in two runs"):
        experiment.merge_results([a, a], tmp_path)
    assert not (tmp_path / "results.json").exists()


def test_tensorboard_writes_one_run_per_configuration(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    logs = tmp_path / "tb"
    argv = ["--configs", "recursive,stacked", "--epochs", "2", "--base-filters", "2"]
    argv += ["--depth", "2", "--test-images", "6", "--figure-faces", "4", "--verbose", "0"]
    argv += ["--output-dir", str(tmp_path / "out"), "--tensorboard", str(logs)]
    with pytest.warns(UserWarning, match="scikit-image"):
        assert experiment.main(argv, prog="lfw_faces") == 0
    assert sorted(p.name for p in logs.iterdir()) == ["recursive", "stacked"]

    def tags_and_steps(folder):
        events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
        events.Reload()
        return {tag: [e.step for e in events.Tensors(tag)] for tag in events.Tags()["tensors"]}

    for name, epochs in [("recursive", 4), ("stacked", 2)]:
        train = tags_and_steps(logs / name / "train")
        assert train["epoch_loss"] == list(range(epochs)), name
        validation = tags_and_steps(logs / name / "validation")
        assert validation["epoch_loss"] == list(range(epochs)), name
        assert validation["reconstructions"] == list(range(epochs)), name
        assert validation["reconstruction/psnr"] == list(range(epochs)), name
    events = EventAccumulator(str(logs / "recursive" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    stages = [
        float(tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors("epoch_stage")
    ]
    assert stages == [1, 1, 2, 2]
    assert tags_and_steps(logs / "recursive" / "validation")["stage_2/rebuild_mse"] == [2, 3]


def test_tensorboard_folder_that_cannot_be_created_is_named(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as error:
        experiment.main(["--tensorboard", str(tmp_path / "file" / "tb")], prog="lfw_faces")
    assert error.value.code == 2
    assert "--tensorboard" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--tensorboard"):
        config = experiment.ExperimentConfig(tensorboard_dir=tmp_path / "file" / "tb")
        experiment.run_experiment(config, verbose=0)


# ---------------------------------------------------------------------------
# End to end on real faces


def _check_outputs(output_dir, names):
    results = json.loads((output_dir / "results.json").read_text())
    markdown = (output_dir / "results.md").read_text()
    assert [c["name"] for c in results["configurations"]] == names
    for figure in results["figures"].values():
        _assert_png(output_dir / figure)
        assert f"]({figure})" in markdown
    rows = _table_rows(markdown)
    assert list(rows) == names
    for entry in results["configurations"]:
        cells = rows[entry["name"]]
        for (key, _, digits), cell in zip(experiment.METRICS, cells):
            value = entry["metrics"][key]
            assert value is not None and math.isfinite(value), (entry["name"], key, value)
            assert cell == f"{value:.{digits}f}", (entry["name"], key)
        assert math.isfinite(entry["train_seconds"]) and entry["train_seconds"] > 0
        assert cells[len(experiment.METRICS)] == f"{entry['train_seconds']:.1f}"
        assert cells[-1] == scores.format_epochs(entry["epochs_by_stage"])
        assert entry["epochs_run"] == len(entry["history"]["stage"]) > 0
        assert all(v is not None and math.isfinite(v) for v in entry["history"]["loss"])
    return results


@pytest.mark.slow
def test_the_example_end_to_end_on_a_few_dozen_real_faces(lfw_dir, tmp_path):
    argv = [
        "--data-dir",
        str(lfw_dir),
        "--image-size",
        "16",
        "--max-images",
        "48",
        "--epochs",
        "1",
        "--base-filters",
        "4",
        "--depth",
        "2",
        "--test-images",
        "8",
        "--output-dir",
        str(tmp_path),
        "--verbose",
        "0",
    ]
    assert experiment.main(argv, prog="lfw_faces") == 0
    names = list(CONFIGURATIONS)
    results = _check_outputs(tmp_path, names)
    assert set(results["figures"]) == {"reconstructions", "samples", "training_curves"}
    data = results["data"]
    assert data["image_shape"] == [16, 16, 3]
    assert "test images (split by person)" in (tmp_path / "results.md").read_text()
    people = data["num_people"]
    assert all(people.values()) and sum(people.values()) <= 48
    assert sum(data["num_images"].values()) == 48
    assert data["test_images_scored"] == min(8, data["num_images"]["test"])
    assert results["settings"]["shapes"] == [[16, 16, 3], [8, 8, 4], [4, 4, 8]]
    assert {
        c["name"]: c.get("latent_dim") for c in results["configurations"] if c["variational"]
    } == {"stacked_vae": 128, "recursive_vae": 128}
    by_name = {c["name"]: c for c in results["configurations"]}
    assert by_name["recursive"]["epochs_by_stage"] == [[1, 1], [2, 1]]
    assert by_name["stacked"]["epochs_by_stage"] == [["end_to_end", 1]]
    assert by_name["joint"]["epochs_by_stage"] == [["joint", 1]]
    assert by_name["recursive_fine_tune"]["epochs_by_stage"] == ([[1, 1], [2, 1], ["fine_tune", 1]])


def test_history_record_numbers_levels_as_ints_whatever_type_the_logs_hold():
    history = keras.callbacks.History()
    history.history = {
        "stage": [1, np.int64(1), 2.0, np.float32(2.0), np.array(3), 4.0, "fine_tune"],
        "loss": [0.5, 0.4, 0.3, 0.2, 0.1, 0.1, math.nan],
        "val_image_loss": [0.1] * 7,
    }
    record = scores.history_record(history, "greedy", depth=3)
    assert record == {
        "stage": [1, 1, 2, 2, 3, "fine_tune", "fine_tune"],
        "loss": [0.5, 0.4, 0.3, pytest.approx(0.2), 0.1, 0.1, None],
    }
    assert all(type(s) is int for s in record["stage"][:5])
    # Other schedules: every epoch carries the schedule's name, whatever
    # the logs number it.
    for schedule in ("end_to_end", "joint"):
        history.history = {"stage": [1.0, 1.0], "loss": [0.2, 0.1]}
        assert scores.history_record(history, schedule)["stage"] == [schedule] * 2
        history.history = {"stage": [schedule], "loss": [0.2]}
        assert scores.history_record(history, schedule)["stage"] == [schedule]


def test_mixed_precision_builds_trains_and_scores_under_the_policy(tmp_path, monkeypatch):
    seen = []
    train_configuration = experiment.run.train_configuration

    def spy(configuration, autoencoder, *args, **kwargs):
        seen.append((keras.config.dtype_policy().name, autoencoder.layers[1].dtype_policy.name))
        return train_configuration(configuration, autoencoder, *args, **kwargs)

    monkeypatch.setattr(experiment.run, "train_configuration", spy)
    argv = ["--configs", "recursive_vae", "--epochs", "1", "--base-filters", "2", "--depth", "2"]
    argv += ["--test-images", "6", "--figure-faces", "2", "--verbose", "0"]
    argv += ["--output-dir", str(tmp_path), "--mixed-precision", "mixed_bfloat16"]
    with pytest.warns(UserWarning, match="scikit-image"):
        assert experiment.main(argv, prog="lfw_faces") == 0
    assert seen == [("mixed_bfloat16", "mixed_bfloat16")]
    assert keras.config.dtype_policy().name == "float32"  # restored afterwards
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["settings"]["mixed_precision"] == "mixed_bfloat16"
    (entry,) = results["configurations"]
    assert all(math.isfinite(v) for v in entry["metrics"].values())
    assert "mixed_bfloat16" in experiment.build_parser().format_help()


def test_the_example_prints_no_cuda_error_on_a_cpu(tmp_path):
    # TensorFlow logs "failed call to cuInit" as an error on every machine
    # without a GPU; the example silences it before TensorFlow loads. It
    # finds `experiments` from any folder, with no PYTHONPATH.
    drop = ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "lfw_faces.py"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cuInit" not in result.stderr and "E0000" not in result.stderr
