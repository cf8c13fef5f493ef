"""Cached forward passes of our Megatron-Core Qwen model for inference: generation, scoring, long context.

The decoder runs the model's own weights (embedding, each layer's RMSNorms, `linear_qkv`, `linear_proj`,
SwiGLU MLP, final norm, LM head), read once into plain tensors and applied with the same
`torch.nn.functional` arithmetic as Megatron's modules for norms, projections and MLP, attention through
`scaled_dot_product_attention` (Megatron's unfused softmax path agrees to fp32 rounding, ~3e-6 on logits),
without the wrappers' per-token overhead — and adds what inference needs and Megatron's forward does not have:
- a key/value cache with a left-padding mask (Megatron-Core's `StaticInferenceContext` takes no padding
  mask, and a batched PPO generator wants left padding);
- the training-free long-context techniques of Qwen §2.5 (`qwen_hpc.model.long_context`): dynamic-NTK RoPE
  with alpha fixed per row at prefill from the row's true length (as the released code does, so a padded
  batch gives each sample its own alpha), LogN query scaling, and layer-wise window attention whose cache is
  a ring buffer of the window's size, so memory and compute follow the window;
- query chunking for long prefills, so attention memory is chunk × keys rather than length²;
- tensor parallelism: a model built with TP > 1 (Megatron's column/row/vocab-parallel layers) is run on
  its local shards, as Megatron's layers do — each rank holds its query groups and MLP columns, the
  attention output and MLP projections are summed over the TP group, the vocab-parallel embedding is a
  masked lookup summed over the group, and the logits are gathered to the full vocabulary on every rank
  (so sampling, scoring and stop checks agree across the group);
- pipeline parallelism: a stage model (PP > 1) runs its own layers, receives the hidden states from the
  previous stage and sends its own to the next; the last stage's logits are broadcast over the pipeline
  group, so every rank of a TP x PP model returns the same logits (the long-context options need PP = 1).
With every long-context option off (or on, but within the training length) and a prefill no longer than the
chunk, the arithmetic is exactly the plain path, bit for bit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

from qwen_hpc.model.long_context import LongContextConfig, logn_factors, ntk_alpha, ntk_base, rope_inv_freq

_TABLE = 1  # rope key of a layer at alpha 1 everywhere: the model's own inv_freq, looked up in a table


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


def allowed_keys(
    query_index: torch.Tensor, key_index: torch.Tensor, key_valid: torch.Tensor, window: int
) -> torch.Tensor:
    """Bool mask [b, 1, queries, keys] over absolute indices: causal, inside the window (0 = unbounded),
    valid (not padding). A query always sees itself, so a padding query has no empty softmax row."""
    q, k = query_index[:, None], key_index[None, :]
    allowed = k <= q
    if window > 0:
        allowed = allowed & (k > q - window)
    mask = allowed[None] & key_valid[:, key_index][:, None, :]
    return (mask | (k == q)[None])[:, None]


class _TensorParallel(NamedTuple):
    """This rank's place in Megatron's tensor-parallel group (size 1: an unsharded model)."""

    size: int
    rank: int
    group: Any

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """The sum of every rank's partial result (a row-parallel layer's output)."""
        if self.size > 1:
            dist.all_reduce(x, group=self.group)
        return x

    def gather_last(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's slice of the last dimension, concatenated in rank order (the full vocabulary)."""
        if self.size == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=-1)


