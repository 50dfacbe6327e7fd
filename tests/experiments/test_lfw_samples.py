"""The LFW runner's samples: every configuration generates, and is scored."""

import json
import math

import numpy as np
import pytest
from test_lfw_example import _assert_png, _table_rows

from experiments import lfw as experiment
from experiments.lfw import scores
from experiments.lfw.samples import describe_sample_scores
from keras_recursive_ae import LatentDensity, metrics


def _brute_force_nearest(images, train):
    differences = images[:, None].astype("float64") - train[None].astype("float64")
    return float(np.square(differences).sum(axis=(2, 3, 4)).min(axis=1).mean())


def test_nearest_training_distance_on_known_arrays():
    train = np.stack([np.zeros((2, 2, 1)), np.ones((2, 2, 1)), np.full((2, 2, 1), 0.5)])
    images = np.stack([np.full((2, 2, 1), 0.1), np.full((2, 2, 1), 0.8), train[2]])
    # 0.1 is nearest to zeros (4 x 0.01), 0.8 to ones (4 x 0.04), a copy at 0.
    assert scores.nearest_training_distance(images, train) == pytest.approx(0.2 / 3, abs=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 1000])
def test_nearest_training_distance_is_the_same_in_any_chunks(chunk_size):
    rng = np.random.default_rng(0)
    train = rng.random((23, 5, 4, 3), dtype="float32")
    images = rng.random((6, 5, 4, 3), dtype="float32")
    images[0] = train[11]  # a copy: at 0, not a hair below
    expected = _brute_force_nearest(images, train)
    got = scores.nearest_training_distance(images, train, chunk_size=chunk_size)
    assert got == pytest.approx(expected, rel=1e-12)


def test_nearest_training_distance_reads_a_dataset_batch_by_batch():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    train = rng.random((10, 4, 4, 3), dtype="float32")
    images = rng.random((3, 4, 4, 3), dtype="float32")
    expected = _brute_force_nearest(images, train)
    for dataset in (
        tf.data.Dataset.from_tensor_slices(train).batch(4),
        tf.data.Dataset.from_tensor_slices((train, train)).batch(3),  # (images, _) pairs
    ):
        got = scores.nearest_training_distance(images, dataset)
        assert got == pytest.approx(expected, rel=1e-12)
        assert scores.mean_sharpness(dataset) == pytest.approx(scores.mean_sharpness(train))


def test_nearest_training_distance_refuses_other_shapes_and_no_faces():
    images = np.zeros((2, 4, 4, 3))
    with pytest.raises(ValueError, match=r"training faces have shape \(4, 4, 1\)"):
        scores.nearest_training_distance(images, np.zeros((3, 4, 4, 1)))
    with pytest.raises(ValueError, match="at least one training face"):
        scores.nearest_training_distance(images, np.zeros((0, 4, 4, 3)))


def test_mean_sharpness_is_the_variance_of_the_laplacian():
    # A checkerboard's Laplacian is -4 on its ones and +4 on its zeros: variance 16.
    board = (np.indices((6, 6)).sum(axis=0) % 2).astype("float32")[None, :, :, None]
    assert scores.mean_sharpness(board) == pytest.approx(16.0, rel=1e-5)
    assert scores.mean_sharpness(np.full((2, 6, 6, 3), 0.5)) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    images = rng.random((5, 9, 9, 3), dtype="float32")
    # The same measure as the metric: the ratio of two images' sharpness.
    ratio = metrics.sharpness_ratio(images[:1], images[1:2])[0]
    assert scores.mean_sharpness(images[1:2]) / scores.mean_sharpness(images[:1]) == (
        pytest.approx(float(ratio), rel=1e-4)
    )


def test_score_samples_says_copies_are_near_blur_is_low_and_noise_is_far():
    rng = np.random.default_rng(0)
    smooth = np.linspace(0.2, 0.8, 16, dtype="float32")
    train = np.clip(
        smooth[None, :, None, None] + 0.05 * rng.standard_normal((40, 16, 16, 3)), 0, 1
    ).astype("float32")
    copies = scores.score_samples(train[:8], train)
    assert copies["count"] == 8
    assert copies["nearest_training_sse"] == pytest.approx(0.0, abs=1e-9)  # copies are at 0
    assert copies["sharpness_ratio"] == pytest.approx(
        scores.mean_sharpness(train[:8]) / scores.mean_sharpness(train), rel=1e-6
    )
    blurred = np.broadcast_to(train.mean(axis=0), (8, 16, 16, 3))
    noise = rng.random((8, 16, 16, 3), dtype="float32")
    blur_scores, noise_scores = (scores.score_samples(x, train) for x in (blurred, noise))
    assert blur_scores["sharpness_ratio"] < 0.1 < 10 < noise_scores["sharpness_ratio"]
    assert blur_scores["nearest_training_sse"] < noise_scores["nearest_training_sse"] / 5
    assert describe_sample_scores(copies) == (
        f"nearest_training_sse 0.0, sharpness_ratio {copies['sharpness_ratio']:.3f}, "
        f"pixel_spread {copies['pixel_spread']:.4f}"
    )
    # The spread across samples: identical samples (the average face) are at 0.
    assert blur_scores["pixel_spread"] == pytest.approx(0.0, abs=1e-9)
    assert copies["pixel_spread"] > 0.02 and noise_scores["pixel_spread"] > 0.2


