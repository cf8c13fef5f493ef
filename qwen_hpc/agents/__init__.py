"""Tool use as in Qwen §3.4: ReAct prompting, registered tools, the agent loop, the paper's metrics.

Domain code: usable without Hydra, Slurm or a stage. The code-interpreter tool runs model-written code only
through `qwen_hpc.sandbox`.
"""
