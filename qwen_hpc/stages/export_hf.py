"""Stage `export_hf` (command `qwen-hpc export-hf`): the trained model as a Hugging Face Qwen2 folder.

Loads the pretrain checkpoint (any TP/PP layout; `export_hf.checkpoint` picks another one) into one
unsharded model and writes safetensors, config.json, generation_config.json, the tokenizer (tokenizer.json
with the ChatML chat template) to `export_hf.output` (default `runs/<experiment>/export_hf/hf/`).
"""

from __future__ import annotations

from pathlib import Path

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "export_hf"
DESCRIPTION = "the trained model as a Hugging Face Qwen2 folder (safetensors, config, tokenizer, ChatML)"
CONFIG_KEYS = ("model", "model.long_context", "export_hf")  # model.long_context: inference settings
UPSTREAM = ("tokenizer", "pretrain")
DISTRIBUTED = False


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs
    from qwen_hpc.interop.hf_checkpoint import export_checkpoint
    from qwen_hpc.utils.io import write_json

    checkpoint = Path(cfg.export_hf.checkpoint or outputs.checkpoints_dir(ctx.stage_path("pretrain")))
    output = Path(cfg.export_hf.output or ctx.stage_dir / "hf")
    tokenizer = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name).load()
    info = export_checkpoint(checkpoint, output, cfg.model, tokenizer, dtype=cfg.export_hf.dtype)
    write_json(ctx.stage_dir / "export.json", {**info, "output": str(output)})
    ctx.tracker.log({"export/parameters": info["parameters"]})
    return StageResult("completed", metrics=info, outputs={"hf": str(output)})
