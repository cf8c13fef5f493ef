"""Claim: our Megatron-Core training step is at least as fast as `transformers`' Qwen2ForCausalLM on the CPU.

Same dimensions (the 7.36M-parameter Qwen layout of docs/megatron-core-on-cpu.md: 4 layers, hidden 256,
4 heads, SwiGLU 688, untied 8192-row vocabulary, sequence 256), same batch (8 sequences), same threads,
fp32, AdamW + clipping at 1.0 on both sides, in one process. Steps alternate between the two in rounds so
that drifts of the machine's speed hit both equally; the median step time of each gives tokens/s.

    python benchmarks/train_cpu_vs_hf.py [--threads 2] [--rounds 6] [--steps-per-round 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps-per-round", type=int, default=3)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=688)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    return p.parse_args()


def batches(args: argparse.Namespace, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    while True:
        tokens = torch.randint(1, args.vocab, (args.batch, args.seq + 1), generator=g)
        yield tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def bench_model(args: argparse.Namespace) -> Any:
    """The one model shape both sides build (ours from it, HF through `qwen2_config`)."""
    from qwen_hpc.model.config import ModelConfig

    return ModelConfig(
        name="bench",
        num_layers=args.layers,
        hidden_size=args.hidden,
        num_attention_heads=args.heads,
        ffn_hidden_size=args.ffn,
        seq_length=args.seq,
    )


class Ours:
    """The training step `pretrain` runs: GPTModel + Megatron DDP + Megatron optimizer + schedule."""

    def __init__(self, args: argparse.Namespace) -> None:
        from megatron.core import parallel_state as ps
        from megatron.core.pipeline_parallel import get_forward_backward_func

        from qwen_hpc.compat.megatron_cpu import cpu_shims
        from qwen_hpc.launch.distributed import ensure_process_group
        from qwen_hpc.training.config import OptimizerConfig, TrainConfig
        from qwen_hpc.training.loop import _build_optimizer, build_training_model
        from qwen_hpc.training.step import StepContext, causal_mask

        self.shims = cpu_shims
        ensure_process_group("gloo")
        self.model_cfg = bench_model(args)
        train = TrainConfig(
            train_iters=10**6, micro_batch_size=args.batch, global_batch_size=args.batch, precision="fp32"
        )
        optim = OptimizerConfig(warmup_iters=10)
        with cpu_shims():
            ps.initialize_model_parallel()
            self.model, ddp, config, _ = build_training_model(self.model_cfg, train, args.vocab)
            optimizer, scheduler = _build_optimizer(ddp, train, optim, False)
            config.grad_scale_func = optimizer.scale_loss
        self.ctx = StepContext(
            ddp_model=ddp,
            optimizer=optimizer,
            scheduler=scheduler,
            forward_backward=get_forward_backward_func(),
            num_microbatches=1,
            micro_batch_size=args.batch,
            seq_length=args.seq,
            mask=causal_mask(args.seq),
            device=torch.device("cpu"),
        )
        self.position_ids = torch.arange(args.seq).expand(args.batch, -1)
        self.loss_mask = torch.ones(args.batch, args.seq)
        self.data = batches(args)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def step(self) -> float:
        from qwen_hpc.training.step import train_step

        tokens, labels = next(self.data)
        batch = {
            "tokens": tokens,
            "labels": labels,
            "loss_mask": self.loss_mask,
            "position_ids": self.position_ids,
        }
        with self.shims():
            return train_step(self.ctx, iter([batch])).loss


class HF:
    """transformers' Qwen2ForCausalLM (sdpa attention), torch AdamW, the same hyper-parameters."""

    def __init__(self, args: argparse.Namespace) -> None:
        from transformers import Qwen2ForCausalLM

        from qwen_hpc.model.hf_convert import qwen2_config

        config = qwen2_config(bench_model(args), args.vocab)
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        self.model = Qwen2ForCausalLM(config).train()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1
        )
        self.data = batches(args)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def step(self) -> float:
        tokens, labels = next(self.data)
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(input_ids=tokens).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.detach())


def timed(step) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    ours, hf = Ours(args), HF(args)
    for side in (ours, hf):  # warm-up: allocator, first-call overheads
        side.step()
        side.step()
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    for r in range(args.rounds):
        order = (("ours", ours), ("hf", hf)) if r % 2 == 0 else (("hf", hf), ("ours", ours))
        for name, side in order:
            times[name] += [timed(side.step) for _ in range(args.steps_per_round)]
    tokens = args.batch * args.seq
    result = {
        "threads": args.threads,
        "params_ours": ours.num_parameters(),
        "params_hf": hf.num_parameters(),
        "tokens_per_step": tokens,
        "steps_each": len(times["ours"]),
        "median_step_s_ours": statistics.median(times["ours"]),
        "median_step_s_hf": statistics.median(times["hf"]),
    }
    result["tokens_per_s_ours"] = tokens / result["median_step_s_ours"]
    result["tokens_per_s_hf"] = tokens / result["median_step_s_hf"]
    result["ratio_ours_over_hf"] = result["tokens_per_s_ours"] / result["tokens_per_s_hf"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
