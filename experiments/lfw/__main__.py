"""`python -m experiments.lfw`, from the repository root: the LFW reference experiment."""

import sys

from experiments.lfw.cli import MODULE_COMMAND, main

if __name__ == "__main__":
    sys.exit(main(prog=MODULE_COMMAND))
