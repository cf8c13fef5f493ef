"""The suite's model queries under model parallelism: one checkpoint, loaded resharded at TP=2 and at PP=2
on two gloo ranks, scores and generates what it does whole (multiple-choice log-probs, shared-prefix and
continuation scoring, greedy KV-cache generations, perplexity by the decoder's full-vocabulary log-softmax
and, at TP=2, by Megatron's vocab-parallel cross-entropy)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from qwen_hpc.evaluation.scoring import ChoiceTokens, choice_logprobs, left_pad
from qwen_hpc.inference.decoder import KVCacheDecoder
from qwen_hpc.inference.generate import Generator, SamplingConfig
from qwen_hpc.interop.hf_checkpoint import load_model
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.parallel import model_parallel, single_process_megatron
from tests.inference.helpers import tiny_tokenizer

# 4 heads and 176 SwiGLU columns split over 2 ranks; a wide init so that greedy choices are far from ties
CFG = ModelConfig(name="tp", num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=176,
                  seq_length=96, init_method_std=0.1)
PREFIX = [40 + i for i in range(24)]  # a shared "few-shot" prefix, longer than MIN_SHARED_PREFIX
PROMPTS = [[5, 17, 300, 42, 7, 501, 99], [1, 2, 3], [250, 64, 12, 600, 8, 9, 10, 11, 12, 13], [77] * 5]
SINGLE = ChoiceTokens(((10,), (11,), (12,), (13,)), (), (10, 11, 12, 13))
MULTI = ChoiceTokens(((10,), (11, 12), (13,), (14, 15, 16)), None, ())  # whole continuations, summed


class _NoSchedule:
    def state_dict(self) -> dict:
        return {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _queries(model: Any, *, megatron: bool = True) -> dict[str, Any]:
    """Everything the evaluate stage asks a model, on fixed inputs."""
    tok = tiny_tokenizer()
    pad = tok.eod_id
    out: dict[str, Any] = {
        "single": choice_logprobs(model, PROMPTS, SINGLE, pad),
        "prefix": choice_logprobs(model, [PREFIX + p for p in PROMPTS], SINGLE, pad, prefix_len=len(PREFIX)),
        "multi": choice_logprobs(model, PROMPTS, MULTI, pad),
        "cut": choice_logprobs(model, [PREFIX * 5 + p for p in PROMPTS], SINGLE, pad, max_length=CFG.seq_length),
    }
    gens = Generator(model, tok).generate_ids([list(p) for p in PROMPTS], SamplingConfig(max_new_tokens=16))
    out["greedy"] = [g.token_ids for g in gens]
    out["greedy_logprobs"] = torch.tensor([lp for g in gens for lp in g.logprobs])
    # perplexity 1: the decoder's gathered logits, log-softmax over the full vocabulary
    rows = [PREFIX + p for p in PROMPTS]
    ids, positions, valid = left_pad(rows, pad)
    decoder = KVCacheDecoder(model, ids.shape[0], ids.shape[1])
    logp = torch.log_softmax(decoder.logits(decoder.hidden(ids, positions, valid))[:, :-1], dim=-1)
    nll = -logp.gather(2, ids[:, 1:, None]).squeeze(2)[valid[:, 1:] & valid[:, :-1]]
    out["decoder_ppl"] = torch.exp(nll.mean())
    # perplexity 2: Megatron's own forward with labels (vocab-parallel cross-entropy under TP), and the
    # decoder's on the same sequence
    seq = torch.tensor([PREFIX + PROMPTS[0]])
    one = KVCacheDecoder(model, 1, seq.shape[1])
    logp = torch.log_softmax(one.logits(one.hidden(seq, torch.arange(seq.shape[1])[None], seq >= 0))[:, :-1], -1)
    out["decoder_seq_ppl"] = torch.exp(-logp.gather(2, seq[:, 1:, None]).mean())
    if not megatron:  # a pipeline stage's forward needs Megatron's schedule: the decoder's only
        return out
    mask = ~torch.ones(seq.shape[1], seq.shape[1], dtype=torch.bool).tril()[None, None]
    from qwen_hpc.compat.megatron_cpu import cpu_shims

    with torch.no_grad(), cpu_shims():
        loss = model(seq[:, :-1], torch.arange(seq.shape[1] - 1)[None], mask[..., :-1, :-1], labels=seq[:, 1:])
    out["megatron_ppl"] = torch.exp(loss.float().mean())
    return out


LAYOUTS = {"tp2": (2, 1), "pp2": (1, 2)}


def _two_rank_worker(rank: int, ckpt: str, out: str, port: int) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        for name, (tp, pp) in LAYOUTS.items():
            with model_parallel(tp, pp, seed=0):
                model = load_model(ckpt, CFG)
                if tp == 2:
                    assert model.embedding.word_embeddings.weight.shape[0] * 2 == _rows(Path(ckpt))
                else:  # one layer per stage, the embedding on the first, the LM head on the last
                    assert len(model.decoder.layers) == 1 and hasattr(model, "embedding") == (rank == 0)
                result = _queries(model, megatron=pp == 1)
                torch.save(result, f"{out}.{name}.rank{rank}")
    finally:
        dist.destroy_process_group()


def _rows(ckpt: Path) -> int:
    from qwen_hpc.training.checkpoint import checkpoint_vocab_rows, resolve_checkpoint

    return checkpoint_vocab_rows(resolve_checkpoint(ckpt))


def test_tp2_and_pp2_score_and_generate_as_one_rank(tmp_path: Path) -> None:
    from qwen_hpc.model.builder import build_model, padded_vocab_size
    from qwen_hpc.training.checkpoint import TrainingState, save_checkpoint

    ckpt = tmp_path / "ckpt"
    with single_process_megatron(seed=0):
        model = build_model(CFG, padded_vocab_size(tiny_tokenizer().n_vocab, CFG), backend="local")
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():  # biases and norms away from 0 / 1, so every tensor's sharding matters
            for name, p in model.named_parameters():
                if name.endswith("bias") or "norm" in name:
                    p.add_(0.2 * torch.randn(p.shape, generator=gen))
        save_checkpoint(ckpt, TrainingState(iteration=1), model=model, optimizer=None, scheduler=_NoSchedule())
        alone = _queries(load_model(ckpt, CFG))
    mp.spawn(_two_rank_worker, args=(str(ckpt), str(tmp_path / "out"), _free_port()), nprocs=2, join=True)
    assert all(len(g) == 16 for g in alone["greedy"])
    for name in LAYOUTS:
        for rank in (0, 1):  # every rank of the model returns the same answers
            split = torch.load(tmp_path / f"out.{name}.rank{rank}")
            for key in ("single", "prefix", "multi", "cut"):
                assert torch.equal(split[key].argmax(-1), alone[key].argmax(-1)), (name, key)  # same choices
                assert torch.allclose(split[key], alone[key], atol=1e-5), (name, key)
            assert split["greedy"] == alone["greedy"], name  # identical greedy generations
            assert torch.allclose(split["greedy_logprobs"], alone["greedy_logprobs"], atol=1e-4), name
            for key in ("decoder_ppl", "decoder_seq_ppl", "megatron_ppl"):
                if key in split:
                    assert torch.isclose(split[key], alone[key], rtol=1e-5), (name, key, split[key], alone[key])
    tp2 = torch.load(tmp_path / "out.tp2.rank0")
    for result in (alone, tp2):  # the decoder's arithmetic is Megatron's, sharded or not
        assert torch.isclose(result["decoder_seq_ppl"], result["megatron_ppl"], rtol=1e-5)
    assert torch.isfinite(alone["decoder_ppl"]) and alone["decoder_ppl"] > 1.0