class _Pipeline(NamedTuple):
    """This rank's pipeline stage (size 1: the whole model); prev/next/last are global ranks."""

    size: int
    first: bool
    last: bool
    prev: int
    next: int
    last_rank: int
    group: Any

    def receive(self, like: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        x = torch.empty(like, dtype=dtype, device=device)
        dist.recv(x, src=self.prev)
        return x

    def send(self, x: torch.Tensor) -> None:
        dist.send(x.contiguous(), dst=self.next)

    def from_last(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's `x` on every stage of the pipeline group."""
        if self.size > 1:
            dist.broadcast(x, src=self.last_rank, group=self.group)
        return x


def pipeline_of(model: Any) -> _Pipeline:
    """The pipeline stage a model was built for (its config's `pipeline_model_parallel_size`)."""
    size = int(getattr(model.config, "pipeline_model_parallel_size", 1) or 1)
    if size == 1:
        return _Pipeline(1, True, True, -1, -1, -1, None)
    from megatron.core import parallel_state as ps

    if ps.get_pipeline_model_parallel_world_size() != size:
        raise RuntimeError(
            f"the model was built for PP={size} but Megatron's pipeline group has "
            f"{ps.get_pipeline_model_parallel_world_size()} ranks"
        )
    first, last = ps.is_pipeline_first_stage(ignore_virtual=True), ps.is_pipeline_last_stage(ignore_virtual=True)
    return _Pipeline(
        size, first, last,
        -1 if first else ps.get_pipeline_model_parallel_prev_rank(),
        -1 if last else ps.get_pipeline_model_parallel_next_rank(),
        ps.get_pipeline_model_parallel_last_rank(),
        ps.get_pipeline_model_parallel_group(),
    )


def tensor_parallel_of(model: Any) -> _TensorParallel:
    """The TP group a model was built for (its config's `tensor_model_parallel_size`)."""
    cfg = model.config
    size = int(getattr(cfg, "tensor_model_parallel_size", 1) or 1)
    if size == 1:
        return _TensorParallel(1, 0, None)
    from megatron.core import parallel_state as ps

    if ps.get_tensor_model_parallel_world_size() != size:
        raise RuntimeError(
            f"the model was built for TP={size} but Megatron's TP group has "
            f"{ps.get_tensor_model_parallel_world_size()} ranks"
        )
    return _TensorParallel(size, ps.get_tensor_model_parallel_rank(), ps.get_tensor_model_parallel_group())


class KVCacheDecoder:
    """Forward passes of a GPTModel (whole, or this rank's TP shard and PP stage) that reuse cached keys
    and values. Under TP/PP every rank of the model makes the same calls with the same inputs.

    The per-layer weights are views of the parameters (a later optimizer step is seen by the next decoder).
    Activations are batch-first, [b, t, h]. `train_length` is the length the model was trained at (the
    model's `max_sequence_length` by default), the reference of every long-context formula.
    """

    def __init__(
        self,
        model: Any,
        batch: int,
        max_len: int,
        *,
        long_context: LongContextConfig | None = None,
        train_length: int | None = None,
        attention_chunk: int = 1024,
    ) -> None:
        if attention_chunk < 1:
            raise ValueError(f"attention_chunk={attention_chunk} must be >= 1")
        self.model = model
        cfg = model.config
        self.tp, self.pp = tensor_parallel_of(model), pipeline_of(model)
        self.hidden_size = cfg.hidden_size
        heads, groups = cfg.num_attention_heads, cfg.num_query_groups or cfg.num_attention_heads
        if heads % self.tp.size or groups % self.tp.size:
            raise ValueError(f"TP={self.tp.size} must divide the {heads} heads and {groups} query groups")
        # this rank's heads and query groups (all of them at TP=1)
        self.heads, self.groups, self.head_dim = heads // self.tp.size, groups // self.tp.size, cfg.kv_channels
        self.per = self.heads // self.groups
        self.eps = float(cfg.layernorm_epsilon)
        if getattr(cfg, "qk_layernorm", False) or getattr(cfg, "layernorm_zero_centered_gamma", False):
            raise NotImplementedError("qk_layernorm / zero-centred gamma are not supported by the decoder")
        self.gated = bool(cfg.gated_linear_unit)
        self.activation = cfg.activation_func
        self.layers = [self._plain(layer) for layer in model.decoder.layers]
        # the embedding on the first pipeline stage, the final norm and LM head on the last (both at PP=1)
        self.embedding = model.embedding.word_embeddings.weight if self.pp.first else None
        self.vocab_rows = int(model.vocab_size)
        self.vocab_start = self.tp.rank * (self.vocab_rows // self.tp.size)  # this rank's rows under TP
        self.final_norm = self.output_w = self.output_b = None
        if self.pp.last:
            self.final_norm = _norm_weight(model.decoder.final_layernorm)
            self.output_w, self.output_b = model.output_layer.weight, model.output_layer.bias
            if self.output_w is None:  # tied embeddings: Megatron passes the embedding as the output weight
                self.output_w = model.shared_embedding_or_output_weight()
        weight = self.embedding if self.embedding is not None else self.layers[0].qkv_w
        # cos/sin of every position once: inv_freq is Megatron's own (fp32, spec §3.3)
        self.inv_freq = model.rotary_pos_emb.inv_freq.float()
        self.rotary_dim = 2 * self.inv_freq.numel()
        self.rotary_base = float(getattr(model, "rotary_base", 10000.0))
        self.device = weight.device  # caches, tables and masks live with the weights (CPU or GPU)
        angles = torch.arange(max_len, dtype=torch.float32, device=self.device)[:, None] * self.inv_freq
        angles = torch.cat([angles, angles], dim=-1)
        self.cos_table, self.sin_table = angles.cos(), angles.sin()
        # long context
        self.long_context = long_context or LongContextConfig()
        if self.pp.size > 1 and self.long_context.enabled:
            raise NotImplementedError("the long-context options need the whole model on one stage (PP = 1)")
        self.train_length = int(train_length or getattr(model, "max_sequence_length", max_len))
        self.windows = [
            w if w < max_len else 0 for w in self.long_context.windows(len(self.layers), self.train_length)
        ]  # a window no shorter than the whole sequence never masks anything: full attention
        self.chunk = attention_chunk
        self.rope_keys: list[Any] = [_TABLE] * len(self.layers)  # per layer: _TABLE or a tuple of row alphas
        # the cache: max_len slots per full-attention layer, a ring of `window` slots per windowed layer
        dtype = self.dtype = weight.dtype
        self.capacity = [w or max_len for w in self.windows]
        self.keys = [
            torch.zeros(batch, self.groups, cap, self.head_dim, dtype=dtype, device=self.device)
            for cap in self.capacity
        ]
        self.values = [torch.zeros_like(k) for k in self.keys]
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

    # ------------------------------------------------------------------ arithmetic of Megatron's modules

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """RMSNorm as the model's (torch) RMSNorm module: in the model's dtype when fp32, else via fp32."""
        if x.dtype == torch.float32:
            return F.rms_norm(x, weight.shape, weight, self.eps)
        return F.rms_norm(x.float(), weight.shape, weight.float(), self.eps).to(x.dtype)

    @staticmethod
    def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        out = torch.matmul(x, weight.t())  # Megatron's own product (then + bias): bitwise alike
        return out if bias is None else out + bias

    def _row_parallel(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """A RowParallelLinear: the local product summed over the TP group, then the (whole) bias."""
        out = self.tp.reduce(torch.matmul(x, weight.t()))
        return out if bias is None else out + bias

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """A VocabParallelEmbedding: rows outside this rank's vocabulary slice are zero, summed over TP."""
        if self.tp.size == 1:
            return F.embedding(ids, self.embedding)
        local = ids - self.vocab_start
        outside = (local < 0) | (local >= self.embedding.shape[0])
        x = F.embedding(local.masked_fill(outside, 0), self.embedding)
        return self.tp.reduce(x.masked_fill(outside[..., None], 0.0))

    # ------------------------------------------------------------------ rotary embeddings

    def _fix_rope(self, key_valid: torch.Tensor, t: int) -> None:
        """At prefill: each layer's per-row NTK alpha from the row's true length, capped by the layer's
        window (kept for the rest of the sequence, as the released code keeps its cached alpha)."""
        if not self.long_context.use_dynamic_ntk:
            return
        true_lengths = key_valid[:, :t].sum(dim=1).clamp(min=1).tolist()
        for index, window in enumerate(self.windows):
            alphas = tuple(
                ntk_alpha(min(n, window) if window else n, self.train_length) for n in true_lengths
            )
            self.rope_keys[index] = _TABLE if all(a == 1 for a in alphas) else alphas

    def _rope(self, key: Any, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [b, t, 1, 1, d] for the positions under one rope key."""
        if key == _TABLE:
            return self.cos_table[positions][:, :, None, None], self.sin_table[positions][:, :, None, None]
        per_alpha = {
            a: rope_inv_freq(ntk_base(self.rotary_base, a, self.rotary_dim), self.rotary_dim).to(self.device)
            for a in set(key)
        }
        inv_freq = torch.stack([per_alpha[a] if a != 1 else self.inv_freq for a in key])  # [b, d/2]
        angles = positions.to(torch.float32)[:, :, None] * inv_freq[:, None, :]
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos()[:, :, None, None], angles.sin()[:, :, None, None]

    # ------------------------------------------------------------------ attention

    def _attention(
        self,
        p: _Layer,
        index: int,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        scale: Any,
        mask: Any,
        key_valid: torch.Tensor,
    ) -> torch.Tensor:
        """x: [b, t, h] normed input; `scale` is None or the LogN query factors [b, t]; `mask` is the
        full-attention mask of this step (bool, "causal" or None)."""
        b, t, _ = x.shape
        per, d = self.per, self.head_dim
        cos, sin = rope
        qkv = self._linear(x, p.qkv_w, p.qkv_b).view(b, t, self.groups, per + 2, d)  # Megatron's group layout
        # RoPE (rotate-half, fp32) on the queries and keys of every group in one go: [b, t, g, per + 1, d]
        qk = qkv[:, :, :, : per + 1].float()
        x1, x2 = qk.chunk(2, dim=-1)
        qk = (qk * cos + torch.cat([-x2, x1], dim=-1) * sin).to(x.dtype)
        q = qk[:, :, :, :per].reshape(b, t, self.heads, d).transpose(1, 2).float()  # [b, heads, t, d]
        if scale is not None:
            q = q * scale[:, None, :, None]
        new_k, new_v = qk[:, :, :, per].transpose(1, 2), qkv[:, :, :, per + 1].transpose(1, 2)  # [b, g, t, d]
        window = self.windows[index]
        if window and t == 1:  # decoding: the ring already is the window, in any order
            out = self._ring_decode(index, q, new_k, new_v, key_valid)
            return self._row_parallel(out.to(x.dtype).transpose(1, 2).reshape(b, t, -1), p.proj_w, p.proj_b)
        if window:
            keys, values, key_index = self._ring_update(index, new_k, new_v)
        else:
            end = self.length + t
            self.keys[index][:, :, self.length : end] = new_k
            self.values[index][:, :, self.length : end] = new_v
            keys, values = self.keys[index][:, :, :end], self.values[index][:, :, :end]
            key_index = None
        if window or t > self.chunk:
            out = self._chunked(q, keys, values, key_index, key_valid, window)
        else:
            out = self._sdpa(q, keys, values, mask)
        out = out.to(x.dtype).transpose(1, 2).reshape(b, t, -1)  # [b, t, heads * d]
        return self._row_parallel(out, p.proj_w, p.proj_b)

    def _ring_update(
        self, index: int, new_k: torch.Tensor, new_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys/values a windowed layer attends to this step (the cached ring, oldest first, then the new
        ones) with their absolute indices; the ring keeps the newest `window` of them afterwards."""
        cap, t = self.capacity[index], new_k.shape[2]
        old_index = torch.arange(max(0, self.length - cap), self.length, device=self.device)
        slots = old_index % cap
        keys = torch.cat([self.keys[index][:, :, slots], new_k], dim=2)
        values = torch.cat([self.values[index][:, :, slots], new_v], dim=2)
        kept = min(t, cap)
        write = torch.arange(self.length + t - kept, self.length + t, device=self.device) % cap
        self.keys[index][:, :, write] = new_k[:, :, t - kept :]
        self.values[index][:, :, write] = new_v[:, :, t - kept :]
        return (
            keys,
            values,
            torch.arange(max(0, self.length - cap), self.length + t, device=self.device),
        )

    def _ring_decode(
        self, index: int, q: torch.Tensor, new_k: torch.Tensor, new_v: torch.Tensor, key_valid: torch.Tensor
    ) -> torch.Tensor:
        """One new token of a windowed layer: written into its ring slot, then attention over the filled
        slots as they lie (softmax does not care about key order; RoPE is already in the keys)."""
        cap = self.capacity[index]
        slot = self.length % cap
        self.keys[index][:, :, slot] = new_k[:, :, 0]
        self.values[index][:, :, slot] = new_v[:, :, 0]
        filled = min(self.length + 1, cap)
        mask = None
        if not bool(key_valid.all()):  # the absolute index each slot holds, for the padding mask
            slots = torch.arange(filled, device=self.device)
            held = self.length - (self.length - slots) % cap
            mask = key_valid[:, held]
            mask[:, slot] = True  # a padding query still sees itself
            mask = mask[:, None, None, :]
        return self._sdpa(q, self.keys[index][:, :, :filled], self.values[index][:, :, :filled], mask)

    def _sdpa(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: Any) -> torch.Tensor:
        """softmax(q kᵀ/√d) v in fp32 (Megatron's attention_softmax_in_fp32); q: [b, heads, t, d]."""
        if self.per > 1:  # grouped-query attention: each group's key/value serves `per` query heads
            keys, values = keys.repeat_interleave(self.per, dim=1), values.repeat_interleave(self.per, dim=1)
        keys, values = keys.float(), values.float()
        if isinstance(mask, str):
            return F.scaled_dot_product_attention(q, keys, values, is_causal=True)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)

    def _chunked(
        self,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        key_index: torch.Tensor | None,
        key_valid: torch.Tensor,
        window: int,
    ) -> torch.Tensor:
        """Attention in blocks of `chunk` queries, each over only the keys its window can reach."""
        t = q.shape[2]
        first_key = 0 if key_index is None else int(key_index[0])
        outs = []
        for start in range(0, t, self.chunk):
            stop = min(t, start + self.chunk)
            q_abs = torch.arange(self.length + start, self.length + stop, device=self.device)
            lo = max(first_key, int(q_abs[0]) - window + 1) if window else first_key
            hi = int(q_abs[-1]) + 1
            mask = allowed_keys(q_abs, torch.arange(lo, hi, device=self.device), key_valid, window)
            k, v = keys[:, :, lo - first_key : hi - first_key], values[:, :, lo - first_key : hi - first_key]
            outs.append(self._sdpa(q[:, :, start:stop], k, v, mask))
        return torch.cat(outs, dim=2)

    def _mask(self, t: int, key_valid: torch.Tensor) -> Any:
        """The full-attention mask of one step: None (all keys), "causal", or bool [b, 1, t, length + t]."""
        if bool(key_valid.all()):
            if t == 1:
                return None  # one new token and no padding: it sees every cached key
            if self.length == 0:
                return "causal"  # an unpadded prompt: plain causal attention
        if t == 1:  # one new token sees every valid cached key, and itself (no empty softmax row)
            mask = key_valid.clone()
            mask[:, -1] = True
            return mask[:, None, None, :]
        return allowed_keys(
            torch.arange(self.length, self.length + t, device=self.device),
            torch.arange(self.length + t, device=self.device),
            key_valid,
            0,
        )

    def load_prefix(self, source: KVCacheDecoder) -> None:
        """Start every row from `source`'s cached prefix (its row 0): a prompt prefix shared by the whole
        batch (few-shot exemplars) is computed once instead of once per row. Plain full attention only."""
        if self.length or any(self.windows) or any(source.windows) or self.long_context.enabled:
            raise ValueError("load_prefix needs an empty cache without window attention or long-context options")
        n = source.length
        for mine, theirs in zip(self.keys + self.values, source.keys + source.values, strict=True):
            mine[:, :, :n] = theirs[:1, :, :n]
        self.length = n

    # ------------------------------------------------------------------ forward

    @torch.inference_mode()
    def hidden(self, ids: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        """ids, positions: [b, t] new tokens; key_valid: [b, length + t] (False on padding).
        Returns the last layer's output before the final norm, [b, t, h], and advances the cache."""
        ids, positions, key_valid = (x.to(self.device) for x in (ids, positions, key_valid))
        t = ids.shape[1]
        if self.length == 0:
            self._fix_rope(key_valid, t)
        # the whole-step mask only serves full-attention layers on the unchunked path (a [t, t] mask of a
        # 32k prefill would be a gigabyte nobody reads)
        unchunked_full = t <= self.chunk and not all(self.windows)
        mask = self._mask(t, key_valid) if unchunked_full else None
        ropes: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}  # per rope key, shared by layers
        scales: dict[int, torch.Tensor | None] = {}  # LogN factors per window, shared by layers
        if self.pp.first:
            x = self._embed(ids)  # [b, t, h]
        else:  # the previous stage's output
            x = self.pp.receive((*ids.shape, self.hidden_size), self.dtype, self.device)
        for index, p in enumerate(self.layers):
            key, window = self.rope_keys[index], self.windows[index]
            if key not in ropes:
                ropes[key] = self._rope(key, positions)
            if window not in scales:
                scales[window] = (
                    logn_factors(positions, self.train_length, window)
                    if self.long_context.use_logn_attn
                    else None
                )
            normed = self._norm(x, p.norm1)
            attn = self._attention(p, index, normed, ropes[key], scales[window], mask, key_valid)
            x = x + attn
            hidden = self._linear(self._norm(x, p.norm2), p.fc1_w, p.fc1_b)
            if self.gated:
                gate, up = hidden.chunk(2, dim=-1)
                hidden = self.activation(gate) * up
            else:
                hidden = self.activation(hidden)
            x = x + self._row_parallel(hidden, p.fc2_w, p.fc2_b)
        self.length += t
        if not self.pp.last:
            self.pp.send(x)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final RMSNorm and LM head on hidden states [..., h] → fp32 logits [..., vocab rows] (under TP the
        vocab-parallel slices gathered, under PP the last stage's broadcast — `hidden` of an earlier stage
        only gives the shape —, so every rank holds the full-vocabulary logits)."""
        if not self.pp.last:
            out = torch.empty((*hidden.shape[:-1], self.vocab_rows), dtype=torch.float32, device=self.device)
            return self.pp.from_last(out)
        local = self._linear(self._norm(hidden, self.final_norm), self.output_w, self.output_b)
        return self.pp.from_last(self.tp.gather_last(local).float().contiguous())

    @torch.inference_mode()
    def step(self, ids: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        """ids, positions: [b, t] new tokens; key_valid: [b, length + t] (False on padding).
        Returns the logits of the last new token, [b, vocab rows]."""
        return self.logits(self.hidden(ids, positions, key_valid)[:, -1])
