"""Claim: one GPU trains the ~1.8B Qwen (config/model/qwen_1_8b.yaml) in BF16 at >= 50 % MFU (H100 target;
Megatron-Core publishes 41 % for 1.7B).

The real training step of `pretrain` (Megatron-Core GPTModel with the Transformer Engine spec when it imports,
BF16 with FP32 master weights, Megatron's optimizer — Apex/TE FusedAdam when importable — gradient
accumulation through `get_forward_backward_func`) on random tokens at sequence 2048. The first `--warmup`
steps are not timed. MFU = 6·N·tokens/s + attention FLOPs (ModelConfig.flops_per_token) / peak FLOP/s.

    python benchmarks/gpu_mfu.py [--steps 30] [--micro-batch 4] [--accum 4] [--peak-tflops 989]
    python benchmarks/gpu_mfu.py --model qwen_1_8b --steps 12 --warmup 4   # short, any GPU with ~40 GB
    python benchmarks/gpu_mfu.py --smoke    # 3 steps of `tiny` in BF16, CPU allowed: the script still runs

Needs one CUDA GPU (~40 GB at the defaults; `--micro-batch 1 --accum 16` for smaller ones); prints one JSON
object. The peak FLOP/s comes from the GPU's name (H100/H200/A100/L40S/A10...) unless `--peak-tflops` is given;
an unknown GPU reports tokens/s and model TFLOP/s with `mfu` null. `--smoke` is what CI runs on the CPU
(tests/training/test_bf16.py) so that the GPU command cannot rot unseen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
# Dense BF16 TFLOP/s by GPU name (vendor data sheets, no sparsity), longest match first.
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "GH200": 989.0, "A100": 312.0,
               "L40S": 362.0, "L40": 181.0, "A10G": 70.0, "A10": 125.0, "L4": 121.0, "V100": 125.0}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen_1_8b", help="a config/model/*.yaml name")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--accum", type=int, default=4, help="micro-batches per step (gradient accumulation)")
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="dense BF16 TFLOP/s (default: from the GPU's name)"
    )
    p.add_argument("--vocab", type=int, default=None, help="tokenizer size (default: the paper's, 151,851)")
    p.add_argument("--smoke", action="store_true", help="3 steps of the tiny model; runs on the CPU too")
    args = p.parse_args()
    if args.smoke:
        args.model, args.steps, args.warmup, args.micro_batch, args.accum = "tiny", 3, 1, 2, 2
        args.vocab = args.vocab or 512
    return args


def peak_tflops(name: str, given: float | None) -> float | None:
    if given is not None:
        return given
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_TFLOPS[key]
    return None


def main() -> None:
    args = parse()
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        sys.exit("gpu_mfu.py needs a CUDA GPU (--smoke runs a few tiny steps on the CPU)")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from qwen_hpc.compat.megatron_cpu import cpu_shims
    from qwen_hpc.model.config import ModelConfig

    model_cfg = ModelConfig(
        **OmegaConf.to_container(OmegaConf.load(REPO / "config" / "model" / f"{args.model}.yaml"))
    )

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    with contextlib.nullcontext() if cuda else cpu_shims():
        run(args, model_cfg, cuda, sync)


def run(args: argparse.Namespace, model_cfg, cuda: bool, sync) -> None:
    """Build the pretrain step exactly as `pretrain` does, time it, print one JSON object."""
    from megatron.core import parallel_state as ps
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from qwen_hpc.launch.distributed import ensure_process_group
    from qwen_hpc.model.builder import padded_vocab_size
    from qwen_hpc.parallel import memory_metrics
    from qwen_hpc.training.config import OptimizerConfig, TrainConfig
    from qwen_hpc.training.loop import _build_optimizer, build_training_model
    from qwen_hpc.training.step import StepContext, causal_mask, train_step

    seq, mb = model_cfg.seq_length, args.micro_batch
    gb = mb * args.accum
    train = TrainConfig(train_iters=10**6, micro_batch_size=mb, global_batch_size=gb, precision="bf16")
    ensure_process_group("nccl" if cuda else "gloo")
    ps.initialize_model_parallel()
    n_vocab = args.vocab or model_cfg.reference_vocab_size
    model, ddp, config, bf16 = build_training_model(model_cfg, train, n_vocab)
    optimizer, scheduler = _build_optimizer(ddp, train, OptimizerConfig(warmup_iters=10), bf16)
    config.grad_scale_func = optimizer.scale_loss
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    ctx = StepContext(
        ddp_model=ddp,
        optimizer=optimizer,
        scheduler=scheduler,
        forward_backward=get_forward_backward_func(),
        num_microbatches=args.accum,
        micro_batch_size=mb,
        seq_length=seq,
        mask=causal_mask(seq, device),
        device=device,
    )
    g = torch.Generator().manual_seed(0)
    position_ids = torch.arange(seq).expand(mb, -1)
    loss_mask = torch.ones(mb, seq)

    def micro_batches():
        for _ in range(args.accum):
            t = torch.randint(1, n_vocab, (mb, seq + 1), generator=g)
            yield {
                "tokens": t[:, :-1],
                "labels": t[:, 1:],
                "loss_mask": loss_mask,
                "position_ids": position_ids,
            }

    times, losses = [], []
    for i in range(args.steps):
        sync()
        t0 = time.perf_counter()
        outcome = train_step(ctx, micro_batches())
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
        losses.append(outcome.loss)
    step_s = statistics.median(times)
    tokens_per_s = gb * seq / step_s
    flops = model_cfg.flops_per_token(padded_vocab_size(n_vocab, model_cfg)) * tokens_per_s
    gpu = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_tflops(gpu, args.peak_tflops) if cuda else None
    print(
        json.dumps(
            {
                "gpu": gpu,
                "precision": "bf16 + fp32 master weights" if bf16 else "fp32",
                "model": args.model,
                "parameters": sum(p.numel() for p in model.parameters()),
                "seq_length": seq,
                "micro_batch": mb,
                "global_batch": gb,
                "median_step_s": step_s,
                "tokens_per_s": tokens_per_s,
                "model_tflops_per_s": flops / 1e12,
                "peak_tflops": peak,
                "mfu": flops / (peak * 1e12) if peak else None,
                "first_loss": losses[0],
                "last_loss": losses[-1],
                **memory_metrics(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
