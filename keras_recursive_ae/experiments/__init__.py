"""Reference experiments built on the library; the library never imports them.

- `keras_recursive_ae.experiments.lfw`: the paper's configurations trained
  on LFW faces with the same budget, scored, reported and drawn.
"""
