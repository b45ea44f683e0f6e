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

# GPT-3 175B on 6,144 Ascend 910B (tp 8, pp 16, 6 virtual stages): 75 M ops if every rank's
# program were built, over the every-rank limit.
GPT3_ON_6144_NPUS = """
[cluster]
preset = "atlas-800t-a2"
devices = 6144
[model]
preset = "gpt3-175b"
[train]
seq_len = 2048
global_batch = 12288
micro_batch = 1
tp = 8
pp = 16
schedule = "interleaved"
virtual_stages = 6
"""
