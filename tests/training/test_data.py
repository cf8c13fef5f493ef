"""Datasets from a blend, prebuilt index caches, and the resumable in-order micro-batch iterator."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from qwen_hpc.training.data import (
    MicroBatchIterator,
    build_datasets,
    build_index_caches,
    dataset_config,
    marker_path,
    split_sizes,
)

from .helpers import EOD, N_VOCAB, tiny_model, train_cfg


class FakeDataset:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        t = torch.full((3,), i)
        return {"tokens": t, "labels": t, "loss_mask": torch.ones(3), "position_ids": torch.arange(3)}


def _ids(it: MicroBatchIterator, n: int) -> list[list[int]]:
    return [next(it)["tokens"][:, 0].tolist() for _ in range(n)]


def test_iterator_splits_global_batches_across_data_parallel_ranks() -> None:
    ds = FakeDataset(100)
    r0 = MicroBatchIterator(ds, micro_batch_size=2, dp_rank=0, dp_size=2)
    r1 = MicroBatchIterator(ds, micro_batch_size=2, dp_rank=1, dp_size=2)
    assert _ids(r0, 3) == [[0, 1], [4, 5], [8, 9]]
    assert _ids(r1, 3) == [[2, 3], [6, 7], [10, 11]]
    assert r0.consumed_samples == 12


def test_iterator_resumes_at_consumed_samples() -> None:
    ds = FakeDataset(20)
    full = _ids(MicroBatchIterator(ds, micro_batch_size=2), 6)
    resumed = MicroBatchIterator(ds, micro_batch_size=2, consumed_samples=6)
    assert _ids(resumed, 3) == full[3:]
    with pytest.raises(StopIteration):
        _ids(MicroBatchIterator(ds, micro_batch_size=2, consumed_samples=18), 2)


def test_prebuilt_index_caches_are_read_by_training(blend, tmp_path: Path, caplog) -> None:
    model, train = tiny_model(), train_cfg()
    summary = build_index_caches(model, train, blend, eod_id=EOD, n_vocab=N_VOCAB, cache_dir=tmp_path)
    sizes = split_sizes(train)
    config = dataset_config(model, train, blend, eod_id=EOD, n_vocab=N_VOCAB, cache_dir=tmp_path)
    assert marker_path(config, sizes).is_file()
    assert not marker_path(config, dataclasses.replace(sizes, valid=sizes.valid + 1)).is_file()
    assert summary["requested_samples"] == [sizes.train, sizes.valid, 0]
    assert summary["built_samples"][0] >= sizes.train and summary["built_samples"][1] >= sizes.valid
    n_files = len(list(tmp_path.glob("*.npy")))
    with caplog.at_level(logging.WARNING, logger="qwen_hpc.training.data"):
        train_ds, valid_ds = build_datasets(
            model, train, blend, eod_id=EOD, n_vocab=N_VOCAB, cache_dir=tmp_path
        )
    assert "no prebuilt index caches" not in caplog.text
    assert len(list(tmp_path.glob("*.npy"))) == n_files  # nothing new written
    sample = train_ds[0]
    assert sample["tokens"].shape == (model.seq_length,)
    assert torch.equal(sample["tokens"][1:], sample["labels"][:-1])  # labels are inputs shifted by one
    assert int(sample["tokens"].max()) < N_VOCAB and len(valid_ds) >= sizes.valid


def test_missing_source_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        build_index_caches(
            tiny_model(),
            train_cfg(),
            [(str(tmp_path / "nope"), 1.0)],
            eod_id=0,
            n_vocab=8,
            cache_dir=tmp_path,
        )
