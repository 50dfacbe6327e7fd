"""The package's layout: what importing it loads, and what imports what.

- `import keras_recursive_ae` under JAX or PyTorch loads no TensorFlow: only
  the LFW loader (`keras_recursive_ae.datasets.lfw`, loaded on first use) needs it.
- The experiments (`experiments/` beside the package) are not in the wheel:
  the library never imports them, and the LFW runner uses only its public API.
"""

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "keras_recursive_ae"
EXPERIMENTS = "experiments"
# What the experiments may import of the library: its public API.
PUBLIC_MODULES = {
    "keras_recursive_ae",
    "keras_recursive_ae.metrics",
    "keras_recursive_ae.generation",
    "keras_recursive_ae.datasets.lfw",
}


def _run(code, backend):
    path = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join(filter(None, path)))
    env.pop("TF_USE_LEGACY_KERAS", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_loads_no_tensorflow_under_other_backends(backend):
    # Only the import: once TensorFlow is installed, Keras itself imports it
    # when it serializes an object (`get_config` of a layer, saving), on
    # every backend (`keras.saving.serialize_keras_object`, Keras 3.15).
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (CI installs it in its {backend} run)")
    result = _run(
        """
        import sys

        import keras

        import keras_recursive_ae
        from keras_recursive_ae import (
            PSNR,
            MirroredConvStack,
            RecursiveTrainer,
            SharedBatchNorm,
            SymmetricAutoencoder,
            VariationalBottleneck,
            metrics,
        )

        print(keras.backend.backend(), "tensorflow" in sys.modules)
        """,
        backend,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [backend, "False"], result.stdout


def test_lfw_names_load_on_first_use_and_stay_importable():
    result = _run(
        """
        import sys

        import keras_recursive_ae as package

        print("keras_recursive_ae.datasets.lfw" in sys.modules)
        from keras_recursive_ae import LFWSplits, lfw, load_lfw

        print(load_lfw is lfw.load_lfw, LFWSplits is lfw.LFWSplits)
        print(package.lfw is sys.modules["keras_recursive_ae.datasets.lfw"])
        print(all(hasattr(package, name) for name in package.__all__))
        print({"lfw", "load_lfw", "LFWSplits"} <= set(dir(package)))
        try:
            package.no_such_name
        except AttributeError as e:
            print("no_such_name" in str(e))
        """,
        "tensorflow",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["False", "True", "True", "True", "True", "True", "True"]


def _core_modules():
    return sorted(PACKAGE_DIR.rglob("*.py"))


def _package_of(path):
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts if parts[-1] == "__init__" else parts[:-1]).removesuffix(".__init__")


def _imported_names(source, package):
    """Absolute names of every module `source` imports, relative ones resolved."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_imported_names_resolve_every_form_of_import():
    # Guards the check below: it must see imports inside functions and
    # relative ones.
    source = textwrap.dedent(
        """
        import keras
        from keras import ops


        def f():
            from .lfw import cli
            from . import run
            import experiments.lfw.figures
        """
    )
    names = _imported_names(source, "experiments.lfw")
    assert {"keras", "keras.ops"} <= set(names)
    assert names.count("experiments.lfw") == 1
    assert {"experiments.lfw.lfw.cli", "experiments.lfw.run", "experiments.lfw.figures"} <= set(
        names
    )
    assert _package_of(PACKAGE_DIR / "metrics.py") == "keras_recursive_ae"
    assert _package_of(PACKAGE_DIR / "__init__.py") == "keras_recursive_ae"


def test_core_never_imports_the_experiments():
    offenders = {
        str(path.relative_to(REPO_ROOT)): name
        for path in _core_modules()
        for name in _imported_names(path.read_text(encoding="utf-8"), _package_of(path))
        if name == EXPERIMENTS or name.startswith(EXPERIMENTS + ".")
    }
    assert not offenders
    assert len(_core_modules()) >= 10


def test_importing_every_core_module_loads_no_experiment():
    modules = [
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in _core_modules()
    ]
    result = _run(
        f"""
        import importlib
        import sys

        for name in {modules!r}:
            importlib.import_module(name)
        print(sorted(m for m in sys.modules if m.startswith({EXPERIMENTS!r})))
        """,
        "tensorflow",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def _library_imports(source):
    """`(module, name)` for every import of the library in `source` (`name` None for a module)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield from ((node.module, alias.name) for alias in node.names)


def test_the_lfw_runner_uses_only_the_public_api_and_is_not_in_the_wheel():
    # (experiments/studies/feeding.py times the trainer's internals on purpose.)
    import keras_recursive_ae

    experiment_files = sorted((REPO_ROOT / EXPERIMENTS / "lfw").rglob("*.py"))
    assert len(experiment_files) >= 10
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {module} {name}"
        for path in experiment_files
        for module, name in _library_imports(path.read_text(encoding="utf-8"))
        if module.split(".")[0] == "keras_recursive_ae"
        and (
            module not in PUBLIC_MODULES
            or (module == "keras_recursive_ae" and name not in keras_recursive_ae.__all__)
        )
    ]
    assert not offenders
    assert not (PACKAGE_DIR / "experiments").exists()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'include = ["keras_recursive_ae*"]' in pyproject
