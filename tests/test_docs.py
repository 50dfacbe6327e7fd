"""The documentation runs, so it cannot drift from the code.

- Guides: the ```python blocks of every page under `docs/` run in order, as
  one script, in a fresh Python process whose working directory is a
  temporary folder, with `LFW_DIR` set to the real LFW and `LFW_MAX_IMAGES`
  to a small count (the guides read both, with defaults for readers).
  A ```text title="Output" block right after a ```python block must match
  what that block printed, with doctest's rules (`...` matches anything,
  runs of whitespace compare equal). Other fences (```text, ```bash, ```py)
  are not run. These tests train on real faces, so they are marked slow
  (and skipped, as the repository's other real-data tests, when the LFW
  folder is absent).
- Docstrings: every public class and function of the package has an
  example; the ```python blocks in the docstrings of the public objects
  and of their public methods run, each in a fresh namespace (so they must
  import what they use), and `>>>` examples run with `doctest`.
- Figures: `docs/figures/make_figures.py` draws every committed figure.
- Site: `mkdocs build --strict` (needs the `docs` extra).
"""

import doctest
import importlib
import importlib.util
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import LFW_DIR, REPO_ROOT

DOCS_DIR = REPO_ROOT / "docs"
PACKAGE = "keras_recursive_ae"
# Modules whose public names are documented, besides the package itself.
# A module listed here that is not in the checkout yet is left out.
DOCUMENTED_MODULES = ("keras_recursive_ae.datasets.lfw", "keras_recursive_ae.metrics")
# How many LFW images the guides load in the test (their readers' default
# is larger): enough for every split, small enough to train in seconds.
GUIDE_MAX_IMAGES = 400
OUTPUT_TITLE = 'title="Output"'
_MARKER = "\n@@docs-test block {}@@\n"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)$")

# Docstring examples that are known to fail, with the fix sent to the lead.
# Strict: once the docstring is fixed, the test XPASSes and fails, so the
# entry must be removed.
KNOWN_BROKEN_DOCSTRINGS = {}
KNOWN_MISSING_EXAMPLES = {}


# ---------------------------------------------------------------- fences


