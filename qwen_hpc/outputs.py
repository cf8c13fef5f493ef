"""What each stage leaves for the next: the file names of its outputs and one typed reader per kind.

A stage never imports another stage; it reads an upstream stage's folder only through the readers here
(manifest, blend, tokenizer, checkpoint folder, metrics, marker), so the format of each output is one fact
shared by the stage that writes it and every stage that reads it. The stage that writes an output records
its paths in its `_SUCCESS.json` (`StageResult.outputs`, relative to the stage folder).

This module sits beside the stages (entry layer): it may use domain readers (`data.manifest`,
`tokenizer.encoding`), and domain packages never import it — they receive typed values instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen_hpc.data.manifest import ManifestSource
from qwen_hpc.data.manifest import read_manifest as _read_manifest_file
from qwen_hpc.utils.io import read_json, read_jsonl

if TYPE_CHECKING:  # tiktoken loads on first use only: every stage module imports this one
    from qwen_hpc.tokenizer.encoding import TokenizerFiles

MARKER = "_SUCCESS.json"
STARTED = "_STARTED.json"
MANIFEST = "manifest.json"  # data
BLEND = "blend.json"  # tokens
SPECIAL_TOKENS = "special_tokens.json"  # tokenizer
CHECKPOINTS = "checkpoints"  # pretrain (and import_hf's model/)
METRICS = "metrics.jsonl"  # every stage


# ------------------------------------------------------------------------------------------------ data


def manifest_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / MANIFEST


def read_manifest(data_dir: str | Path) -> tuple[list[ManifestSource], str]:
    """The data stage's sources (absolute shard paths, documents, upsampling weight) and the text key."""
    path = manifest_path(data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"data manifest {path} does not exist (run the data stage)")
    return _read_manifest_file(path)


# ------------------------------------------------------------------------------------------- tokenizer


def tokenizer_files(tokenizer_dir: str | Path, name: str) -> TokenizerFiles:
    """The tokenizer stage's `<name>.tiktoken` + `special_tokens.json`; a missing file is named."""
    from qwen_hpc.tokenizer.encoding import TokenizerFiles

    files = TokenizerFiles(Path(tokenizer_dir) / f"{name}.tiktoken", Path(tokenizer_dir) / SPECIAL_TOKENS)
    for path in (files.ranks, files.special_tokens):
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {path} does not exist (run the tokenizer stage)")
    return files


# ---------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class BlendSource:
    name: str
    prefix: Path  # absolute path of the indexed dataset, without .bin/.idx
    tokens: int
    documents: int
    upsample: float
    weight: float


@dataclass(frozen=True)
class Blend:
    """The tokens stage's blend: one indexed dataset per source with its sampling weight."""

    sources: tuple[BlendSource, ...]
    eod_id: int
    n_vocab: int

    @property
    def pairs(self) -> list[tuple[str, float]]:
        """(prefix, weight) of every source that has tokens: what Megatron's GPTDataset samples from."""
        return [(str(s.prefix), s.weight) for s in self.sources if s.tokens]


def read_blend(tokens_dir: str | Path) -> Blend:
    """The tokens stage's `blend.json`, prefixes made absolute."""
    tokens_dir = Path(tokens_dir)
    path = tokens_dir / BLEND
    if not path.is_file():
        raise FileNotFoundError(f"blend {path} does not exist (run the tokens stage)")
    blend = read_json(path)
    sources = tuple(
        BlendSource(
            name=e["name"],
            prefix=tokens_dir / e["prefix"],
            tokens=int(e["tokens"]),
            documents=int(e["documents"]),
            upsample=float(e["upsample"]),
            weight=float(e["weight"]),
        )
        for e in blend["sources"]
    )
    return Blend(sources, eod_id=int(blend["eod_id"]), n_vocab=int(blend["n_vocab"]))


# -------------------------------------------------------------------------------------------- pretrain


def checkpoints_dir(stage_dir: str | Path) -> Path:
    """The checkpoint root of a training stage (`iter_*` folders + `latest`)."""
    return Path(stage_dir) / CHECKPOINTS


# ------------------------------------------------------------------------------------- metrics, marker


def read_metrics(stage_dir: str | Path) -> list[dict[str, Any]]:
    """A stage's `metrics.jsonl` records in the order they were logged, each step once.

    A job killed after its last checkpoint has logged steps that the resumed job computes and logs again
    (the file is appended to, never rewritten, so nothing a killed job wrote is lost); a plot of both would
    run back in time. A record of the same step with the same keys as an earlier one replaces it, in the
    later record's place; records of one step with other keys (an eval next to a train record) both stay."""
    records = read_jsonl(Path(stage_dir) / METRICS)
    last: dict[tuple, int] = {}
    for index, record in enumerate(records):
        if "step" in record:
            last[(record["step"], frozenset(k for k in record if k != "time"))] = index
    keep = set(last.values())
    return [r for i, r in enumerate(records) if "step" not in r or i in keep]


@dataclass(frozen=True)
class Marker:
    """A finished stage's `_SUCCESS.json`."""

    stage: str
    lineage: str | None
    metrics: dict[str, Any]
    outputs: dict[str, str]
    wall_s: float | None
    raw: dict[str, Any]

    def output(self, stage_dir: str | Path, key: str) -> Path:
        """The absolute path of output `key` the stage recorded."""
        if key not in self.outputs:
            raise KeyError(f"stage {self.stage!r} recorded no output {key!r} (it has {sorted(self.outputs)})")
        return Path(stage_dir) / self.outputs[key]


def read_marker(stage_dir: str | Path) -> Marker:
    """The `_SUCCESS.json` of a finished stage."""
    path = Path(stage_dir) / MARKER
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the stage has not finished")
    raw = read_json(path)
    return Marker(
        stage=raw.get("stage", Path(stage_dir).name),
        lineage=raw.get("lineage"),
        metrics=raw.get("metrics", {}),
        outputs=raw.get("outputs", {}),
        wall_s=raw.get("wall_s"),
        raw=raw,
    )
