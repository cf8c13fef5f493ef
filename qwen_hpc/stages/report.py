"""Stage `report`: an HTML page with the loss curve and a table of every stage's headline metrics."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "report"
DESCRIPTION = "HTML report: loss curve, long-context and data plots + table of every stage's metrics"
CONFIG_KEYS = ("report",)
UPSTREAM = ("data", "tokenizer", "tokens", "pretrain", "evaluate", "long_context", "sft")
# stages the report includes when they ran (workflow/Snakefile orders the report after those it plans)
OPTIONAL_UPSTREAM = (
    "code_pretrain", "code_sft", "math_sft", "math_evaluate", "reward_model", "ppo", "agent_eval"
)
DISTRIBUTED = False
# training stages whose metrics.jsonl gets a curves panel (loss/LR/throughput; RM accuracy, PPO reward/KL)
TRAINING = ("pretrain", "sft", "code_pretrain", "code_sft", "math_sft", "reward_model", "ppo")


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs
    from qwen_hpc.report.html import render
    from qwen_hpc.report.plots import loss_curve_png
    from qwen_hpc.utils.io import write_bytes, write_text

    rows = []
    present = [s for s in OPTIONAL_UPSTREAM if (ctx.stage_path(s) / outputs.MARKER).is_file()]
    for stage in (*UPSTREAM, *present):
        marker = outputs.read_marker(ctx.stage_path(stage))
        rows.append({"stage": stage, "status": "completed", "wall_s": marker.wall_s, "metrics": marker.metrics})
    records = outputs.read_metrics(ctx.stage_path("pretrain"))
    train = _latest_per_step(records, "loss")
    val = _latest_per_step(records, "val_loss")
    png = loss_curve_png(
        train, val, smoothing=cfg.report.smoothing, title=f"{cfg.run.name}: pretraining loss"
    )
    write_bytes(ctx.stage_dir / "loss.png", png)
    plots = {"pretraining loss": png, **_plots(cfg, ctx, present)}
    page = render(cfg.report.title + f" — {cfg.run.name}", rows, plots, _tables(ctx, present))
    write_text(ctx.stage_dir / "index.html", page)
    ctx.tracker.log_html("report", page)  # the same page in the report's W&B run (group = experiment)
    metrics = {"train_points": len(train), "val_points": len(val)}
    return StageResult("completed", metrics=metrics, outputs={"html": str(ctx.stage_dir / "index.html")})


def _plots(cfg: QwenConfig, ctx: StageContext, present: list[str]) -> dict[str, bytes]:
    """Title -> PNG of every panel after the pretraining loss: SFT loss, each training stage's curves, and
    the plots the tokenizer, long_context and data stages wrote."""
    from qwen_hpc import outputs
    from qwen_hpc.report.plots import loss_curve_png, training_curves_png

    plots = {}
    sft_records = outputs.read_metrics(ctx.stage_path("sft"))
    sft_train, sft_val = _latest_per_step(sft_records, "loss"), _latest_per_step(sft_records, "val_loss")
    if sft_train:
        plots["SFT loss (mean over supervised tokens, Qwen §3.1)"] = loss_curve_png(
            sft_train, sft_val, smoothing=cfg.report.smoothing, title=f"{cfg.run.name}: SFT loss"
        )
    for stage in (s for s in TRAINING if s in UPSTREAM or s in present):
        curves = training_curves_png(
            outputs.read_metrics(ctx.stage_path(stage)), smoothing=cfg.report.smoothing, title=stage
        )
        if curves:
            plots[f"{stage}: training curves"] = curves
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
    return plots


def _tables(ctx: StageContext, present: list[str]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Title -> (columns, rows): the benchmark results next to the paper's, and the agents' table."""
    from qwen_hpc.utils.io import read_json

    tables = {}
    results = ctx.stage_path("evaluate") / "results.json"  # written by the evaluate stage
    if results.is_file() and read_json(results).get("paper", {}).get("rows"):
        paper = read_json(results)["paper"]
        tables[f"benchmarks: ours next to the paper's {paper['table']} ({paper['model']})"] = (
            ["benchmark", "ours (%)", "paper (%)", "source"], paper["rows"]
        )
    math = ctx.stage_path("math_evaluate") / "results.json"  # Math-Qwen-Chat next to Table 12
    if "math_evaluate" in present and math.is_file() and read_json(math).get("paper", {}).get("rows"):
        paper = read_json(math)["paper"]
        tables[f"math_evaluate: Math-Qwen-Chat next to the paper's {paper['table']} ({paper['model']})"] = (
            ["benchmark", "ours (%)", "paper (%)", "source"], paper["rows"]
        )
    agents = ctx.stage_path("agent_eval") / "table.md"  # written by the agent_eval stage
    if "agent_eval" in present and agents.is_file():
        table = markdown_table(agents.read_text())
        if table:
            tables["agents: tool use, code interpreter, HF Agent (Qwen §3.4, Tables 6-9)"] = table
    return tables


def markdown_table(text: str) -> tuple[list[str], list[list[str]]] | None:
    """The first pipe table of a Markdown text as (columns, rows); None without one."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    cells = [row for row in cells if not all(set(c) <= set("-: ") for c in row)]  # the |---| rule
    return (cells[0], cells[1:]) if len(cells) >= 2 else None


def _latest_per_step(records: list[dict], key: str) -> list[tuple[int, float]]:
    """A requeued run re-logs the steps after its checkpoint: keep the last value written for each step."""
    by_step: dict[int, float] = {}
    for r in records:
        if key in r and "step" in r and r[key] is not None:
            by_step[int(r["step"])] = float(r[key])
    return sorted(by_step.items())
