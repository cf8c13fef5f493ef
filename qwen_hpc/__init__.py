"""qwen-hpc: the Qwen Technical Report (arXiv:2309.16609) recipe as resumable HPC jobs.

Layers point down only: orchestration (workflow/, slurm/) → entry (cli, stages) → launch →
domain (data, tokenizer, model, training, evaluation) ; tracking and report observe, never change results.
"""

__version__ = "0.1.0"
