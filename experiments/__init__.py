"""Experiments and studies built on the library, run from a checkout; not installed.

The library (`keras_recursive_ae`) never imports them, and they use only its
public API.

- `experiments.lfw`: the LFW reference experiment, the paper's configurations
  trained on LFW faces with the same budget, scored, reported and drawn
  (`examples/lfw_faces.py`, or `python -m experiments.lfw` from the root).
- `experiments/studies/`: one-off studies behind numbers in the docs
  (fine-tuning rates, joint level weights, the VAE's KL weight, where greedy
  training loses, how a stage's input is fed), each a script.
"""
