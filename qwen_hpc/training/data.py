"""Pretraining data: Megatron-Core `GPTDataset`s over a weighted blend of token files (Qwen report §2.2, §2.4).

Each source is a Megatron `IndexedDataset` (`<prefix>.bin` / `<prefix>.idx`, written by the tokens stage);
the blend is a list of `(prefix, weight)` pairs. `BlendedMegatronDatasetBuilder` cuts every source into
train/valid/test by `train.split`, packs documents into `seq_length + 1`-token samples (documents are
concatenated with the EOD token between them, as in the Qwen report's packing), shuffles, and mixes the
sources by weight. Those index arrays are cached as `.npy` files under a cache directory:

- `build_index_caches` builds them in a separate single-process CPU step, before training is launched, so
  that the ranks of a multi-node job never race to write them;
- `build_datasets` (called by training and evaluation on every rank) then only reads them. If they are
  missing it falls back to Megatron's own "rank 0 builds, the others wait and read" logic, which needs a
  filesystem shared by all ranks.

`MicroBatchIterator` reads samples strictly in order, as Megatron's `MegatronPretrainingSampler` does:
global batch *k* is samples `[k·G, (k+1)·G)`, split into micro-batches across data-parallel ranks. Starting it
at `consumed_samples` resumes exactly where an interrupted run stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.parallel import rank, world_of_one
from qwen_hpc.training.config import TrainConfig
from qwen_hpc.utils import io
from qwen_hpc.utils.hashing import hash_obj

log = logging.getLogger(__name__)

Blend = Sequence[tuple[str, float]]


class TokenIds:
    """The part of a tokenizer Megatron's GPTDataset reads: the EOD id and the vocabulary size.

    No `pad` attribute: Megatron then uses -1 as pad id, which never occurs in the data, so no token is masked.
    """

    def __init__(self, eod: int, vocab_size: int) -> None:
        self.eod = int(eod)
        self.vocab_size = int(vocab_size)

    @property
    def unique_identifiers(self) -> dict[str, Any]:
        # Part of the hash that names the cache files.
        return {"class": "qwen_hpc.TokenIds", "eod": self.eod, "vocab_size": self.vocab_size}


@dataclass(frozen=True)
class SplitSizes:
    train: int
    valid: int
    test: int = 0

    def as_list(self) -> list[int]:
        return [self.train, self.valid, self.test]


def split_sizes(train: TrainConfig) -> SplitSizes:
    """Samples to index per split: every training step's global batch, and one fixed validation set.

    Every evaluation reads the same first `eval_iters × global_batch_size` validation samples, so evaluations
    at different steps (and after a resume) are comparable.
    """
    valid = train.eval_iters * train.global_batch_size if train.split_weights[1] > 0 else 0
    return SplitSizes(train=train.train_iters * train.global_batch_size, valid=valid)


def check_blend(blend: Blend) -> None:
    if not blend:
        raise ValueError("blend must list at least one (path_prefix, weight) pair")
    for prefix, weight in blend:
        if weight <= 0:
            raise ValueError(f"blend weight {weight} for {prefix} must be positive")
        for suffix in (".bin", ".idx"):
            if not Path(f"{prefix}{suffix}").is_file():
                raise FileNotFoundError(f"blend source {prefix}{suffix} does not exist")


def dataset_config(
    model: ModelConfig,
    train: TrainConfig,
    blend: Blend,
    *,
    eod_id: int,
    n_vocab: int,
    cache_dir: str | Path,
) -> GPTDatasetConfig:
    prefixes = [str(p) for p, _ in blend]
    # One source: no blending layer (weights None); several: Megatron's weighted BlendedDataset.
    weights = None if len(blend) == 1 else [float(w) for _, w in blend]
    return GPTDatasetConfig(
        random_seed=train.seed,
        sequence_length=model.seq_length,
        blend=(prefixes, weights),
        split=train.split,
        path_to_cache=str(cache_dir),
        tokenizer=TokenIds(eod_id, n_vocab),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,  # one causal mask is built once per step instead
        mmap_bin_files=True,
    )


def marker_path(config: GPTDatasetConfig, sizes: SplitSizes) -> Path:
    """`<cache_dir>/index_caches-<hash>.json`: written once the caches of exactly this configuration exist."""
    key = {
        "blend": config.blend,
        "seq_length": config.sequence_length,
        "seed": config.random_seed,
        "split": config.split,
        "sizes": sizes.as_list(),
        "tokenizer": config.tokenizer.unique_identifiers,
    }
    return Path(config.path_to_cache) / f"index_caches-{hash_obj(key)}.json"


def _build(config: GPTDatasetConfig, sizes: SplitSizes) -> list[Any]:
    builder = BlendedMegatronDatasetBuilder(GPTDataset, sizes.as_list(), lambda: True, config)
    return builder.build()


def build_index_caches(
    model: ModelConfig,
    train: TrainConfig,
    blend: Blend,
    *,
    eod_id: int,
    n_vocab: int,
    cache_dir: str | Path,
) -> dict[str, Any]:
    """Build (or verify) the shuffled sample indices of every split, once, in this process.

    Run as its own CPU step before training, with the model and train configs training will use (the cache
    files are keyed by them). Returns a summary, also written to `marker_path(...)`.
    """
    check_blend(blend)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    sizes = split_sizes(train)
    config = dataset_config(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
    with world_of_one():
        datasets = _build(config, sizes)
    summary = {
        "blend": [[str(p), float(w)] for p, w in blend],
        "seq_length": model.seq_length,
        "seed": train.seed,
        "split": train.split,
        "requested_samples": sizes.as_list(),
        "built_samples": [len(d) if d is not None else 0 for d in datasets],
        "files": sorted(p.name for p in cache_dir.glob("*.npy")),
    }
    if rank() != 0:
        return summary
    io.write_json(marker_path(config, sizes), summary)
    return summary


def build_datasets(
    model: ModelConfig,
    train: TrainConfig,
    blend: Blend,
    *,
    eod_id: int,
    n_vocab: int,
    cache_dir: str | Path,
    sizes: SplitSizes | None = None,
) -> tuple[Any, Any]:
    """(train, valid) datasets on every rank; reads the caches `build_index_caches` wrote."""
    check_blend(blend)
    sizes = sizes or split_sizes(train)
    config = dataset_config(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
    if not marker_path(config, sizes).is_file() and rank() == 0:
        log.warning(
            "no prebuilt index caches for this configuration in %s: building them now (rank 0 first; needs a "
            "filesystem shared by all ranks). Run build_index_caches as a separate step to avoid this.",
            cache_dir,
        )
    with world_of_one():
        datasets = _build(config, sizes)
    return datasets[0], datasets[1]


BATCH_KEYS = ("tokens", "labels", "loss_mask", "position_ids", "attention_mask")


class MicroBatchIterator:
    """Micro-batches of one data-parallel rank, in dataset order, starting after `consumed_samples`.

    Global batch k holds dataset samples [k·G, (k+1)·G) with G = micro_batch_size × dp_size × num_microbatches;
    each block of `micro_batch_size × dp_size` consecutive samples is one micro-batch step, of which this rank
    takes slice `dp_rank`. Every rank of a tensor/pipeline group reads the same samples itself (no broadcast).
    """

    def __init__(
        self,
        dataset: Any,
        *,
        micro_batch_size: int,
        dp_rank: int = 0,
        dp_size: int = 1,
        consumed_samples: int = 0,
        limit: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.micro_batch_size = micro_batch_size
        self.dp_rank = dp_rank
        self.dp_size = dp_size
        self.consumed_samples = consumed_samples
        self.limit = len(dataset) if limit is None else min(limit, len(dataset))

    def __iter__(self) -> MicroBatchIterator:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        step = self.micro_batch_size * self.dp_size
        if self.consumed_samples + step > self.limit:
            raise StopIteration
        start = self.consumed_samples + self.dp_rank * self.micro_batch_size
        samples = [self.dataset[i] for i in range(start, start + self.micro_batch_size)]
        self.consumed_samples += step
        # tokens, labels, loss_mask, position_ids (+ attention_mask for packed SFT samples)
        return {key: torch.stack([s[key] for s in samples]) for key in samples[0] if key in BATCH_KEYS}
