"""`python -m keras_recursive_ae.experiments.lfw`: the LFW reference experiment."""

import sys

from keras_recursive_ae.experiments.lfw.cli import MODULE_COMMAND, main

if __name__ == "__main__":
    sys.exit(main(prog=MODULE_COMMAND))
