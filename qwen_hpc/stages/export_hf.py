"""Stage `export_hf` (command `qwen-hpc export-hf [checkpoint=<dir>] [output=<dir>] [tokenizer=<dir>]`): a
checkpoint as a Hugging Face Qwen2 folder.

Any checkpoint folder the project writes or imports exports on its own (issue 12 item 2): the dimensions
come from the folder's `model_config.json` and the tokenizer from its `tokenizer/` (or `tokenizer=`), never
from this run's `model`/`tokenizer` stages. `checkpoint` may be such a folder (`import_hf`'s output, a
`pretrain` stage folder), its `checkpoints/` root or one `iter_*` folder (any TP/PP layout); empty means
this run's pretrain stage. Writes safetensors, config.json, generation_config.json and the tokenizer
(tokenizer.json with the ChatML chat template) to `export_hf.output` (default
`runs/<experiment>/export_hf/hf/`).
"""

from __future__ import annotations

from pathlib import Path

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult, marker_lineages

NAME = "export_hf"
DESCRIPTION = "a checkpoint as a Hugging Face Qwen2 folder (safetensors, config, tokenizer, ChatML)"
# the dimensions come from the checkpoint folder; model.long_context: the inference settings written to
# config.json (this run's, when exporting this run's pretrain folder)
CONFIG_KEYS = ("model.long_context", "export_hf")
UPSTREAM = ("tokenizer", "pretrain")  # when `export_hf.checkpoint` is empty (see input_lineages)
DISTRIBUTED = False


def input_lineages(cfg: QwenConfig) -> dict[str, str | None]:
    """This run's pretrain (and tokenizer) markers by default; an explicit folder stands for itself."""
    if not cfg.export_hf.checkpoint:
        return marker_lineages(UPSTREAM, cfg)
    from qwen_hpc.interop.folder import fingerprint

    return {"checkpoint": fingerprint(cfg.export_hf.checkpoint)}


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs
    from qwen_hpc.interop.folder import MODEL_CONFIG
    from qwen_hpc.interop.hf_checkpoint import export_checkpoint, export_folder
    from qwen_hpc.utils.io import write_json

    output = Path(cfg.export_hf.output or ctx.stage_dir / "hf")
    checkpoint = Path(cfg.export_hf.checkpoint or ctx.stage_path("pretrain"))
    tokenizer = cfg.export_hf.tokenizer or None
    if cfg.export_hf.checkpoint or (checkpoint / MODEL_CONFIG).is_file():
        # this run's pretrain folder: this run's inference-only long-context settings go into config.json
        long_context = None if cfg.export_hf.checkpoint else cfg.model.long_context
        info = export_folder(
            checkpoint, output, tokenizer=tokenizer, dtype=cfg.export_hf.dtype, long_context=long_context
        )
    else:  # a pretrain folder written before pretrain recorded model_config.json: this run's model/tokenizer
        files = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name)
        info = export_checkpoint(
            outputs.checkpoints_dir(checkpoint), output, cfg.model, files.load(), dtype=cfg.export_hf.dtype
        )
    write_json(ctx.stage_dir / "export.json", {**info, "output": str(output)})
    ctx.tracker.log({"export/parameters": info["parameters"]})
    return StageResult("completed", metrics=info, outputs={"hf": str(output)})
