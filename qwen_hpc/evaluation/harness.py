"""Side-by-side with lm-evaluation-harness: the same multiple-choice prompts as a local lm-eval task, scored
by its `hf` model on the same exported weights, so predictions and wall time can be compared.

The local task reads our rendered prompts from a JSONL file (`prompt`, `choices`, `gold`), with no few-shot
of its own and an empty target delimiter, so lm-eval scores exactly `prompt + " A"` … like we do. lm-eval
keeps the last `max_length` tokens of context + continuation; pass the model's length − 1 to match Qwen's
left cut. Used by `benchmarks/eval_vs_lm_eval.py` and the agreement test; lm-eval is the `bench`/`test`
extra, imported only here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwen_hpc.evaluation.suite import Sample

TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: prompt
doc_to_choice: choices
doc_to_target: gold
target_delimiter: ""
num_fewshot: 0
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def write_task(directory: Path, samples: Sequence[Sample], choices: Sequence[str], name: str) -> Path:
    """A local lm-eval task (`<name>.yaml` + `<name>.jsonl`) over our rendered prompts."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    letters = [c.strip() for c in choices]
    data = directory / f"{name}.jsonl"
    with open(data, "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps({"id": s.id, "prompt": s.prompt, "choices": list(choices),
                                 "gold": letters.index(s.gold)}, ensure_ascii=False) + "\n")
    (directory / f"{name}.yaml").write_text(TASK_YAML.format(name=name, data=data.resolve()), encoding="utf-8")
    return directory


def lm_eval_predictions(
    hf_path: Path, task_dir: Path, name: str, letters: Sequence[str], *, batch_size: int, max_length: int,
    device: str = "cpu",
) -> tuple[list[str], float]:
    """(lm-eval's predicted letters in sample order, wall seconds of `simple_evaluate`)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_CACHE", str(Path(task_dir) / "hf_cache"))
    import lm_eval
    from lm_eval.tasks import TaskManager

    start = time.perf_counter()
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={hf_path},dtype=float32,max_length={max_length}",
        tasks=[name],
        task_manager=TaskManager(include_path=str(task_dir)),
        batch_size=batch_size,
        device=device,
        log_samples=True,
    )
    wall = time.perf_counter() - start
    rows = sorted(out["samples"][name], key=lambda r: r["doc_id"])
    preds = []
    for r in rows:
        scores = [float(x[0]) for x in r["filtered_resps"]]
        preds.append(letters[max(range(len(scores)), key=scores.__getitem__)])
    return preds, wall


def our_predictions(
    model: Any, tokenizer: Any, samples: Sequence[Sample], choices: Sequence[str], *, batch_size: int,
    max_length: int, share_prefix: bool = True,
) -> tuple[list[str], float]:
    """(our predicted letters in sample order, wall seconds), batched as the evaluate stage does."""
    from qwen_hpc.evaluation.runner import batch_plan
    from qwen_hpc.evaluation.scoring import batch_prefix_len, choice_logprobs, choice_tokens

    letters = [c.strip() for c in choices]
    start = time.perf_counter()
    tokens = choice_tokens(tokenizer, choices)
    preds: list[str] = [""] * len(samples)
    for members in batch_plan(samples, batch_size):
        batch = [samples[i] for i in members]
        lp = choice_logprobs(model, [s.prompt_ids for s in batch], tokens, tokenizer.eod_id,
                             max_length=max_length, prefix_len=batch_prefix_len(batch) if share_prefix else 0)
        for i, best in zip(members, lp.argmax(dim=-1).tolist(), strict=True):
            preds[i] = letters[best]
    return preds, time.perf_counter() - start


def agreement(ours: Sequence[str], theirs: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    return {
        "questions": len(ours),
        "identical": same / len(ours),
        "accuracy_ours": sum(a == g for a, g in zip(ours, gold, strict=True)) / len(ours),
        "accuracy_lm_eval": sum(b == g for b, g in zip(theirs, gold, strict=True)) / len(ours),
    }