def test_pixel_spread_is_the_mean_over_values_of_the_std_across_images():
    assert scores.pixel_spread(np.full((5, 3, 3, 3), 0.7)) == pytest.approx(0.0, abs=1e-12)
    halves = np.stack([np.zeros((4, 4, 3)), np.ones((4, 4, 3))])
    assert scores.pixel_spread(halves) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    images = rng.random((7, 4, 5, 3), dtype="float32")
    expected = np.mean(
        [np.std(images[:, i, j, c]) for i in range(4) for j in range(5) for c in range(3)]
    )
    assert scores.pixel_spread(images) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--samples", "--samples must be at least 1"),
        ("--density-components", "--density-components must be at least 1"),
    ],
)
def test_main_rejects_no_samples_and_no_components(flag, message, capsys):
    with pytest.raises(SystemExit) as error:
        experiment.main([flag, "0"], prog="lfw_faces")
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_a_deterministic_and_a_variational_configuration_both_sample(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--configs", "recursive,stacked_vae", "--epochs", "1", "--base-filters", "2"]
    argv += ["--depth", "2", "--test-images", "6", "--figure-faces", "3", "--samples", "5"]
    argv += ["--density-components", "4", "--save-models", "--output-dir", str(out)]
    argv += ["--verbose", "2"]  # prints the scores
    with pytest.warns(UserWarning, match="scikit-image"):
        assert experiment.main(argv, prog="lfw_faces") == 0
    log = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["samples"] == 5 and results["settings"]["density_components"] == 4
    by_name = {entry["name"]: entry["samples"] for entry in results["configurations"]}
    assert by_name["recursive"]["density"] == "gaussian_mixture"
    assert by_name["recursive"]["density_components"] == 4
    assert by_name["recursive"]["density_file"] == "recursive_density.npz"
    assert LatentDensity.load(out / "recursive_density.npz").components == 4
    assert by_name["stacked_vae"]["density"] == "N(0, I)"
    assert by_name["stacked_vae"]["density_components"] is None
    held_out = results["held_out_real"]
    assert held_out["count"] == 6 and held_out["spread_count"] == 5  # as many as the samples
    for record in [held_out, *by_name.values()]:
        assert record["nearest_training_sse"] > 0 and record["sharpness_ratio"] > 0, record
        assert math.isfinite(record["nearest_training_sse"] + record["sharpness_ratio"])
        assert record["pixel_spread"] >= 0 and math.isfinite(record["pixel_spread"]), record
    for name, record in by_name.items():
        assert record["count"] == 5 and record["seconds"] >= 0
        assert f"5 samples: {describe_sample_scores(record)}" in log, name
    assert f"Held-out real faces: {describe_sample_scores(held_out)}" in log

    assert results["figures"]["samples"] == "samples.png"
    _assert_png(out / "samples.png")
    assert not (out / "vae_samples.png").exists()
    with np.load(out / "figure_arrays.npz") as arrays:
        assert arrays["samples__recursive"].shape == (3, 25, 25, 1)
        assert arrays["samples__stacked_vae"].shape == (3, 25, 25, 1)

    markdown = (out / "results.md").read_text()
    rows = _table_rows(markdown, "## Samples")
    assert rows == {
        name: [
            "mixture of 4 Gaussians" if name == "recursive" else "N(0, I)",
            f"{record['nearest_training_sse']:.1f}",
            f"{record['sharpness_ratio']:.3f}",
            f"{record['pixel_spread']:.4f}",
        ]
        for name, record in by_name.items()
    }
    reference = (
        f"| held-out real faces (6) | - | {held_out['nearest_training_sse']:.1f} | "
        f"{held_out['sharpness_ratio']:.3f} | {held_out['pixel_spread']:.4f} |"
    )
    assert reference in markdown
    assert "their spread over the first 5 of them" in markdown
    assert "![samples](samples.png)" in markdown

    merged = experiment.merge_results([out], tmp_path / "merged")
    assert merged["held_out_real"] == held_out
    assert "## Samples" in (tmp_path / "merged" / "results.md").read_text()
    _assert_png(tmp_path / "merged" / "samples.png")


# Measured on 2026-11-29 (TensorFlow, 32x32, 512 faces: 410 trained on, the
# runner's 5-level stack, 3 epochs per stage, seed 0): uniform noise is at
# 308.6 from the nearest training face, the greedy model's 64 samples at 41.7
# (sharpness ratio 0.078: blurry), a factor of 7.4; held-out real faces are at
# 90.5 (sharpness 1.14). The test asserts a bit over half of the factor.
NOISE_FACTOR = 4.0


@pytest.mark.slow
def test_greedy_samples_from_a_fitted_density_are_nearer_to_faces_than_noise(lfw_dir, tmp_path):
    argv = ["--data-dir", str(lfw_dir), "--image-size", "32", "--max-images", "512"]
    argv += ["--configs", "recursive", "--epochs", "3", "--test-images", "64"]
    argv += ["--output-dir", str(tmp_path), "--verbose", "0"]
    assert experiment.main(argv, prog="lfw_faces") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    (entry,) = results["configurations"]
    samples = entry["samples"]
    assert samples["density"] == "gaussian_mixture" and samples["count"] == 64

    from keras_recursive_ae.datasets.lfw import load_lfw

    train = load_lfw(lfw_dir, image_size=32, max_images=512, seed=0).numpy("train")
    assert len(train) == results["data"]["num_images"]["train"]
    noise = np.random.default_rng(0).random((64, 32, 32, 3), dtype="float32")
    to_noise = scores.nearest_training_distance(noise, train)
    factor = to_noise / samples["nearest_training_sse"]
    print(
        f"samples {samples}, held-out real faces {results['held_out_real']}, "
        f"noise {to_noise:.1f}: factor {factor:.2f}"
    )
    assert factor > NOISE_FACTOR, (samples, to_noise)
