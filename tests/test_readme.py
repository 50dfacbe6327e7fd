"""The README's commands and its own-pair quickstart, as they are written.

The main command itself runs in `experiments/test_lfw_example.py` (on a few dozen real
faces) and the test command is CI's (`.ci/run` runs it verbatim).
"""

import re

import keras
from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
MAIN_COMMAND = (
    'python3 -m venv .venv && .venv/bin/pip install ".[lfw]" && '
    ".venv/bin/python examples/lfw_faces.py --data-dir ../shared/data/lfw"
)
TEST_COMMAND = (
    'python3 -m venv .venv && .venv/bin/pip install ".[test]" && .venv/bin/python -m pytest -q'
)


def _blocks(language):
    return re.findall(rf"^```{language}\n(.*?)^```$", README, re.MULTILINE | re.DOTALL)


def test_the_two_commands_come_first_word_for_word():
    commands = [block.strip() for block in _blocks("bash")]
    assert commands[1:3] == [MAIN_COMMAND, TEST_COMMAND]
    assert TEST_COMMAND in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert (REPO_ROOT / "examples" / "lfw_faces.py").is_file()


def test_the_own_pair_quickstart_trains_each_level():
    (code,) = [
        block for block in _blocks("python") if "RecursiveTrainer(encoder, decoder)" in block
    ]
    code = code.replace("np.random.rand(256,", "np.random.rand(32,")  # a smaller batch of images
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    history = namespace["trainer"].fit(namespace["images"], epochs=[1, 1], batch_size=32, verbose=0)
    assert history.history["stage"] == [1, 2]


def test_the_denoising_lines_train_noisy_to_clean_and_with_corruption():
    (pair,) = [b for b in _blocks("python") if "RecursiveTrainer(encoder, decoder) " in b]
    (denoising,) = [b for b in _blocks("python") if "corruption=" in b]
    namespace = {}
    code = pair.replace("np.random.rand(256,", "np.random.rand(32,").replace(
        "epochs=[5, 3]", "epochs=1"
    )
    exec(compile(code, "README.md", "exec"), namespace)
    exec(compile(denoising.replace("epochs=[5, 3]", "epochs=1"), "README.md", "exec"), namespace)
    assert isinstance(namespace["trainer"].corruption, keras.layers.GaussianNoise)
