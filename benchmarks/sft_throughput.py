"""Claims: (1) packing trains more supervised tokens per second than padding at the same loss; (2) our SFT step
is at least as fast as a plain `transformers` training loop (no Trainer) on the same model and data, on the CPU.

Data: real chat lengths — HH-RLHF chosen dialogues (helpful + harmless) and GSM8K train worked solutions from
`$QWEN_HPC_DATA_ROOT`, in ChatML, tokenized with Qwen's vocabulary (`$QWEN_HPC_SHARED_ROOT/tokenizers/
qwen.tiktoken`; the byte-level fallback without it), loss on assistant replies (`masking=paper`), sequences of
`--seq` tokens (longer conversations truncated at a turn boundary). Token ids are folded into the model's
`--vocab` rows: throughput depends on lengths, not on which ids they are.

Model: the Qwen layout of benchmarks/train_cpu_vs_hf.py (4 layers, hidden 256, SwiGLU 688, untied). Sides:
- `ours_packing`, `ours_padding`: our SFT step (Megatron-Core GPTModel + DDP + optimizer, per-token loss
  over the global batch; packing with block-diagonal masks) on `SFTDataset` samples;
- `hf_padding`: transformers' Qwen2ForCausalLM (sdpa), torch AdamW, clipping 1.0, finetune.py-style padded
  batches (labels -100 off the replies, attention mask on real tokens), the loss a mean over supervised tokens.
Each side trains `--batch` sequences a step; steps alternate between sides in rounds; the figure is
supervised tokens per second (supervised tokens of the steps / their time). Before timing, the summed loss of
the same conversations is computed by ours with packing and with padding from the same weights (must agree).

    python benchmarks/sft_throughput.py [--threads 2] [--rounds 4] [--steps-per-round 3] [--seq 512]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import torch


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps-per-round", type=int, default=3)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=688)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--conversations", type=int, default=1200, help="HH-RLHF + GSM8K conversations, half each")
    return p.parse_args()


def chat_set(args: argparse.Namespace) -> tuple[list, dict]:
    from qwen_hpc.alignment.formats import Conversation, read_conversations
    from qwen_hpc.alignment.sequences import TokenizedConversation, tokenize_conversations
    from qwen_hpc.tokenizer.encoding import QwenTokenizer

    shared = Path(os.environ.get("QWEN_HPC_SHARED_ROOT", Path(__file__).resolve().parents[2] / "shared"))
    data_root = Path(os.environ.get("QWEN_HPC_DATA_ROOT", shared / "datasets"))
    vocab = shared / "tokenizers" / "qwen.tiktoken"
    tok = QwenTokenizer.from_files(vocab) if vocab.is_file() else QwenTokenizer({bytes([b]): b for b in range(256)})
    half = args.conversations // 2
    convs = []
    for files in (
        [data_root / "hh_rlhf" / "helpful-base_test.jsonl.gz", data_root / "hh_rlhf" / "harmless-base_test.jsonl.gz"],
        [data_root / "gsm8k" / "train.jsonl"],
    ):
        found = (c for f in files for c in read_conversations(f) if isinstance(c, Conversation))
        convs += [c.messages for c in itertools.islice(found, half)]
    if not convs:
        raise SystemExit(f"no chat data under {data_root} (set QWEN_HPC_DATA_ROOT)")
    encoded, stats = tokenize_conversations(tok, convs, masking="paper", max_tokens=args.seq + 1)
    folded = [TokenizedConversation(c.ids % args.vocab, c.targets) for c in encoded]
    lengths = sorted(len(c) for c in folded)
    info = {
        "tokenizer": tok._name if hasattr(tok, "_name") else "bytes",
        **stats.as_dict(),
        "median_tokens": lengths[len(lengths) // 2],
        "p90_tokens": lengths[int(0.9 * len(lengths))],
    }
    return folded, info


class Ours:
    """Our SFT step: the training loop's model, optimizer and step, with the SFT objective."""

    def __init__(self, args: argparse.Namespace, convs: list, mode: str) -> None:
        from megatron.core import parallel_state as ps
        from megatron.core.pipeline_parallel import get_forward_backward_func

        from qwen_hpc.alignment.sequences import SFTDataset
        from qwen_hpc.compat.megatron_cpu import cpu_shims
        from qwen_hpc.model.config import ModelConfig
        from qwen_hpc.training.config import OptimizerConfig, TrainConfig
        from qwen_hpc.training.data import MicroBatchIterator
        from qwen_hpc.training.loop import Objective, _build_optimizer, build_training_model
        from qwen_hpc.training.step import StepContext, causal_mask

        self.shims = cpu_shims
        model_cfg = ModelConfig(
            name="bench", num_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.heads,
            ffn_hidden_size=args.ffn, seq_length=args.seq,
        )
        train = TrainConfig(train_iters=10**6, micro_batch_size=args.batch, global_batch_size=args.batch,
                            precision="fp32")
        objective = Objective(per_token_loss=True, attention_masks=mode == "packing")
        with cpu_shims():
            if not ps.model_parallel_is_initialized():
                ps.initialize_model_parallel()
            self.model, ddp, config, _ = build_training_model(model_cfg, train, args.vocab, objective=objective)
            optimizer, scheduler = _build_optimizer(ddp, train, OptimizerConfig(warmup_iters=10), False)
            config.grad_scale_func = optimizer.scale_loss
        self.ctx = StepContext(
            ddp_model=ddp, optimizer=optimizer, scheduler=scheduler, forward_backward=get_forward_backward_func(),
            num_microbatches=1, micro_batch_size=args.batch, seq_length=args.seq, mask=causal_mask(args.seq),
            device=torch.device("cpu"),
        )
        self.dataset = SFTDataset(convs, seq_length=args.seq, mode=mode, pad_id=0, seed=0, num_samples=10**6)
        self.data = MicroBatchIterator(self.dataset, micro_batch_size=args.batch)

    def step(self) -> float:
        """One optimizer step; returns its supervised tokens."""
        from qwen_hpc.training.step import train_step

        with self.shims():
            return train_step(self.ctx, self.data).tokens

    def summed_loss(self, convs: list, mode: str, seq: int) -> tuple[float, float]:
        from qwen_hpc.alignment.sequences import SFTDataset

        ds = SFTDataset(convs, seq_length=seq, mode=mode, pad_id=0, seed=0)
        total = tokens = 0.0
        causal = torch.ones(seq, seq, dtype=torch.bool).triu(1)[None, None]
        with self.shims(), torch.no_grad():
            self.model.eval()
            for start in range(0, len(ds), 8):
                items = [ds[i] for i in range(start, min(start + 8, len(ds)))]
                b = {k: torch.stack([x[k] for x in items]) for k in items[0]}
                out = self.model(b["tokens"], b["position_ids"], b.get("attention_mask", causal), labels=b["labels"])
                total += float((out.double() * b["loss_mask"].double()).sum())
                tokens += float(b["loss_mask"].sum())
            self.model.train()
        return total, tokens


