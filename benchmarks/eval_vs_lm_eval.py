"""MMLU 5-shot wall time: our evaluator vs lm-evaluation-harness on the same weights and the same prompts.

The same fixed 500-question subset (`evaluate.limit=500`: round-robin over the 57 subjects) is scored
twice: by `qwen_hpc.evaluation` (one left-padded forward per batch of questions, the four choice log-probs
at the last position) and by lm-eval's `hf` model through a local task over our rendered prompts. Both
times include loading the model and tokenizing. Prints both wall times, the speed-up and how many
predictions are identical (the goal: >= 2x at identical predictions).

The model is an HF Qwen2 folder (`--hf`, e.g. runs/tiny/export_hf/hf after `snakemake --cores 2`) or, by
default, a random Qwen2 of `--layers`/`--hidden` with Qwen's vocabulary (../shared/tokenizers/qwen.tiktoken)
and a 2048-token context, so the prompts have their real length.

    python benchmarks/eval_vs_lm_eval.py [--hf DIR] [--questions 500] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("QWEN_HPC_SHARED_ROOT", REPO.parent / "shared"))
DATA_ROOT = Path(os.environ.get("QWEN_HPC_DATA_ROOT", SHARED / "datasets"))


def random_hf_model(out: Path, layers: int, hidden: int) -> Path:
    """A random Qwen2 folder with Qwen's vocabulary (tokenizer.json from qwen.tiktoken)."""
    import torch

    from qwen_hpc.interop.hf_checkpoint import single_process_megatron, weights, write_hf_folder
    from qwen_hpc.model.builder import build_model
    from qwen_hpc.model.config import ModelConfig
    from qwen_hpc.tokenizer.encoding import QwenTokenizer

    tokenizer = QwenTokenizer.from_files(SHARED / "tokenizers" / "qwen.tiktoken")
    cfg = ModelConfig(name="bench", num_layers=layers, hidden_size=hidden, num_attention_heads=hidden // 64,
                      ffn_hidden_size=(hidden * 8 // 3 + 127) // 128 * 128, seq_length=2048,
                      init_method_std=0.2, padded_vocab_size=151936)
    torch.manual_seed(0)
    with single_process_megatron():
        model = build_model(cfg, 151936, backend="local")
        write_hf_folder(out, cfg, weights(model), tokenizer)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hf", type=Path, help="an HF Qwen2 folder (default: a random model, see --layers)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lm-eval-batch-size", type=int, default=2,
                        help="lm-eval's batch (it keeps [batch, length, vocab] fp32 logits: 2 x 2048 x 151,936 = 2.5 GB)")
    args = parser.parse_args()

    import torch

    from qwen_hpc.evaluation import harness
    from qwen_hpc.evaluation.multiple_choice import Mmlu
    from qwen_hpc.inference.loading import open_model, open_model_config
    from qwen_hpc.interop.hf_checkpoint import single_process_megatron

    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="eval_vs_lm_eval."))
    hf = args.hf or random_hf_model(work / "hf", args.layers, args.hidden)
    length = open_model_config(hf).seq_length
    print(f"model {hf} (training length {length}), {args.questions} MMLU questions, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads")

    start = time.perf_counter()
    with single_process_megatron():
        model, tokenizer = open_model(hf)
        task = Mmlu(limit=args.questions, max_length=length)
        samples = task.samples(DATA_ROOT, tokenizer)
        ours, score_s = harness.our_predictions(model, tokenizer, samples, task.choices,
                                                batch_size=args.batch_size, max_length=length)
    ours_s = time.perf_counter() - start
    tokens = sum(len(s.prompt_ids) for s in samples)
    print(f"ours:    {ours_s:8.1f} s  (scoring {score_s:.1f} s; {tokens / len(samples):.0f} prompt tokens/question)")

    letters = [c.strip() for c in task.choices]
    harness.write_task(work / "task", samples, task.choices, "qwen_hpc_mmlu_bench")
    theirs, theirs_s = harness.lm_eval_predictions(hf, work / "task", "qwen_hpc_mmlu_bench", letters,
                                                   batch_size=args.lm_eval_batch_size, max_length=length - 1)
    print(f"lm-eval: {theirs_s:8.1f} s  (batch {args.lm_eval_batch_size})")
    result = harness.agreement(ours, theirs, [s.gold for s in samples])
    print(f"speed-up {theirs_s / ours_s:.2f}x (goal >= 2x); identical predictions {100 * result['identical']:.1f} %; "
          f"accuracy ours {100 * result['accuracy_ours']:.1f} % vs lm-eval {100 * result['accuracy_lm_eval']:.1f} %")


if __name__ == "__main__":
    main()
