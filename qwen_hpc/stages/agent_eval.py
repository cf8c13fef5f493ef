"""Stage `agent_eval` (Qwen report §3.4, Tables 6–8): the chat model as a ReAct agent on the project's
tool-use set and as a code-interpreter user on its code set (model-written code runs only in the sandbox).

Writes `tool_use.json` and `code_interpreter.json` (scores + one record per case), `results.json` (every
score) and `table.md` (ours beside the paper's numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "agent_eval"
DESCRIPTION = "tool use (ReAct) and code interpreter of the chat model, with the paper's metrics (Tables 6-8)"
CONFIG_KEYS = ("model", "agent_eval")
UPSTREAM = ("tokenizer", "sft")
DISTRIBUTED = False


def _chat_model(cfg: QwenConfig, ctx: StageContext):
    """(checkpoint, model config, tokenizer) of the model to evaluate: the SFT stage's, or agent_eval.checkpoint."""
    from qwen_hpc import outputs
    from qwen_hpc.interop.hf_checkpoint import MODEL_CONFIG
    from qwen_hpc.model.config import ModelConfig
    from qwen_hpc.tokenizer.encoding import TokenizerFiles

    model_cfg, tokenizer = cfg.model, None
    if not cfg.agent_eval.checkpoint:
        path = outputs.checkpoints_dir(ctx.stage_path("sft"))
    else:
        path = Path(cfg.agent_eval.checkpoint)
        if (path / MODEL_CONFIG).is_file():  # an import_hf folder carries its dimensions and tokenizer
            model_cfg = ModelConfig(**json.loads((path / MODEL_CONFIG).read_text()))
            tok = path / "tokenizer"
            tokenizer = TokenizerFiles(tok / "tokenizer.tiktoken", tok / "special_tokens.json")
            path = path / "checkpoints"
        elif (path / "checkpoints").is_dir():
            path = path / "checkpoints"
        if not path.exists():
            raise FileNotFoundError(f"agent_eval.checkpoint: {path} does not exist")
    if tokenizer is None:
        tokenizer = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name)
    return path, model_cfg, tokenizer.load()


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    import os

    from qwen_hpc.agents.run_eval import evaluate_agent, paper_table
    from qwen_hpc.interop.hf_checkpoint import load_model
    from qwen_hpc.parallel import single_process_megatron
    from qwen_hpc.utils.io import write_json, write_text

    checkpoint, model_cfg, tokenizer = _chat_model(cfg, ctx)
    data_root = os.environ.get("QWEN_HPC_DATA_ROOT") or cfg.run.data_root
    with single_process_megatron(seed=cfg.run.seed):
        model = load_model(checkpoint, model_cfg)
        results = evaluate_agent(model, tokenizer, model_cfg, cfg.agent_eval, data_root)
    tool, code = results["tool_use"], results["code_interpreter"]
    write_json(ctx.stage_dir / "tool_use.json", tool)
    write_json(ctx.stage_dir / "code_interpreter.json", code)
    scores = {**{f"tool_use/{k}": v for k, v in tool["scores"].items()},
              **{f"code_interpreter/{k}": v for k, v in code["scores"].items()}}
    write_json(ctx.stage_dir / "results.json", {"checkpoint": str(checkpoint), "scores": scores,
                                                "skipped_sources": code["skipped_sources"]})
    write_text(ctx.stage_dir / "table.md", paper_table(results))
    ctx.tracker.log(scores)
    ctx.tracker.log_table("agent_eval/tool_use", ["id", "positive", "gold_tool", "action", "output"],
                          [[r["id"], r["positive"], r["gold_tool"], r["action"], r["output"]] for r in tool["records"]])
    ctx.tracker.log_table("agent_eval/code_interpreter", ["id", "category", "cells", "cells_ok", "correct", "answer"],
                          [[r["id"], r["category"], r["cells"], r["cells_ok"], r["correct"], r["answer"]]
                           for r in code["records"]])
    return StageResult("completed", metrics=scores, outputs={"results": str(ctx.stage_dir / "results.json")})
