from __future__ import annotations

import json

import numpy as np
from megatron.core.datasets.indexed_dataset import IndexedDataset

from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.utils.io import read_json


def test_tokens_stage_writes_megatron_indexed_datasets(small_run) -> None:
    out = small_run.stage("tokens")
    blend = read_json(out / "blend.json")
    assert abs(sum(s["weight"] for s in blend["sources"]) - 1.0) < 1e-9
    tok_dir = small_run.run_dir / "tokenizer"
    tok = QwenTokenizer.from_files(tok_dir / "qwen_tiny.tiktoken", tok_dir / "special_tokens.json")
    assert blend["eod_id"] == tok.eod_id
    manifest = read_json(small_run.run_dir / "data" / "manifest.json")
    for source in blend["sources"]:
        ds = IndexedDataset(str(out / source["prefix"]))
        assert len(ds) == source["documents"]
        first_shard = next(s for s in manifest["sources"] if s["name"] == source["name"])["shards"][0]
        first_doc = json.loads((small_run.run_dir / "data" / first_shard).read_text().splitlines()[0])["text"]
        np.testing.assert_array_equal(ds[0], [*tok.encode(first_doc), tok.eod_id])
        assert int(ds.sequence_lengths.sum()) == source["tokens"]
