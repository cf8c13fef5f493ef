"""Stage `import_hf` (command `qwen-hpc import-hf hf_path=<dir> [output=<dir>] [tp=.. pp=..]`): a Hugging Face
Qwen2 folder as a Megatron-Core checkpoint that our `evaluate` (and later `sft`) loading code reads.

Writes `<output>/checkpoints/iter_0000000` + `latest`, `<output>/model_config.json` and, when the folder has
a tokenizer, `<output>/tokenizer/tokenizer.tiktoken` + `special_tokens.json` (default output
`runs/<experiment>/import_hf/`). `tp` sets the embedding padding a run with that TP size expects.
"""

from __future__ import annotations

from pathlib import Path

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "import_hf"
DESCRIPTION = "a Hugging Face Qwen2 folder into a Megatron-Core checkpoint (any TP/PP)"
CONFIG_KEYS = ("import_hf",)
UPSTREAM = ()
DISTRIBUTED = False


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.interop.hf_checkpoint import import_hf
    from qwen_hpc.utils.io import write_json

    if not cfg.import_hf.hf_path:
        raise ValueError("import_hf.hf_path is empty: give the Hugging Face folder (hf_path=<dir>)")
    output = Path(cfg.import_hf.output or ctx.stage_dir / "model")
    info = import_hf(cfg.import_hf.hf_path, output, tp=cfg.import_hf.tp, pp=cfg.import_hf.pp)
    write_json(ctx.stage_dir / "import.json", {**info, "output": str(output)})
    return StageResult("completed", metrics=info, outputs={"checkpoint": str(output / "checkpoints")})
