"""The package's layout: what importing it loads, and what imports what.

- `import keras_recursive_ae` under JAX or PyTorch loads no TensorFlow: only
  the LFW loader (`keras_recursive_ae.datasets.lfw`, loaded on first use) needs it.
- The core package never imports the experiment runner
  (`keras_recursive_ae.experiments`).
- No module of the package is over 350 code lines (lines that are not
  blank, comments or docstrings).
"""

import ast
import importlib.util
import io
import os
import subprocess
import sys
import textwrap
import tokenize

import pytest
from conftest import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "keras_recursive_ae"
EXPERIMENTS = "keras_recursive_ae.experiments"
MAX_CODE_LINES = 350
# Modules over the limit, each with the reason (strict: once a module is
# under the limit, its entry must go).
KNOWN_LONG_MODULES = {}


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
    return sorted(
        path
        for path in PACKAGE_DIR.rglob("*.py")
        if "experiments" not in path.relative_to(PACKAGE_DIR).parts
    )


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
            from .experiments import lfw
            from . import experiments
            import keras_recursive_ae.experiments.lfw.cli
        """
    )
    names = _imported_names(source, "keras_recursive_ae")
    assert {"keras", "keras.ops"} <= set(names)
    assert names.count("keras_recursive_ae.experiments") == 2
    assert {"keras_recursive_ae.experiments.lfw", "keras_recursive_ae.experiments.lfw.cli"} <= set(
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


def code_lines(source):
    """Lines of `source` that hold code: not blank, comments or docstrings."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docstrings.update(range(node.lineno, node.end_lineno + 1))
    lines = set()
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT}
    skipped |= {tokenize.DEDENT, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def test_code_lines_skip_docstrings_comments_and_blank_lines():
    source = textwrap.dedent(
        '''\
        """Doc.

        More."""

        # note
        x = (
            1,
        )


        def f():
            """Doc."""
            return x  # why
        '''
    )
    assert code_lines(source) == 5


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            path,
            id=str(path.relative_to(REPO_ROOT)),
            marks=[pytest.mark.xfail(reason=KNOWN_LONG_MODULES[key], strict=True)]
            if (key := str(path.relative_to(REPO_ROOT))) in KNOWN_LONG_MODULES
            else [],
        )
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    ],
)
def test_no_module_is_over_350_code_lines(path):
    count = code_lines(path.read_text(encoding="utf-8"))
    assert count <= MAX_CODE_LINES, f"{path.name}: {count} code lines"
