"""Benchmark: layer-wise window attention makes long-context inference cost follow the window (Qwen §2.5).

Claim: with windows, the key/value cache holds `window` slots per layer instead of the whole sequence, and
a long prefill attends in query blocks over only the keys each block can reach — so cache memory and
attention time stop growing with the length. Baseline, side by side in this process on the same random
model and tokens: the same decoder with full attention (dynamic NTK + LogN in both, so only the window
differs). Prints cache bytes, prefill seconds and per-token decode seconds, and the window/full ratios.

    python benchmarks/window_attention.py                       # 4 layers, h256, 8k tokens, windows 512
    python benchmarks/window_attention.py --length 16384 --window 1024
"""

from __future__ import annotations

import argparse
import time

import torch


def build(layers: int, hidden: int, heads: int, train_length: int):
    from qwen_hpc.model.builder import build_model
    from qwen_hpc.model.config import ModelConfig

    cfg = ModelConfig(
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        ffn_hidden_size=-(-(8 * hidden // 3) // 32) * 32,
        seq_length=train_length,
    )
    return build_model(cfg, 4096, backend="local").eval()


def measure(model, ids: torch.Tensor, long_context, train_length: int, decode_steps: int, chunk: int):
    from qwen_hpc.inference.decoder import KVCacheDecoder

    b, t = ids.shape
    total = t + decode_steps
    decoder = KVCacheDecoder(
        model, b, total, long_context=long_context, train_length=train_length, attention_chunk=chunk
    )
    cache_bytes = sum(k.numel() * k.element_size() * 2 for k in decoder.keys)
    valid = torch.ones(b, total, dtype=torch.bool)
    start = time.perf_counter()
    decoder.step(ids, torch.arange(t)[None].expand(b, t), valid[:, :t])
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for pos in range(t, total):
        decoder.step(ids[:, :1], torch.full((b, 1), pos), valid[:, : pos + 1])
    decode = (time.perf_counter() - start) / decode_steps
    return cache_bytes, prefill, decode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--train-length", type=int, default=512)
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--window", type=int, default=512, help="every layer's window (tokens)")
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=512, help="queries per attention block")
    args = parser.parse_args()

    from qwen_hpc.model.long_context import LongContextConfig
    from qwen_hpc.parallel import single_process_megatron

    full = LongContextConfig(use_dynamic_ntk=True, use_logn_attn=True)
    windowed = LongContextConfig(
        use_dynamic_ntk=True,
        use_logn_attn=True,
        use_window_attn=True,
        layer_windows=[args.window] * args.layers,
    )
    with single_process_megatron(seed=0), torch.inference_mode():
        model = build(args.layers, args.hidden, args.heads, args.train_length)
        ids = torch.randint(0, 4000, (1, args.length), generator=torch.Generator().manual_seed(0))
        measure(model, ids[:, :256], full, args.train_length, 2, args.chunk)  # warm-up
        results = {
            "full": measure(model, ids, full, args.train_length, args.decode_steps, args.chunk),
            "window": measure(model, ids, windowed, args.train_length, args.decode_steps, args.chunk),
        }
    print(
        f"model {args.layers} layers, h{args.hidden}, {args.heads} heads; {args.length} tokens "
        f"(L = {args.train_length}), window {args.window}, {torch.get_num_threads()} threads"
    )
    for name, (cache, prefill, decode) in results.items():
        print(
            f"  {name:6s}  cache {cache / 2**20:8.1f} MiB  prefill {prefill:7.2f} s  decode {decode * 1e3:7.2f} ms/token"
        )
    (fc, fp, fd), (wc, wp, wd) = results["full"], results["window"]
    print(f"window / full: cache {wc / fc:.3f}x  prefill {wp / fp:.3f}x  decode {wd / fd:.3f}x")


if __name__ == "__main__":
    main()
