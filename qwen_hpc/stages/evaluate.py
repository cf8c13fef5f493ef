"""Stage `evaluate`: validation perplexity and the benchmark suite of Qwen §2.6 / §3.3 (Tables 2 and 5).

`evaluate.tasks` picks from perplexity (the held-out split of the pretraining blend) and the benchmarks
MMLU, C-Eval, CMMLU, GSM8K, MATH, HumanEval, MBPP, BBH (`qwen_hpc.evaluation`); `evaluate.limit` caps the
samples per benchmark. The model is the pretrain stage's latest checkpoint or `evaluate.checkpoint` (a
checkpoint folder the project wrote, an `import_hf` folder, an HF Qwen2 folder). Outputs in
`runs/<exp>/evaluate/`: `<task>.json` (score, averages, per-sample records), `results.json` (every score),
`paper.md` (ours next to the paper's numbers for the same size), `perplexity.json`; a W&B table per task
and the scores as metrics. Each finished sample batch is appended to `<task>.batches.jsonl`, so a
preempted evaluation resumes at the next unfinished batch.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult, data_root, marker_lineages

NAME = "evaluate"
DESCRIPTION = "validation perplexity + the benchmark suite (MMLU, C-Eval, CMMLU, GSM8K, MATH, HumanEval, MBPP, BBH)"
CONFIG_KEYS = ("evaluate",)
UPSTREAM = ("tokenizer", "tokens", "pretrain")  # vocabulary, blend (perplexity), checkpoint
DISTRIBUTED = True

log = logging.getLogger(__name__)


def benchmark_tasks(cfg: QwenConfig, max_length: int | None = None) -> tuple[list[Any], dict[str, str]]:
    """(task objects whose data exist, {skipped benchmark: reason}); with `missing_data=fail` a missing
    benchmark raises `MissingBenchmarkData` naming its files."""
    from qwen_hpc.evaluation.suite import check_data, missing_files
    from qwen_hpc.evaluation.tasks import TaskSettings, build_task

    ev = cfg.evaluate
    settings = TaskSettings(
        limit=ev.limit,
        max_length=max_length or cfg.model.seq_length,
        chat=ev.chat,
        math_split=ev.math_split,
        samples_per_task=ev.samples_per_task,
        pass_k=tuple(ev.pass_k),
        sandbox=ev.sandbox,
    )
    tasks = [build_task(name, settings) for name in ev.tasks if name != "perplexity"]
    root = data_root(cfg)
    if ev.missing_data == "fail":
        check_data(tasks, root)
        for task in tasks:
            why = getattr(task, "unavailable", lambda: None)()
            if why:
                raise ValueError(f"{task.name} cannot run here: {why}")
        return tasks, {}
    kept, skipped = [], {}
    for task in tasks:
        missing = missing_files(task, root)
        why = getattr(task, "unavailable", lambda: None)() if not missing else None
        if missing:
            skipped[task.name] = f"data missing under {root}: {', '.join(str(p) for p in missing)}"
        elif why:
            skipped[task.name] = why
        else:
            kept.append(task)
    return kept, skipped


def input_lineages(cfg: QwenConfig) -> dict[str, str | None]:
    """This run's tokenizer, tokens and pretrain markers by default. An HF or import_hf folder given as
    `evaluate.checkpoint` stands for itself: it carries its own tokenizer, and perplexity (the only reader of
    the tokens stage) is skipped for it, so a fresh run folder can evaluate a downloaded model."""
    path = Path(cfg.evaluate.checkpoint) if cfg.evaluate.checkpoint else None
    if path is None or not _external(path):
        return marker_lineages(UPSTREAM, cfg)
    from qwen_hpc.interop.folder import model_fingerprint

    return {"checkpoint": model_fingerprint(path)}


def _external(path: Path) -> bool:
    """An HF folder or an import_hf folder (not a checkpoint root the project's training wrote)."""
    from qwen_hpc.interop.hf_checkpoint import MODEL_CONFIG

    return (path / "config.json").is_file() or (path / MODEL_CONFIG).is_file()


def benchmark_layout_problem(cfg: QwenConfig, section: str = "evaluate") -> str | None:
    """Why the benchmarks cannot run in this stage's TP/PP layout (None: they can): an HF folder is read
    unsharded (TP = PP = 1); checkpoints the project wrote and import_hf folders reshard to any layout."""
    from qwen_hpc.interop.folder import MODEL_CONFIG

    ev = cfg.evaluate
    tp, pp = ev.layout(cfg.pretrain.train)
    if not [t for t in ev.tasks if t != "perplexity"]:
        return None

    def key(name: str, value: int) -> str:  # the key a layout size came from
        if getattr(ev, name) is not None:
            return f"{section}.{name}={value}"
        return f"pretrain.train.{name}={value} (inherited: {section}.{name} is null)"

    path = Path(ev.checkpoint) if ev.checkpoint else None
    hf_folder = path is not None and (path / "config.json").is_file() and not (path / MODEL_CONFIG).is_file()
    if tp * pp > 1 and hf_folder:
        sizes = " and ".join(key(name, v) for name, v in (("tensor_model_parallel_size", tp),
                                                           ("pipeline_model_parallel_size", pp)) if v > 1)
        return (f"{section}.checkpoint={path} is a Hugging Face folder, read unsharded: with {sizes} "
                f"convert it first (`qwen-hpc import-hf hf_path={path} output=<dir>`, then "
                f"{section}.checkpoint=<dir>; its distributed checkpoint is resharded on load)")
    return None


def _open_model(cfg: QwenConfig, ctx: StageContext) -> tuple[Any, Any, Any, str]:
    """(model, tokenizer, ModelConfig, source). Call inside `model_parallel(tp, pp)` on every rank: a
    checkpoint the project wrote and an import_hf folder load this rank's TP shard of its pipeline stage;
    an HF folder is read whole (TP = PP = 1)."""
    from qwen_hpc import outputs
    from qwen_hpc.inference.loading import open_model, open_model_config
    from qwen_hpc.interop.hf_checkpoint import load_model, resolve_checkpoint

    path = Path(cfg.evaluate.checkpoint or outputs.checkpoints_dir(ctx.stage_path("pretrain")))
    if _external(path):
        model, tokenizer = open_model(path)
        return model, tokenizer, open_model_config(path), str(path)
    tokenizer = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name).load()
    resolved = resolve_checkpoint(path)
    return load_model(resolved, cfg.model), tokenizer, cfg.model, str(resolved)


