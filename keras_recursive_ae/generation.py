"""Latent densities and generation: new images from an autoencoder's decoder.

A variational autoencoder's codes are trained towards N(0, I), so decoding a
draw from N(0, I) gives a new image. A deterministic autoencoder's codes
follow no known distribution, but one can be fitted to them after training
("ex-post density estimation", Ghosh et al. 2020, *From Variational to
Deterministic Autoencoders*): encode the training images, fit a Gaussian
mixture to their codes `T_n`, and decode draws from the mixture. Training is
not changed at all, so it works for greedily (recursively) trained models.

The mixture is fitted with scikit-learn's `GaussianMixture` (the
`generation` extra: `pip install "keras-recursive-ae[generation]"`), a
well-tested EM with k-means initialization; fitting happens once, on NumPy
codes, so it needs no backend. Sampling is written here with NumPy from the
fitted weights, means and covariances (through their Cholesky factors), so
the same seed gives the same codes in every process and under every Keras
backend, and generating needs neither scikit-learn nor the training data:
only the decoder and the `LatentDensity`, each saved to its own file.
"""

import os

import numpy as np

from keras_recursive_ae.layers.variational_bottleneck import VariationalBottleneck
from keras_recursive_ae.models.symmetric_autoencoder import owned_layers
from keras_recursive_ae.utils.arguments import check_int
from keras_recursive_ae.utils.images import check_images, check_values
from keras_recursive_ae.utils.messages import describe

_KEYS = ("weights", "means", "covariances", "code_shape")


