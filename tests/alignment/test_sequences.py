"""Padding and packing: the same conversations give the same loss (packing confines attention and positions
to each conversation), over-long conversations are truncated at a turn boundary or dropped and counted."""

from __future__ import annotations

import pytest
import torch

from qwen_hpc.alignment import embedded
from qwen_hpc.alignment.sequences import SFTDataset, pack, tokenize_conversations
from qwen_hpc.interop.hf_checkpoint import single_process_megatron
from qwen_hpc.model.builder import build_model
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.tokenizer.encoding import QwenTokenizer

SEQ = 192


@pytest.fixture(scope="module")
def tok() -> QwenTokenizer:
    return QwenTokenizer({bytes([b]): b for b in range(256)}, name="bytes")


def _convs(n: int) -> list:
    # the first question/answer turn of arithmetic conversations: several fit one sample
    return [t.messages[:2] for t in embedded.generate(3, n, held_out=False, weights=(1.0, 0.0, 0.0))]


def test_pack_best_fit_decreasing() -> None:
    samples = pack([5, 3, 7, 2, 4], 10)
    assert sorted(sorted(s.members) for s in samples) == [[0, 4], [1, 2], [3]] or all(
        s.length <= 10 for s in samples
    )
    assert sum(s.length for s in samples) == 21 and len(samples) == 3
    with pytest.raises(ValueError, match="more than a sample's 10"):
        pack([11], 10)


def _losses(model, ds: SFTDataset) -> tuple[float, float]:
    """Summed loss over the supervised tokens of all samples, in one batch, and their number."""
    batch = {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ds[0]}
    causal = torch.ones(SEQ, SEQ, dtype=torch.bool).triu(1)[None, None]
    mask = batch["attention_mask"] if "attention_mask" in batch else causal
    with torch.no_grad():
        per_token = model(batch["tokens"], batch["position_ids"], mask, labels=batch["labels"])
    weights = batch["loss_mask"].double()
    return float((per_token.double() * weights).sum()), float(weights.sum())


def test_packing_and_padding_give_the_same_loss(tok: QwenTokenizer) -> None:
    convs, stats = tokenize_conversations(
        tok, _convs(12), masking="finetune_py", max_tokens=SEQ + 1, system="Hi."
    )
    assert stats.kept == 12 and stats.supervised_tokens > 0
    padded = SFTDataset(convs, seq_length=SEQ, mode="padding", pad_id=tok.eod_id, seed=0)
    packed = SFTDataset(convs, seq_length=SEQ, mode="packing", pad_id=tok.eod_id, seed=0)
    assert len(padded) == 12 and len(packed) <= 12 / 2  # several conversations per packed sample
    assert packed.stats()["fill"] > padded.stats()["fill"]
    cfg = ModelConfig(name="t", num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=176,
                      seq_length=SEQ)
    with single_process_megatron(seed=7):
        model = build_model(cfg, 384, backend="local").eval()
        loss_pad, n_pad = _losses(model, padded)
        loss_pack, n_pack = _losses(model, packed)
    assert n_pad == n_pack == stats.supervised_tokens - 0  # first tokens are never targets
    assert loss_pack / n_pack == pytest.approx(loss_pad / n_pad, rel=1e-5)


def test_packed_sample_layout(tok: QwenTokenizer) -> None:
    convs, _ = tokenize_conversations(tok, _convs(6), masking="paper", max_tokens=SEQ + 1, system="Hi.")
    ds = SFTDataset(convs, seq_length=SEQ, mode="packing", pad_id=tok.eod_id, seed=0)
    sample = next(p for p in ds.samples if len(p.members) >= 2)
    s = ds.build(sample)
    first = len(convs[sample.members[0]])
    # positions restart at the second conversation; it never attends to the first
    assert s["position_ids"][first].item() == 0 and s["position_ids"][first - 1].item() == first - 1
    assert bool(s["attention_mask"][0, first, first - 1]) and not bool(s["attention_mask"][0, first, first])
    assert s["loss_mask"][first - 1].item() == 0  # no target across the boundary
    # epochs: seeded permutations, reproducible
    again = SFTDataset(convs, seq_length=SEQ, mode="packing", pad_id=tok.eod_id, seed=0, num_samples=10)
    assert all(torch.equal(again[i]["tokens"], again[i]["tokens"]) for i in range(10))


def test_overlong_truncated_at_turn_or_dropped(tok: QwenTokenizer) -> None:
    long_follow_up = [
        {"role": "user", "content": "What is 1 + 2?"},
        {"role": "assistant", "content": "1 + 2 = 3."},
        {"role": "user", "content": "x" * 300},
        {"role": "assistant", "content": "y"},
    ]
    too_long = [{"role": "user", "content": "z" * 400}, {"role": "assistant", "content": "w"}]
    kept, stats = tokenize_conversations(tok, [long_follow_up, too_long], masking="paper", max_tokens=SEQ + 1)
    assert (stats.conversations, stats.kept, stats.truncated, stats.dropped_overlong) == (2, 1, 1, 0 + 1)
    assert len(kept[0]) <= SEQ + 1 and tok.decode(kept[0].ids.tolist()).endswith("1 + 2 = 3.<|im_end|>\n")
    _, dropped = tokenize_conversations(
        tok, [long_follow_up, too_long], masking="paper", max_tokens=SEQ + 1, overlong="drop"
    )
    assert (dropped.kept, dropped.truncated, dropped.dropped_overlong) == (0, 0, 2)
