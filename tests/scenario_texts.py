"""Scenario texts shared by tests."""

# A small valid training scenario (Llama 3 8B on two DGX H100 nodes) to vary key by key.
SMALL_TRAINING = """\
[cluster]
preset = "dgx-h100"
devices = 16

[model]
preset = "llama3-8b"

[train]
seq_len = 4096
global_batch = 32
micro_batch = 1
tp = 8
pp = 2
tokens = 1e12
"""