class LatentDensity:
    """A Gaussian mixture over an autoencoder's codes, with full covariances.

    Holds the mixture's `weights` (one per component, summing to one),
    `means` and `covariances` over the flattened codes, and the shape of one
    code, so that `sample` returns codes a decoder takes. Build one with
    `LatentDensity.fit` (from codes), `fit_latent_density` (from images and
    an encoder), `LatentDensity.standard_normal` (N(0, I), a variational
    autoencoder's prior) or `LatentDensity.load` (from a file `save` wrote).

    Sampling uses NumPy only (`numpy.random.default_rng(seed)`), so the
    same seed gives the same codes in every process and under every Keras
    backend.

    Args:
        weights: the components' weights, shape `(components,)`,
            non-negative and summing to one.
        means: the components' means, shape `(components, code_size)`.
        covariances: the components' covariance matrices, shape
            `(components, code_size, code_size)`, symmetric positive-definite.
        code_shape: the shape of one code, e.g. `(2, 2, 32)`; its values must
            multiply to `code_size`. Defaults to `(code_size,)`.

    Example:

    ```python
    import numpy as np
    from keras_recursive_ae import LatentDensity

    codes = np.random.default_rng(0).normal(size=(200, 2, 2, 3))
    density = LatentDensity.fit(codes, components=2)
    density.components, density.code_shape    # (2, (2, 2, 3))
    samples = density.sample(5, seed=1)       # shape (5, 2, 2, 3)
    density.save("density.npz")
    restored = LatentDensity.load("density.npz")
    np.testing.assert_array_equal(restored.sample(5, seed=1), samples)
    ```
    """

    def __init__(self, weights, means, covariances, code_shape=None):
        weights = np.asarray(weights, dtype="float64")
        means = np.asarray(means, dtype="float64")
        covariances = np.asarray(covariances, dtype="float64")
        if weights.ndim != 1 or len(weights) == 0:
            raise ValueError(
                "Invalid value for argument `weights`. Expected a non-empty vector "
                f"of component weights. Received: weights with shape {weights.shape}"
            )
        if (
            not np.all(np.isfinite(weights))
            or np.any(weights < 0)
            or not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-6)
        ):
            raise ValueError(
                "Invalid value for argument `weights`. Expected non-negative "
                "weights summing to 1. Received: "
                f"weights={describe(weights, max_values=8)}, summing to "
                f"{weights.sum():.6g}, smallest {weights.min():.6g}"
            )
        components = len(weights)
        if means.ndim != 2 or means.shape[0] != components:
            raise ValueError(
                "Invalid value for argument `means`. Expected shape "
                f"({components}, code_size), one mean per weight. "
                f"Received: means with shape {means.shape}"
            )
        size = means.shape[1]
        if covariances.shape != (components, size, size):
            raise ValueError(
                "Invalid value for argument `covariances`. Expected shape "
                f"{(components, size, size)}, one matrix per mean. "
                f"Received: covariances with shape {covariances.shape}"
            )
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(covariances))):
            raise ValueError("`means` and `covariances` must be finite. Received NaN or infinity.")
        try:
            cholesky = np.linalg.cholesky(covariances)
        except np.linalg.LinAlgError:
            raise ValueError(
                "Invalid value for argument `covariances`. Expected symmetric "
                "positive-definite matrices. Received: covariances with a matrix "
                "that has no Cholesky factor"
            ) from None
        code_shape = (size,) if code_shape is None else tuple(int(d) for d in code_shape)
        if any(d < 1 for d in code_shape) or int(np.prod(code_shape)) != size:
            raise ValueError(
                "Invalid value for argument `code_shape`. Expected positive sizes "
                f"whose product is the code size {size}. "
                f"Received: code_shape={describe(code_shape)}"
            )
        self.weights = weights / weights.sum()
        self.means = means
        self.covariances = covariances
        self.code_shape = code_shape
        self._cholesky = cholesky

    @property
    def components(self):
        """The number of mixture components."""
        return len(self.weights)

    @classmethod
    def fit(cls, codes, components=10, *, seed=0):
        """Fits a mixture of `components` full-covariance Gaussians to `codes`.

        Uses scikit-learn's `GaussianMixture` (k-means initialization, EM,
        `1e-6` added to every covariance's diagonal so that it stays
        positive-definite when the codes span fewer dimensions than they
        have). `components=1` is one Gaussian: the codes' mean and
        covariance.

        Args:
            codes: an array of codes `(N, ...)`; each code is flattened.
            components: the number of Gaussians, at most `N`. Defaults to
                `10`, as in Ghosh et al. (2020).
            seed: the seed of the initialization (an integer), so the same
                codes give the same density. Defaults to `0`.

        Returns:
            A `LatentDensity`.

        Raises:
            ImportError: scikit-learn is not installed (install the
                `generation` extra).
            ValueError: `components` is not a positive integer or exceeds
                the number of codes, or the codes are not finite.
        """
        components = check_int(components, "components", minimum=1)
        seed = check_int(seed, "seed")
        codes = np.asarray(codes, dtype="float64")
        if codes.ndim < 2 or len(codes) == 0:
            raise ValueError(
                "Expected `codes` to be a batch of codes (N, ...). "
                f"Received: codes with shape {codes.shape}"
            )
        if components > len(codes):
            raise ValueError(
                "Invalid value for argument `components`. Expected at most the "
                f"number of codes ({len(codes)}). Received: components={components}"
            )
        flat = codes.reshape(len(codes), -1)
        if not np.all(np.isfinite(flat)):
            raise ValueError("`codes` holds NaN or infinite values: no density fits them.")
        try:
            from sklearn.mixture import GaussianMixture
        except ImportError as error:
            raise ImportError(
                "Fitting a latent density needs scikit-learn, in the `generation` "
                'extra: pip install "keras-recursive-ae[generation]"'
            ) from error
        mixture = GaussianMixture(components, covariance_type="full", random_state=seed)
        mixture.fit(flat)
        return cls(mixture.weights_, mixture.means_, mixture.covariances_, codes.shape[1:])

    @classmethod
    def standard_normal(cls, code_shape):
        """N(0, I) over codes of `code_shape`: a variational autoencoder's prior.

        Its samples are exactly `numpy.random.default_rng(seed)`'s standard
        normal draws, in the shape `(num_samples,) + code_shape`.

        Args:
            code_shape: the shape of one code, e.g. `(32,)`.

        Returns:
            A one-component `LatentDensity`.
        """
        code_shape = tuple(code_shape)
        size = int(np.prod(code_shape))
        return cls(np.ones(1), np.zeros((1, size)), np.eye(size)[None], code_shape)

    def sample(self, num_samples, seed=None):
        """Draws `num_samples` codes.

        Each code picks a component by the weights, then adds the component's
        Cholesky factor times standard normal noise to its mean.

        Args:
            num_samples: how many codes to draw (at least 1).
            seed: optional non-negative integer; the same seed gives the
                same codes, in any process and under any backend. `None`
                draws fresh ones.

        Returns:
            A float32 NumPy array of shape `(num_samples,) + code_shape`.
        """
        num_samples = check_int(num_samples, "num_samples", minimum=1)
        if seed is not None:
            seed = check_int(seed, "seed")
        rng = np.random.default_rng(seed)
        if self.components == 1:  # no draw for the component: N(0, I) stays plain normals
            which = np.zeros(num_samples, dtype="int64")
        else:
            which = rng.choice(self.components, size=num_samples, p=self.weights)
        noise = rng.standard_normal((num_samples, self.means.shape[1]))
        samples = np.empty_like(noise)
        for component in range(self.components):
            rows = which == component
            samples[rows] = self.means[component] + noise[rows] @ self._cholesky[component].T
        return samples.astype("float32").reshape((num_samples,) + self.code_shape)

    def save(self, filepath):
        """Saves the density to a NumPy `.npz` file (no pickle).

        Args:
            filepath: a path ending in `.npz`.
        """
        filepath = os.fspath(filepath)
        if not filepath.endswith(".npz"):
            raise ValueError(
                "Invalid value for argument `filepath`. Expected a path ending in "
                f"`.npz`. Received: filepath={filepath!r}"
            )
        np.savez(
            filepath,
            weights=self.weights,
            means=self.means,
            covariances=self.covariances,
            code_shape=np.asarray(self.code_shape, dtype="int64"),
        )

    @classmethod
    def load(cls, filepath):
        """Loads a density that `save` wrote.

        Args:
            filepath: the `.npz` file.

        Returns:
            A `LatentDensity` that samples the same codes for the same seed.
        """
        with np.load(os.fspath(filepath), allow_pickle=False) as data:
            missing = [key for key in _KEYS if key not in data.files]
            if missing:
                raise ValueError(
                    f"{os.fspath(filepath)!r} is not a saved LatentDensity: it lacks "
                    f"{missing}. Received: filepath={os.fspath(filepath)!r}"
                )
            return cls(*(data[key] for key in _KEYS))

    def __repr__(self):
        return f"<LatentDensity components={self.components} code_shape={self.code_shape}>"


