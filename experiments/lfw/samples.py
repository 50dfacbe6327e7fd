"""New faces from every configuration, scored against the training faces."""

import time

import numpy as np

from experiments.lfw.scores import SAMPLE_METRICS, mean_sharpness, pixel_spread, score_samples

SAMPLES = 64
"""How many images each configuration generates and is scored on."""

DENSITY_COMPONENTS = 10
"""Gaussians in a deterministic configuration's code density (the library's default)."""


class SampleScorer:
    """Generates images from each trained configuration and scores them.

    A variational configuration decodes codes drawn from N(0, I), the prior
    its codes were trained towards. A deterministic one first fits a
    Gaussian mixture to the codes of the training faces
    (`RecursiveTrainer.fit_latent_density`, "ex-post density estimation")
    and decodes codes drawn from it. Every configuration's samples are then
    scored with `score_samples` against the training faces, and so are the
    held-out real faces, as the reference: what a real face the models never
    saw scores.

    Args:
        train: The training faces: an array or a batched `tf.data.Dataset`.
        num_train: How many training faces there are (the mixture has at
            most one component per face).
        num_samples: Images to generate per configuration. Defaults to
            `SAMPLES`.
        components: Gaussians in each deterministic configuration's mixture.
            Defaults to `DENSITY_COMPONENTS`.
        seed: Seed of the mixture's initialization and of the codes drawn.
        batch_size: Batch size for encoding an array of training faces.
    """

    def __init__(
        self,
        train,
        num_train,
        num_samples=SAMPLES,
        components=DENSITY_COMPONENTS,
        seed=0,
        batch_size=32,
    ):
        self.train = train
        self.num_train = int(num_train)
        self.num_samples = int(num_samples)
        self.components = int(components)
        self.seed = seed
        self.batch_size = batch_size if isinstance(train, np.ndarray) else None
        self._train_sharpness = None

    @property
    def train_sharpness(self):
        """The training faces' mean sharpness, computed once."""
        if self._train_sharpness is None:
            self._train_sharpness = mean_sharpness(self.train)
        return self._train_sharpness

    def sample(self, trainer, configuration, density_path=None, seed=None):
        """Generates and scores one trained configuration's images.

        Args:
            trainer: The configuration's trained `RecursiveTrainer`.
            configuration: Its `Configuration`.
            density_path: Optional `.npz` path to save a fitted density to
                (with `--save-models`, beside the model).
            seed: Optional seed of this configuration's mixture and codes
                (`--seeds`: each model seed's). Defaults to `None` (`seed`).

        Returns:
            A tuple `(images, record)`: the float32 images, and the record
            for `results.json` (where the codes came from, the seconds the
            fit and the decoding took, and the scores of `score_samples`).
        """
        seed = self.seed if seed is None else seed
        start = time.perf_counter()
        record = {"density": "N(0, I)", "density_components": None}
        if not configuration.variational:
            components = min(self.components, self.num_train)
            trainer.fit_latent_density(
                self.train, components, batch_size=self.batch_size, seed=seed
            )
            record = {"density": "gaussian_mixture", "density_components": components}
            if density_path is not None:
                trainer.latent_density.save(density_path)
                record["density_file"] = density_path.name
        images = np.asarray(trainer.generate(self.num_samples, seed=seed), dtype="float32")
        record["seconds"] = round(time.perf_counter() - start, 3)
        record.update(score_samples(images, self.train, self.train_sharpness))
        return images, record

    def held_out_real(self, images):
        """The reference: `score_samples` of held-out real faces.

        The spread across them (`pixel_spread`) is taken over the first
        `num_samples` of them, as many as each configuration's samples
        (`spread_count`), so that the two can be compared.
        """
        record = score_samples(images, self.train, self.train_sharpness)
        record["spread_count"] = min(len(images), self.num_samples)
        record["pixel_spread"] = pixel_spread(images[: self.num_samples])
        return record


def describe_sample_scores(record):
    """E.g. `"nearest_training_sse 52.1, sharpness_ratio 0.214, pixel_spread 0.1523"`."""
    return ", ".join(
        f"{key} {'nan' if record.get(key) is None else f'{record[key]:.{digits}f}'}"
        for key, _, digits in SAMPLE_METRICS
    )