def code_blocks(text):
    """Returns `(language, info, code)` for every fenced block of `text`."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        info = match["info"].strip()
        body, i = [], i + 1
        while i < len(lines) and lines[i].strip() != fence:
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1
        language = info.split()[0] if info else ""
        blocks.append((language, info, "\n".join(body) + "\n"))
    return blocks


def python_blocks_with_outputs(text):
    """Pairs every ```python block with the "Output" block after it, if any."""
    pairs = []
    for language, info, code in code_blocks(text):
        if language == "python":
            pairs.append([code, None])
        elif OUTPUT_TITLE in info and pairs and pairs[-1][1] is None:
            pairs[-1][1] = code
    return pairs


def test_fence_parser_reads_indented_blocks_and_outputs():
    text = textwrap.dedent(
        """\
        ```python
        print(1)
        ```

        ```text title="Output"
        1
        ```

        !!! note
            ```python
            x = 2
            ```
        ```bash
        ls
        ```
        """
    )
    assert python_blocks_with_outputs(text) == [["print(1)\n", "1\n"], ["x = 2\n", None]]


# ---------------------------------------------------------------- guides


def _guide_pages():
    pages = []
    for path in sorted(DOCS_DIR.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        if not python_blocks_with_outputs(text):
            continue
        pages.append(pytest.param(path, id=str(path.relative_to(DOCS_DIR))))
    return pages


def _output_matches(expected, printed):
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    return checker.check_output(expected.strip() + "\n", printed.strip() + "\n", flags)


@pytest.mark.slow
@pytest.mark.parametrize("page", _guide_pages())
def test_guide_runs_and_prints_what_it_shows(page, tmp_path):
    if not LFW_DIR.is_dir():
        # The repository's convention for real-data tests (see conftest).
        pytest.skip(f"the real LFW folder is absent: {LFW_DIR}")
    pairs = python_blocks_with_outputs(page.read_text(encoding="utf-8"))
    script = "".join(
        f"print({_MARKER.format(i)!r}, end='', flush=True)\n{code}"
        for i, (code, _) in enumerate(pairs)
    )
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT),
        LFW_DIR=str(LFW_DIR),
        LFW_MAX_IMAGES=str(GUIDE_MAX_IMAGES),
        MPLBACKEND="Agg",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"{page.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    printed = result.stdout.split("@@docs-test block ")[1:]
    assert len(printed) == len(pairs)
    for i, ((code, expected), chunk) in enumerate(zip(pairs, printed)):
        if expected is None:
            continue
        output = chunk.split("@@\n", 1)[1]
        assert _output_matches(expected, output), (
            f"{page.name}, python block {i + 1}:\n{code}\n"
            f"--- the page shows:\n{expected}\n--- it printed:\n{output}"
        )


def test_guides_exist():
    # Guards the parametrization above against finding no page at all.
    assert len(_guide_pages()) >= 4


# ---------------------------------------------------------- docstrings


def _modules():
    modules = [importlib.import_module(PACKAGE)]
    for name in DOCUMENTED_MODULES:
        path = REPO_ROOT.joinpath(*name.split(".")).with_suffix(".py")
        if path.exists():
            modules.append(importlib.import_module(name))
    return modules


def _public_objects():
    """`{qualified name: object}` for the public classes and functions."""
    found = {}
    for module in _modules():
        names = getattr(module, "__all__", None) or [
            n for n, o in vars(module).items() if getattr(o, "__module__", None) == module.__name__
        ]
        for name in names:
            obj = getattr(module, name)
            if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)):
                found[name] = obj
    return found


def _documented_members():
    """`(name, docstring)` of public objects and their own public members."""
    members = []
    for name, obj in _public_objects().items():
        members.append((name, inspect.getdoc(obj) or ""))
        if not inspect.isclass(obj):
            continue
        for attribute, value in vars(obj).items():
            if attribute.startswith("_"):
                continue
            if isinstance(value, (classmethod, staticmethod)):
                value = value.__func__
            if isinstance(value, property):
                value = value.fget
            if inspect.isfunction(value) and value.__doc__:
                members.append((f"{name}.{attribute}", inspect.getdoc(value)))
    return members


def _has_example(docstring):
    return ">>>" in docstring or any(lang == "python" for lang, _, _ in code_blocks(docstring))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(reason=KNOWN_MISSING_EXAMPLES[name], strict=True)]
            if name in KNOWN_MISSING_EXAMPLES
            else [],
        )
        for name in sorted(_public_objects())
    ],
)
def test_public_object_has_an_example(name):
    assert _has_example(inspect.getdoc(_public_objects()[name]) or ""), (
        f"{name} has no runnable example in its docstring"
    )


def _docstring_params():
    params = []
    for name, docstring in _documented_members():
        if not _has_example(docstring):
            continue
        marks = []
        if name in KNOWN_BROKEN_DOCSTRINGS:
            marks.append(pytest.mark.xfail(reason=KNOWN_BROKEN_DOCSTRINGS[name], strict=True))
        params.append(pytest.param(name, docstring, id=name, marks=marks))
    return params


@pytest.mark.parametrize("name, docstring", _docstring_params())
def test_docstring_example_runs(name, docstring, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples may write files
    for language, _, code in code_blocks(docstring):
        if language == "python":
            exec(compile(code, f"<docstring of {name}>", "exec"), {"__name__": "__docs__"})
    if ">>>" in docstring:
        test = doctest.DocTestParser().get_doctest(docstring, {}, name, None, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, out=lambda text: print(text, end=""))
        assert runner.failures == 0, capsys.readouterr().out


# ------------------------------------------------------ figures and site


def test_figure_script_draws_every_committed_figure(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DOCS_DIR / "figures" / "make_figures.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, MPLBACKEND="Agg"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    drawn = sorted(p.name for p in tmp_path.glob("*.svg"))
    committed = sorted(p.name for p in (DOCS_DIR / "figures").glob("*.svg"))
    assert drawn == committed and drawn


def test_no_reference_page_is_left_out_once_its_module_exists():
    # mkdocs.yml leaves out (`exclude_docs`) the reference pages of modules
    # that are not in the checkout yet; once a module lands, its page must
    # be published.
    config = (REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    block = re.search(r"^exclude_docs: \|\n((?:[ \t]+\S.*\n?)*)", config, re.MULTILINE)
    excluded = block.group(1).split() if block else []
    for page in excluded:
        module = REPO_ROOT / PACKAGE / (pathlib.PurePosixPath(page).stem + ".py")
        assert not module.exists(), (
            f"{module.name} exists: delete the line `{page}` under `exclude_docs` in "
            "mkdocs.yml so that its reference page is built"
        )


def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason='the site needs the docs extra: pip install ".[docs]"')
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (tmp_path / "api" / "recursive-trainer" / "index.html").exists()


def test_schedule_map_draws_one_bar_per_configuration_and_budget(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "plot_schedule_map", DOCS_DIR / "figures" / "plot_schedule_map.py"
    )
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)

    def run(path, configurations):
        results = {"data": {"image_shape": [32, 32, 3]}, "configurations": configurations}
        path.write_text(json.dumps(results))
        return path

    spread = {"metrics": {"sum_squared_error": {"mean": 2, "min": 1, "max": 4, "count": 3}}}
    equal_time = [{"equal_time": {"partner": "recursive"}}]
    first = run(
        tmp_path / "a.json",
        [
            {"name": "stacked", "spread": spread, "seeds": [{}]},
            {"name": "recursive", "metrics": {"sum_squared_error": 5.0}},
        ],
    )
    second = run(
        tmp_path / "b.json",
        [
            {"name": "stacked", "spread": spread, "seeds": equal_time},
            {"name": "recursive", "metrics": {"sum_squared_error": 9.0}},  # drawn already
        ],
    )
    assert plot.bars([first, second]) == {
        32: [
            ("stacked", 2, 1, 4, 3),
            ("recursive", 5.0, 5.0, 5.0, 1),
            ("stacked (equal time)", 2, 1, 4, 3),
        ]
    }
    plot.main(str(tmp_path / "map.png"), first, second)
    assert (tmp_path / "map.png").stat().st_size > 0