def fit_latent_density(encoder, x, components=10, *, batch_size=None, seed=0):
    """Fits a `LatentDensity` to the codes of images `x` under `encoder`.

    `RecursiveTrainer.fit_latent_density` calls this with the trainer's
    encoder; call it yourself with an encoder loaded from a file.

    Args:
        encoder: a Keras model from images to codes (`trainer.encoder`).
        x: the training images, a NumPy array `(N, height, width, channels)`
            of floats or a batched `tf.data.Dataset` of them (or of
            `(images, _)` pairs).
        components: the number of Gaussians in the mixture. Defaults to
            `10`; `1` fits one Gaussian.
        batch_size: batch size for encoding an array (as in
            `keras.Model.predict`).
        seed: the seed of the mixture's initialization. Defaults to `0`.

    Returns:
        The fitted `LatentDensity`.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_recursive_ae import fit_latent_density

    encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, strides=4)])
    images = np.random.default_rng(0).random((40, 8, 8, 1), dtype="float32")
    density = fit_latent_density(encoder, images, components=3)
    density.code_shape     # (2, 2, 2)
    ```
    """
    components = check_int(components, "components", minimum=1)
    check_images(x, "x", tuple(encoder.input_shape[1:]))
    check_values(x, "x", sigmoid_output=False)  # refuses integer and non-finite images
    codes = encoder.predict(x, batch_size=batch_size, verbose=0)
    return LatentDensity.fit(codes, components, seed=seed)


def code_prior(encoder):
    """N(0, I) over the codes of a variational encoder, or an error.

    The encoder is variational when one of its layers (nested ones included)
    is a `VariationalBottleneck`, as in `MirroredConvStack(variational=True)`.
    A deterministic encoder's codes follow no known distribution: fit one
    with `fit_latent_density`.

    Args:
        encoder: a Keras model from images to codes.

    Returns:
        `LatentDensity.standard_normal` over the encoder's code shape.

    Raises:
        ValueError: the encoder has no `VariationalBottleneck`.
    """
    if any(isinstance(layer, VariationalBottleneck) for layer in owned_layers(encoder)):
        return LatentDensity.standard_normal(encoder.output_shape[1:])
    raise ValueError(
        "This autoencoder is deterministic (its encoder has no "
        "VariationalBottleneck), so its codes follow no known distribution. "
        "Call `fit_latent_density(x)` with the training images first; "
        "`generate` then samples the fitted density."
    )


def generate(decoder, density, num_images, seed=None):
    """Decodes `num_images` codes drawn from `density` into images.

    With the decoder and the density saved (`decoder.save("decoder.keras")`,
    `density.save("density.npz")`), a fresh process generates the same
    images for the same seed from `keras.saving.load_model` and
    `LatentDensity.load`.

    Args:
        decoder: a Keras model from codes to images (`trainer.decoder`).
        density: a `LatentDensity` over the decoder's input codes.
        num_images: how many images to generate (at least 1).
        seed: optional non-negative integer; the same seed gives the same
            images.

    Returns:
        A float32 NumPy array of `num_images` images, in the decoder's output range
        (`[0, 1]` for a sigmoid output).

    Example:

    ```python
    import keras
    import numpy as np
    from keras_recursive_ae import LatentDensity, generate

    decoder = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(12, activation="sigmoid"),
         keras.layers.Reshape((2, 2, 3))]
    )
    images = generate(decoder, LatentDensity.standard_normal((4,)), 5, seed=0)
    images.shape           # (5, 2, 2, 3)
    ```
    """
    num_images = check_int(num_images, "num_images", minimum=1)
    if not isinstance(density, LatentDensity):
        raise TypeError(
            "Expected `density` to be a LatentDensity (see `fit_latent_density`). "
            f"Received: density of type {type(density).__name__}"
        )
    expected = tuple(decoder.input_shape[1:])
    if len(expected) != len(density.code_shape) or any(
        e is not None and e != d for e, d in zip(expected, density.code_shape)
    ):
        raise ValueError(
            f"The density's codes have shape {density.code_shape}; the decoder takes "
            f"{expected}. Received: density={describe(density)}"
        )
    codes = density.sample(num_images, seed=seed)
    # float32 whatever the policy (a mixed one decodes in 16 bits).
    return np.asarray(decoder.predict(codes, verbose=0), dtype="float32")
