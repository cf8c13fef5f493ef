"""Batched autoregressive generation with a KV cache on our Megatron-Core Qwen model (eval, PPO, agents).

The forward passes are `qwen_hpc.inference.decoder.KVCacheDecoder`'s (the model's own weights with
Megatron's arithmetic, a left-padded key/value cache, and the long-context options of Qwen §2.5 when
asked for). `use_cache=False` recomputes every step with Megatron's own `GPTModel.forward` instead, which
the tests compare against (it knows no long-context option).

Sampling follows the usual order: repetition penalty (CTRL, as `transformers`) → temperature → top-k →
top-p → draw with a seeded `torch.Generator` (temperature 0 = greedy). Log-probs are those of the model
(log-softmax of the raw logits) for each generated token, which is what PPO's ratio needs. Stop token ids
are kept in `token_ids` (and their log-probs) but not in `text`; a stop string ends the row, and `text` is
cut before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from qwen_hpc.inference.decoder import KVCacheDecoder
from qwen_hpc.model.long_context import LongContextConfig


@dataclass
class SamplingConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop_token_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ValueError(f"invalid sampling settings {self}")


@dataclass
class Generation:
    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop_token" | "stop_string" | "length"


def process_logits(
    logits: torch.Tensor, history: torch.Tensor, history_valid: torch.Tensor, cfg: SamplingConfig
) -> torch.Tensor:
    """[b, V] raw logits → the logits that are sampled from (penalty, temperature, top-k, top-p)."""
    if cfg.repetition_penalty != 1.0:
        seen = torch.zeros_like(logits, dtype=torch.bool)
        seen.scatter_(1, history.clamp(max=logits.shape[1] - 1), history_valid)
        penalised = torch.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
        logits = torch.where(seen, penalised, logits)
    if cfg.temperature == 0:
        return logits
    logits = logits / cfg.temperature
    if cfg.top_k > 0:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= cfg.top_p  # keep the first past top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


class Generator:
    """Generate from a loaded GPTModel with a tokenizer (`encode`, `decode`, `eod_id`)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pad_id: int | None = None,
        vocab_size: int | None = None,
        long_context: LongContextConfig | None = None,
        train_length: int | None = None,
    ):
        """`long_context` turns on dynamic NTK / LogN / window attention past `train_length` (the model's
        `max_sequence_length` by default); they need the KV-cache path."""
        self.model = model.eval()
        self.long_context = long_context or LongContextConfig()
        self.train_length = train_length
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.eod_id if pad_id is None else pad_id
        # Only real ids may be drawn (embedding padding rows are never valid tokens); None = the tokenizer's.
        self.vocab_size = vocab_size if vocab_size is not None else getattr(tokenizer, "n_vocab", None)

    def generate(
        self, prompts: Sequence[str | Sequence[int]], cfg: SamplingConfig, *, use_cache: bool = True
    ) -> list[Generation]:
        prompt_ids = [
            self.tokenizer.encode(p) if isinstance(p, str) else [int(i) for i in p] for p in prompts
        ]
        if any(not p for p in prompt_ids):
            raise ValueError("every prompt needs at least one token")
        return self.generate_ids(prompt_ids, cfg, use_cache=use_cache)

    @torch.inference_mode()
    def generate_ids(  # noqa: C901, PLR0915 - one loop: forward → process → draw → stop checks
        self, prompt_ids: list[list[int]], cfg: SamplingConfig, *, use_cache: bool = True
    ) -> list[Generation]:
        b, width = len(prompt_ids), max(len(p) for p in prompt_ids)
        pads = torch.tensor([width - len(p) for p in prompt_ids])
        ids = torch.full((b, width + cfg.max_new_tokens), self.pad_id, dtype=torch.long)
        valid = torch.zeros_like(ids, dtype=torch.bool)
        for row, p in enumerate(prompt_ids):
            ids[row, width - len(p) : width] = torch.tensor(p)
            valid[row, width - len(p) : width] = True
        gen = torch.Generator().manual_seed(cfg.seed)
        if not use_cache and self.long_context.enabled:
            raise ValueError("the long-context options run on the KV-cache path: use_cache=True")
        decoder = (
            KVCacheDecoder(
                self.model,
                b,
                width + cfg.max_new_tokens,
                long_context=self.long_context,
                train_length=self.train_length,
            )
            if use_cache
            else None
        )
        out_tokens: list[list[int]] = [[] for _ in range(b)]
        out_logprobs: list[list[float]] = [[] for _ in range(b)]
        reasons = ["length"] * b
        done = [False] * b
        stop_ids = set(cfg.stop_token_ids)
        forward = self._cached(decoder, pads) if decoder is not None else self._recompute
        cur = width
        for _ in range(cfg.max_new_tokens):
            logits = forward(ids, valid, cur)
            if self.vocab_size is not None:
                logits[:, self.vocab_size :] = float("-inf")
            processed = process_logits(logits, ids[:, :cur], valid[:, :cur], cfg)
            if cfg.temperature == 0:
                nxt = processed.argmax(dim=-1)
            else:
                nxt = torch.multinomial(torch.softmax(processed, dim=-1), 1, generator=gen).squeeze(1)
            finished = torch.tensor(done)
            nxt = nxt.masked_fill(finished, self.pad_id)
            ids[:, cur], valid[:, cur] = nxt, ~finished
            # log p(token) = logit - logsumexp(logits): the model's own distribution, for PPO
            chosen = (logits.gather(1, nxt[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)).tolist()
            for row, token in enumerate(nxt.tolist()):
                if done[row]:
                    continue
                out_tokens[row].append(token)
                out_logprobs[row].append(chosen[row])
                if token in stop_ids:
                    done[row], reasons[row] = True, "stop_token"
                elif cfg.stop_strings and self._hit_stop_string(out_tokens[row], cfg.stop_strings):
                    done[row], reasons[row] = True, "stop_string"
            cur += 1
            if all(done):
                break
        return [
            Generation(p, toks, lps, self._text(toks, cfg, reason), reason)
            for p, toks, lps, reason in zip(prompt_ids, out_tokens, out_logprobs, reasons, strict=True)
        ]

    # ------------------------------------------------------------------ forward variants

    def _cached(self, decoder: KVCacheDecoder, pads: torch.Tensor) -> Callable[..., torch.Tensor]:
        def forward(ids: torch.Tensor, valid: torch.Tensor, cur: int) -> torch.Tensor:
            start = decoder.length
            positions = (torch.arange(start, cur)[None, :] - pads[:, None]).clamp(min=0)
            return decoder.step(ids[:, start:cur], positions, valid[:, :cur]).cpu()  # sampling runs on CPU

        return forward

    def _recompute(self, ids: torch.Tensor, valid: torch.Tensor, cur: int) -> torch.Tensor:
        """The whole sequence through Megatron's GPTModel.forward (RoPE is relative: the pad offset cancels)."""
        from qwen_hpc.compat.megatron_cpu import cpu_shims

        seq, keep = ids[:, :cur], valid[:, :cur]
        allowed = torch.ones(cur, cur, dtype=torch.bool).tril()[None] & keep[:, None, :]
        allowed |= torch.eye(cur, dtype=torch.bool)[None]
        positions = torch.arange(cur)[None].expand(seq.shape[0], cur)
        with cpu_shims():
            logits = self.model(seq, positions, ~allowed[:, None], runtime_gather_output=True)
        return logits[:, -1].float()

    # ------------------------------------------------------------------ text

    def _hit_stop_string(self, tokens: list[int], stops: tuple[str, ...]) -> bool:
        text = self.tokenizer.decode(tokens)
        return any(s in text for s in stops)

    def _text(self, tokens: list[int], cfg: SamplingConfig, reason: str) -> str:
        if reason == "stop_token":
            tokens = tokens[:-1]
        text = self.tokenizer.decode(tokens)
        if reason == "stop_string":
            cut = min(text.find(s) for s in cfg.stop_strings if s in text)
            text = text[:cut]
        return text