class HF:
    """A plain transformers loop: Qwen2ForCausalLM, padded batches as finetune.py builds them, AdamW."""

    def __init__(self, args: argparse.Namespace, convs: list) -> None:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        config = Qwen2Config(
            vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.ffn,
            num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.heads,
            max_position_embeddings=args.seq + 1, rms_norm_eps=1e-6, rope_theta=10000.0,
            tie_word_embeddings=False, attention_dropout=0.0,
        )
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        self.model = Qwen2ForCausalLM(config).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8,
                                           weight_decay=0.1)
        self.convs, self.args, self.at = convs, args, 0

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = self.args.seq + 1
        ids = torch.zeros(self.args.batch, size, dtype=torch.long)
        labels = torch.full((self.args.batch, size), -100, dtype=torch.long)
        attn = torch.zeros(self.args.batch, size, dtype=torch.long)
        for row in range(self.args.batch):
            c = self.convs[self.at % len(self.convs)]
            self.at += 1
            n = len(c)
            ids[row, :n] = torch.from_numpy(c.ids)
            labels[row, :n] = torch.where(torch.from_numpy(c.targets), torch.from_numpy(c.ids), -100)
            attn[row, :n] = 1
        return ids, labels, attn

    def step(self) -> float:
        ids, labels, attn = self._batch()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model(input_ids=ids, attention_mask=attn, labels=labels).loss  # mean over labels != -100
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return float((labels[:, 1:] != -100).sum())


def main() -> None:
    from qwen_hpc.launch.distributed import ensure_process_group

    args = parse()
    torch.set_num_threads(args.threads)
    ensure_process_group("gloo")
    convs, info = chat_set(args)
    sides = {
        "ours_packing": Ours(args, convs, "packing"),
        "ours_padding": Ours(args, convs, "padding"),
        "hf_padding": HF(args, convs),
    }
    probe = convs[:48]
    loss_pack = sides["ours_packing"].summed_loss(probe, "packing", args.seq)
    loss_pad = sides["ours_packing"].summed_loss(probe, "padding", args.seq)
    for side in sides.values():  # warm-up
        side.step()
    tokens = {k: 0.0 for k in sides}
    seconds = {k: 0.0 for k in sides}
    step_rates: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            for _ in range(args.steps_per_round):
                t0 = time.perf_counter()
                n = sides[name].step()
                dt = time.perf_counter() - t0
                tokens[name] += n
                seconds[name] += dt
                step_rates[name].append(n / dt)
    rate = {k: tokens[k] / seconds[k] for k in sides}
    packed = sides["ours_packing"].dataset.stats()
    result = {
        "threads": args.threads,
        "seq": args.seq,
        "batch": args.batch,
        "data": info,
        "packing_conversations_per_sequence": round(packed["conversations_per_sample"], 2),
        "packing_fill": round(packed["fill"], 3),
        "padding_fill": round(sides["ours_padding"].dataset.stats()["fill"], 3),
        "mean_loss_packing": loss_pack[0] / loss_pack[1],
        "mean_loss_padding": loss_pad[0] / loss_pad[1],
        "steps_each": args.rounds * args.steps_per_round,
        **{f"supervised_tokens_per_s_{k}": round(v, 1) for k, v in rate.items()},
        "median_step_rate": {k: round(statistics.median(v), 1) for k, v in step_rates.items()},
        "ratio_packing_over_padding": rate["ours_packing"] / rate["ours_padding"],
        "ratio_ours_padding_over_hf_padding": rate["ours_padding"] / rate["hf_padding"],
        "ratio_ours_packing_over_hf_padding": rate["ours_packing"] / rate["hf_padding"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