def _perplexity(cfg: QwenConfig, ctx: StageContext) -> dict[str, float] | None:
    from qwen_hpc import outputs
    from qwen_hpc.evaluation.perplexity import validation_perplexity

    if cfg.evaluate.checkpoint and _external(Path(cfg.evaluate.checkpoint)):
        log.warning("perplexity needs a checkpoint of the pretraining layout: skipped for %s", cfg.evaluate.checkpoint)
        return None
    tp, pp = cfg.evaluate.layout(cfg.pretrain.train)
    train = dataclasses.replace(cfg.pretrain.train, tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    tokens = outputs.read_blend(ctx.stage_path("tokens"))
    return validation_perplexity(
        cfg.model,
        train,
        tokens.pairs,
        eod_id=tokens.eod_id,
        n_vocab=tokens.n_vocab,
        checkpoint_dir=Path(cfg.evaluate.checkpoint or outputs.checkpoints_dir(ctx.stage_path("pretrain"))),
        eval_iters=cfg.evaluate.eval_iters,
        micro_batch_size=cfg.evaluate.micro_batch_size,
        index_cache_dir=ctx.stage_dir / "index_cache",
    )


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:  # noqa: C901 - one pass over the selected tasks
    from qwen_hpc.utils.io import read_json, write_json, write_text

    ev = cfg.evaluate
    results: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    if "perplexity" in ev.tasks:
        scores = _perplexity(cfg, ctx)
        if scores is not None and ctx.rank == 0:
            write_json(ctx.stage_dir / "perplexity.json", scores)
            ctx.tracker.log({f"val/{k}": v for k, v in scores.items()})
            results["perplexity"] = scores
            metrics.update(scores)
    tasks, skipped = benchmark_tasks(cfg)
    for name, reason in skipped.items():
        log.warning("benchmark %s skipped: %s", name, reason)
    scored: dict[str, float] = {}
    size = None
    if tasks:
        outcome = _run_benchmarks(cfg, ctx, tasks)
        if outcome is None:
            return StageResult("preempted", metrics=metrics)
        scored, size, source = outcome
        results["checkpoint"] = source
    if ctx.rank != 0:
        return StageResult("completed", metrics=metrics)
    for task in tasks:
        task_metrics = read_json(ctx.stage_dir / f"{task.name}.json")["metrics"]
        results[task.name] = task_metrics
        if hasattr(task, "isolation_report"):
            results["sandbox"] = task.isolation_report()  # which isolation the code ran under
    results["skipped"] = skipped
    results["scores"] = scored
    if scored:
        from qwen_hpc.report.paper import comparison_markdown, comparison_rows, paper_scores

        rows = comparison_rows(scored, size, chat=ev.chat)
        write_text(ctx.stage_dir / "paper.md", comparison_markdown(rows, size))
        ctx.tracker.log_table("evaluate/paper", ["benchmark", "ours", "paper", "source"], rows)
        model = paper_scores()["sizes"][size]["label"] if size else "no paper model of this size"
        results["paper"] = {"size": size, "model": model, "table": "Table 5" if ev.chat else "Table 2",
                            "rows": rows}
    write_json(ctx.stage_dir / "results.json", results)
    metrics.update({f"score/{k}": round(v, 4) for k, v in scored.items()})
    ctx.tracker.log({f"eval/{k}": v for k, v in scored.items()})
    return StageResult(
        "completed",
        metrics={**metrics, "skipped": sorted(skipped)} if skipped else metrics,
        outputs={"results": str(ctx.stage_dir / "results.json")},
    )


def _run_benchmarks(cfg: QwenConfig, ctx: StageContext, tasks: list[Any]) -> tuple[dict, str | None, str] | None:
    """Score every task; None if preempted. Returns ({task: headline score}, paper size key, model source)."""
    import torch

    from qwen_hpc.evaluation.runner import run_task
    from qwen_hpc.parallel import any_rank, model_parallel, world_of_one
    from qwen_hpc.report.paper import paper_size

    ev = cfg.evaluate
    root = data_root(cfg)
    problem = benchmark_layout_problem(cfg)
    if problem:
        raise ValueError(problem)
    tp, pp = ev.layout(cfg.pretrain.train)
    sync = None
    if ctx.world_size > 1:
        import torch.distributed as dist

        def sync() -> None:
            dist.barrier()

    scores: dict[str, float] = {}
    with world_of_one(), model_parallel(tp, pp, seed=cfg.run.seed):
        from megatron.core import parallel_state as ps

        # the TP x PP ranks of one model run the same batches (each gets the full logits); the data-parallel
        # replicas split the batches; one rank per replica writes
        dp_rank, dp_size = ps.get_data_parallel_rank(), ps.get_data_parallel_world_size()
        writer = ps.get_tensor_model_parallel_rank() == 0 and ps.is_pipeline_first_stage(ignore_virtual=True)
        mp_group = ps.get_model_parallel_group()

        def should_stop() -> bool:  # one model's ranks stop together (they wait on each other's collectives)
            return any_rank(ctx.should_stop(), mp_group) if tp * pp > 1 else ctx.should_stop()

        model, tokenizer, model_cfg, source = _open_model(cfg, ctx)
        if torch.cuda.is_available():
            model = model.cuda()
        size = paper_size(model_cfg.name, model_cfg.num_layers, model_cfg.hidden_size)
        log.info("evaluating %s on %s (TP=%d, PP=%d, %d data-parallel replicas)", source,
                 ", ".join(t.name for t in tasks), tp, pp, dp_size)
        for task in tasks:
            if getattr(task, "max_length", None) is not None:
                task.max_length = model_cfg.seq_length
            samples = task.samples(root, tokenizer)
            query = _query(task, model, tokenizer, ev)
            run = run_task(
                task,
                samples,
                query,
                ctx.stage_dir,
                batch_size=ev.batch_size,
                should_stop=should_stop,
                on_batch=lambda done, total, name=task.name: log.info("%s: batch %d/%d", name, done, total),
                rank=dp_rank,
                world_size=dp_size,
                sync=sync,
                writer=writer,
            )
            if not run.complete:
                return None
            if ctx.rank == 0:
                scores[task.name] = run.metrics["accuracy"]
                log.info("%s: %.4f on %d samples", task.name, run.metrics["accuracy"], len(run.records))
                ctx.tracker.log_table(
                    f"evaluate/{task.name}",
                    ["id", "prompt", "output", "extracted", "gold", "correct"],
                    [[r["id"], r["prompt"][-2000:], str(r["output"]), str(r["extracted"]), str(r["gold"]),
                      r["correct"]] for r in run.records],
                )
                ctx.tracker.log({f"eval/{task.name}/{k}": v for k, v in run.metrics.items()})
    return scores, size, source


def _query(task: Any, model: Any, tokenizer: Any, ev: Any) -> Any:
    """samples → outputs: the predicted letter (multiple choice) or the generated text."""
    from qwen_hpc.evaluation.scoring import batch_prefix_len, choice_logprobs, choice_tokens, generate
    from qwen_hpc.inference.chat import chat_stop_ids
    from qwen_hpc.inference.generate import SamplingConfig

    pad = tokenizer.eod_id
    if task.kind == "choice":
        tokens = choice_tokens(tokenizer, task.choices)
        letters = [c.strip() for c in task.choices]

        def choose(batch: list[Any]) -> list[str]:
            logprobs = choice_logprobs(model, [s.prompt_ids for s in batch], tokens, pad, max_length=task.max_length,
                                       prefix_len=batch_prefix_len(batch))
            return [letters[i] for i in logprobs.argmax(dim=-1).tolist()]

        return choose
    stops = chat_stop_ids(tokenizer) if ev.chat else (tokenizer.eod_id,)
    n = getattr(task, "samples_per_problem", lambda _ev: 1)(ev)
    sampling = SamplingConfig(
        max_new_tokens=ev.max_new_tokens,
        temperature=ev.temperature if n > 1 else 0.0,
        stop_token_ids=stops,
        stop_strings=tuple(getattr(task, "stop_strings", ())),
    )

    def complete(batch: list[Any]) -> list[Any]:
        prompts = [s.prompt_ids for s in batch for _ in range(n)]
        texts = generate(model, tokenizer, prompts, sampling, pad_id=pad)
        return texts if n == 1 else [texts[i * n:(i + 1) * n] for i in range(len(batch))]

    return complete
