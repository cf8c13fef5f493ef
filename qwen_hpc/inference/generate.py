"""Batched autoregressive generation with a KV cache on our Megatron-Core Qwen model (eval, PPO, agents).

The decode loop runs the model's own weights (embedding, each layer's RMSNorms, `linear_qkv`, `linear_proj`,
SwiGLU MLP, final norm, LM head), read once per call into plain tensors and applied with the same
`torch.nn.functional` arithmetic as Megatron's modules (bitwise-equal logits, without the wrappers' per-token
overhead), and adds only what a cache needs: rotary embeddings at per-row positions and attention over a
preallocated key/value cache with a left-padding mask. Megatron-Core's `StaticInferenceContext` runs on
the CPU too (measured: its cached decode step matches a full forward to 1.5e-7), but it takes no padding
mask, so batches of unequal prompts would need lock-step right padding; left padding is what a batched
generator for PPO rollouts wants, hence this loop. `use_cache=False` recomputes every step with Megatron's
own `GPTModel.forward` instead, which the tests compare against.

Sampling follows the usual order: repetition penalty (CTRL, as `transformers`) → temperature → top-k →
top-p → draw with a seeded `torch.Generator` (temperature 0 = greedy). Log-probs are those of the model
(log-softmax of the raw logits) for each generated token, which is what PPO's ratio needs. Stop token ids
are kept in `token_ids` (and their log-probs) but not in `text`; a stop string ends the row, and `text` is
cut before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F


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


class _Layer(NamedTuple):
    """One transformer layer's plain tensors (views of the model's parameters, no copies)."""

    norm1: torch.Tensor
    qkv_w: torch.Tensor
    qkv_b: torch.Tensor | None
    proj_w: torch.Tensor
    proj_b: torch.Tensor | None
    norm2: torch.Tensor
    fc1_w: torch.Tensor  # [gate; up] rows when gated
    fc1_b: torch.Tensor | None
    fc2_w: torch.Tensor
    fc2_b: torch.Tensor | None


def _norm_weight(module: Any) -> torch.Tensor:
    weight = getattr(module, "weight", None)
    if weight is None or getattr(module, "bias", None) is not None:
        raise NotImplementedError(f"the KV-cache decoder needs RMSNorm modules, got {type(module).__name__}")
    return weight


class KVCacheDecoder:
    """Forward passes of an unsharded GPTModel (TP=1, PP=1) that reuse cached keys and values.

    The per-layer weights are read once into plain tensors (views of the parameters, so a later optimizer
    step is seen by the next decoder) and each step runs `torch.nn.functional` ops on them: the arithmetic of
    Megatron's modules (`F.rms_norm` with the module's eps, x·Wᵀ + b, SiLU-gated MLP, residual adds)
    without their per-call wrapper overhead. Activations are batch-first, [b, t, h]."""

    def __init__(self, model: Any, batch: int, max_len: int) -> None:
        self.model = model
        cfg = model.config
        self.heads, self.groups, self.head_dim = (
            cfg.num_attention_heads,
            cfg.num_query_groups or cfg.num_attention_heads,
            cfg.kv_channels,
        )
        self.per = self.heads // self.groups
        self.eps = float(cfg.layernorm_epsilon)
        if getattr(cfg, "qk_layernorm", False) or getattr(cfg, "layernorm_zero_centered_gamma", False):
            raise NotImplementedError("qk_layernorm / zero-centred gamma are not supported by the decoder")
        self.gated = bool(cfg.gated_linear_unit)
        self.activation = cfg.activation_func
        self.layers = [self._plain(layer) for layer in model.decoder.layers]
        self.embedding = model.embedding.word_embeddings.weight
        self.final_norm = _norm_weight(model.decoder.final_layernorm)
        self.output_w, self.output_b = model.output_layer.weight, model.output_layer.bias
        if self.output_w is None:  # tied embeddings: Megatron passes the embedding as the output weight
            self.output_w = model.shared_embedding_or_output_weight()
        # cos/sin of every position once: inv_freq is Megatron's own (fp32, spec §3.3)
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * model.rotary_pos_emb.inv_freq.float()
        angles = torch.cat([angles, angles], dim=-1)
        self.cos_table, self.sin_table = angles.cos(), angles.sin()
        dtype = self.embedding.dtype
        shape = (cfg.num_layers, batch, self.groups, max_len, self.head_dim)
        self.keys = torch.zeros(shape, dtype=dtype)
        self.values = torch.zeros(shape, dtype=dtype)
        self.length = 0

    @staticmethod
    def _plain(layer: Any) -> _Layer:
        attn, mlp = layer.self_attention, layer.mlp
        return _Layer(
            _norm_weight(layer.input_layernorm),
            attn.linear_qkv.weight,
            attn.linear_qkv.bias,
            attn.linear_proj.weight,
            attn.linear_proj.bias,
            _norm_weight(layer.pre_mlp_layernorm),
            mlp.linear_fc1.weight,
            mlp.linear_fc1.bias,
            mlp.linear_fc2.weight,
            mlp.linear_fc2.bias,
        )

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """RMSNorm as the model's (torch) RMSNorm module: in the model's dtype when fp32, else via fp32."""
        if x.dtype == torch.float32:
            return F.rms_norm(x, weight.shape, weight, self.eps)
        return F.rms_norm(x.float(), weight.shape, weight.float(), self.eps).to(x.dtype)

    @staticmethod
    def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        out = torch.matmul(
            x, weight.t()
        )  # Megatron's own product (then + bias), so results are bitwise alike
        return out if bias is None else out + bias

    def _attention(
        self, p: _Layer, index: int, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: Any
    ) -> torch.Tensor:
        """x: [b, t, h] normed input; `mask` is a bool mask, "causal", or None (all)."""
        b, t, _ = x.shape
        per, d = self.per, self.head_dim
        qkv = self._linear(x, p.qkv_w, p.qkv_b).view(b, t, self.groups, per + 2, d)  # Megatron's group layout
        # RoPE (rotate-half, fp32) on the queries and keys of every group in one go: [b, t, g, per + 1, d]
        qk = qkv[:, :, :, : per + 1].float()
        x1, x2 = qk.chunk(2, dim=-1)
        qk = (qk * cos + torch.cat([-x2, x1], dim=-1) * sin).to(x.dtype)
        q = qk[:, :, :, :per].reshape(b, t, self.heads, d).transpose(1, 2)  # [b, heads, t, d]
        end = self.length + t
        self.keys[index, :, :, self.length : end] = qk[:, :, :, per].transpose(1, 2)
        self.values[index, :, :, self.length : end] = qkv[:, :, :, per + 1].transpose(1, 2)
        keys, values = self.keys[index, :, :, :end], self.values[index, :, :, :end]
        if per > 1:  # grouped-query attention: each group's key/value serves `per` query heads
            keys, values = keys.repeat_interleave(per, dim=1), values.repeat_interleave(per, dim=1)
        # softmax(q k^T / sqrt(d)) v in fp32, as Megatron's attention_softmax_in_fp32
        q, keys, values = q.float(), keys.float(), values.float()
        if isinstance(mask, str):
            out = F.scaled_dot_product_attention(q, keys, values, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        out = out.to(x.dtype).transpose(1, 2).reshape(b, t, -1)  # [b, t, heads * d]
        return self._linear(out, p.proj_w, p.proj_b)

    def _mask(self, t: int, key_valid: torch.Tensor) -> Any:
        total = self.length + t
        if bool(key_valid.all()):
            if t == 1:
                return None  # one new token and no padding: it sees every cached key
            if self.length == 0:
                return "causal"  # an unpadded prompt: plain causal attention
        if t == 1:  # one new token sees every valid cached key, and itself (no empty softmax row)
            mask = key_valid.clone()
            mask[:, -1] = True
            return mask[:, None, None, :]
        causal = torch.ones(t, total, dtype=torch.bool).tril(diagonal=self.length)
        mask = causal[None, None] & key_valid[:, None, None, :]
        diagonal = torch.zeros(t, total, dtype=torch.bool)
        diagonal[torch.arange(t), self.length + torch.arange(t)] = True
        return mask | diagonal[None, None]  # a padding query attends to itself: no empty softmax row

    @torch.inference_mode()
    def step(self, ids: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        """ids, positions: [b, t] new tokens; key_valid: [b, length + t] (False on padding).
        Returns the logits of the last new token, [b, vocab rows]."""
        t = ids.shape[1]
        mask = self._mask(t, key_valid)
        cos = self.cos_table[positions][:, :, None, None]  # [b, t, 1, 1, d]
        sin = self.sin_table[positions][:, :, None, None]
        x = F.embedding(ids, self.embedding)  # [b, t, h]
        for index, p in enumerate(self.layers):
            x = x + self._attention(p, index, self._norm(x, p.norm1), cos, sin, mask)
            hidden = self._linear(self._norm(x, p.norm2), p.fc1_w, p.fc1_b)
            if self.gated:
                gate, up = hidden.chunk(2, dim=-1)
                hidden = self.activation(gate) * up
            else:
                hidden = self.activation(hidden)
            x = x + self._linear(hidden, p.fc2_w, p.fc2_b)
        self.length += t
        logits = self._linear(self._norm(x[:, -1], self.final_norm), self.output_w, self.output_b)
        return logits.float()


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
        self, model: Any, tokenizer: Any, *, pad_id: int | None = None, vocab_size: int | None = None
    ):
        self.model = model.eval()
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
        decoder = KVCacheDecoder(self.model, b, width + cfg.max_new_tokens) if use_cache else None
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
            return decoder.step(ids[:, start:cur], positions, valid[:, :cur])

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
