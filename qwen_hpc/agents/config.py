"""Settings of the agent evaluation (tool use, Table 6; code interpreter, Tables 7–8)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AgentEvalConfig:
    # "" = the sft stage's latest checkpoint; else a checkpoint root, a run folder or an import_hf folder
    checkpoint: str = ""
    tool_cases: int = 0  # 0 = the whole tool-use set; N = the first N positives and N // 4 negatives
    code_cases: int = 0  # 0 = every code-interpreter case; N = at most N per category
    max_new_tokens: int = 256
    batch_size: int = 8
    max_steps: int = 4  # tool calls per code-interpreter case
    cell_wall_s: float = 30.0
    kernel_memory_mb: int = 2048
    system: str = "You are a helpful assistant."

    def __post_init__(self) -> None:
        for name in ("tool_cases", "code_cases"):
            if getattr(self, name) < 0:
                raise ValueError(f"agent_eval.{name}={getattr(self, name)} must be >= 0")
        for name in ("max_new_tokens", "batch_size", "max_steps", "kernel_memory_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"agent_eval.{name}={getattr(self, name)} must be >= 1")
        if self.cell_wall_s <= 0:
            raise ValueError(f"agent_eval.cell_wall_s={self.cell_wall_s} must be > 0")
