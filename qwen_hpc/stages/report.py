"""Stage `report`: an HTML page with the loss curve and a table of every stage's headline metrics."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "report"
DESCRIPTION = "HTML report: loss curve, long-context and data plots + table of every stage's metrics"
CONFIG_KEYS = ("report",)
UPSTREAM = ("data", "tokenizer", "tokens", "pretrain", "evaluate", "long_context", "sft")
DISTRIBUTED = False


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs
    from qwen_hpc.report.html import render
    from qwen_hpc.report.plots import loss_curve_png
    from qwen_hpc.utils.io import read_json, write_bytes, write_text

    rows = []
    for stage in UPSTREAM:
        marker = outputs.read_marker(ctx.stage_path(stage))
        rows.append({"stage": stage, "status": "completed", "wall_s": marker.wall_s, "metrics": marker.metrics})
    records = outputs.read_metrics(ctx.stage_path("pretrain"))
    train = _latest_per_step(records, "loss")
    val = _latest_per_step(records, "val_loss")
    png = loss_curve_png(
        train, val, smoothing=cfg.report.smoothing, title=f"{cfg.run.name}: pretraining loss"
    )
    write_bytes(ctx.stage_dir / "loss.png", png)
    plots = {"pretraining loss": png}
    sft_records = outputs.read_metrics(ctx.stage_path("sft"))
    sft_train, sft_val = _latest_per_step(sft_records, "loss"), _latest_per_step(sft_records, "val_loss")
    if sft_train:
        plots["SFT loss (mean over supervised tokens, Qwen §3.1)"] = loss_curve_png(
            sft_train, sft_val, smoothing=cfg.report.smoothing, title=f"{cfg.run.name}: SFT loss"
        )
    compression_png = ctx.stage_path("tokenizer") / "compression.png"  # written by the tokenizer stage
    if compression_png.is_file():
        plots["tokenizer compression (tokens relative to the reference, per source)"] = (
            compression_png.read_bytes()
        )
    context_png = ctx.stage_path("long_context") / "perplexity.png"  # written by the long_context stage
    if context_png.is_file():
        plots["perplexity vs context length (Qwen §2.5, Table 3)"] = context_png.read_bytes()
    funnel_png = ctx.stage_path("data") / "funnel.png"  # written by the data stage
    if funnel_png.is_file():
        plots["data curation funnel (documents remaining after each step)"] = funnel_png.read_bytes()
    tables = {}
    results = ctx.stage_path("evaluate") / "results.json"  # written by the evaluate stage
    if results.is_file() and read_json(results).get("paper", {}).get("rows"):
        paper = read_json(results)["paper"]
        tables[f"benchmarks: ours next to the paper's {paper['table']} ({paper['model']})"] = (
            ["benchmark", "ours (%)", "paper (%)", "source"], paper["rows"]
        )
    page = render(cfg.report.title + f" — {cfg.run.name}", rows, plots, tables)
    write_text(ctx.stage_dir / "index.html", page)
    metrics = {"train_points": len(train), "val_points": len(val)}
    return StageResult("completed", metrics=metrics, outputs={"html": str(ctx.stage_dir / "index.html")})


def _latest_per_step(records: list[dict], key: str) -> list[tuple[int, float]]:
    """A requeued run re-logs the steps after its checkpoint: keep the last value written for each step."""
    by_step: dict[int, float] = {}
    for r in records:
        if key in r and "step" in r and r[key] is not None:
            by_step[int(r["step"])] = float(r[key])
    return sorted(by_step.items())
