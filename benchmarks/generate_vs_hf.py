"""Benchmark: batched generation tokens/s — our KV-cache generator (`qwen_hpc.inference.generate`) on our
Megatron-Core model against `transformers` `generate` on the same weights (claim: ratio ours/HF >= 1.0).

Same weights (a random-init HF Qwen2ForCausalLM converted with `hf_to_megatron`), same batch, same prompt
lengths, same number of new tokens (greedy, no stop tokens, every row generates exactly `--new-tokens`),
fp32 on the CPU, one warm-up call each and then one timed run each (`--repeats N` alternates N timed runs, swapping
which goes first every repeat, and reports medians and every run's seconds; the 1-minute load average is printed because other processes skew CPU timings). Also checks the two produced the same
tokens.

    python benchmarks/generate_vs_hf.py                                  # 2 threads, tiny-ish model
    python benchmarks/generate_vs_hf.py --hidden 512 --layers 8 --batch 8 --new-tokens 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--repeats", type=int, default=1, help="alternate ours/HF this many times, report medians"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import Qwen2ForCausalLM

    from qwen_hpc.inference.generate import Generator, SamplingConfig
    from qwen_hpc.interop.hf_checkpoint import model_from_state, single_process_megatron
    from qwen_hpc.model.config import ModelConfig
    from qwen_hpc.model.hf_convert import hf_to_megatron, model_config_from_hf, qwen2_config

    torch.manual_seed(0)
    ffn = -(-8 * args.hidden // 3 // 128) * 128
    shape = ModelConfig(
        num_layers=args.layers,
        hidden_size=args.hidden,
        num_attention_heads=args.heads,
        ffn_hidden_size=ffn,
        seq_length=args.prompt_len + args.new_tokens,
    )
    config = qwen2_config(shape, args.vocab, initializer_range=0.1)
    hf = Qwen2ForCausalLM(config).eval()
    prompts = torch.randint(0, args.vocab, (args.batch, args.prompt_len)).tolist()

    class _Ids:  # the generator needs only eod_id/decode from a tokenizer when given ids
        eod_id = 0
        n_vocab = args.vocab

        @staticmethod
        def decode(ids: list[int]) -> str:
            return " ".join(map(str, ids))

    sampling = SamplingConfig(max_new_tokens=args.new_tokens)
    inputs = torch.tensor(prompts)

    def run_hf() -> list[list[int]]:
        with torch.no_grad():
            out = hf.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                do_sample=False,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                pad_token_id=0,
                eos_token_id=None,
            )
        return out[:, args.prompt_len :].tolist()

    cfg = model_config_from_hf(config.to_dict())
    with single_process_megatron():
        ours = Generator(model_from_state(cfg, hf_to_megatron(hf.state_dict(), cfg)), _Ids())
        ours.generate_ids([p[:4] for p in prompts], SamplingConfig(max_new_tokens=2))  # warm-up
        run_hf_small = hf.generate(input_ids=inputs[:, :4], max_new_tokens=2, do_sample=False, pad_token_id=0)
        del run_hf_small
        ours_times, hf_times = [], []
        for repeat in range(args.repeats):  # alternate, first one swapped each repeat: load slows both alike
            for side in ("ours", "hf") if repeat % 2 == 0 else ("hf", "ours"):
                t0 = time.perf_counter()
                if side == "ours":
                    ours_out = ours.generate_ids(prompts, sampling)
                    ours_times.append(time.perf_counter() - t0)
                else:
                    hf_out = run_hf()
                    hf_times.append(time.perf_counter() - t0)
    ours_s, hf_s = statistics.median(ours_times), statistics.median(hf_times)

    tokens = args.batch * args.new_tokens
    same = sum(a.token_ids == b for a, b in zip(ours_out, hf_out, strict=True))
    result = {
        "model": {
            "hidden": args.hidden,
            "layers": args.layers,
            "heads": args.heads,
            "ffn": ffn,
            "vocab": args.vocab,
        },
        "batch": args.batch,
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
        "threads": args.threads,
        "repeats": args.repeats,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "ours_tokens_per_s": round(tokens / ours_s, 1),
        "hf_tokens_per_s": round(tokens / hf_s, 1),
        "ratio_ours_over_hf": round(hf_s / ours_s, 3),
        "ours_times_s": [round(t, 3) for t in ours_times],
        "hf_times_s": [round(t, 3) for t in hf_times],
        "rows_with_identical_tokens": f"{same}/{args.batch}",
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    print(
        f"ours: {result['ours_tokens_per_s']} tokens/s   transformers: {result['hf_tokens_per_s']} tokens/s"
    )
    print(
        f"ratio ours/transformers = {result['ratio_ours_over_hf']}x   identical rows {result['rows_with_identical_tokens']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
