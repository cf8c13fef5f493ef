import gzip
import json

import numpy as np
import pytest

from qwen_hpc.launch.array import process_pool_map
from qwen_hpc.tokenizer.indexed import encode_jsonl_to_indexed, smallest_dtype

from .helpers import SAMPLES, corpus_texts

indexed_dataset = pytest.importorskip("megatron.core.datasets.indexed_dataset")


def test_smallest_dtype_follows_megatron():
    for n in (300, 4096, 65499, 65500, 151851, 152064):
        assert smallest_dtype(n) == indexed_dataset.DType.optimal_dtype(n)
    assert smallest_dtype(4096 + 208) == np.uint16 and smallest_dtype(151851) == np.int32
    with pytest.raises(ValueError):
        smallest_dtype(2**31)


@pytest.fixture
def shards(tmp_path):
    docs_a = list(SAMPLES.values()) + ["", 'a "<|endoftext|>" in text']
    docs_b = corpus_texts(3)
    a = tmp_path / "in" / "a.jsonl"
    a.parent.mkdir()
    a.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs_a)) + "\n")
    b = tmp_path / "in" / "b.jsonl.gz"
    with gzip.open(b, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs_b)
    return [a, b], docs_a + docs_b


def files_args(files):
    return files.ranks, files.special_tokens


def read_back(prefix):
    ds = indexed_dataset.IndexedDataset(str(prefix))
    return [ds[i].tolist() for i in range(len(ds))], ds


def test_indexed_round_trip(tmp_path, shards, tiny_tokenizer):
    paths, docs = shards
    files = tiny_tokenizer.save(tmp_path / "tok", "tiny")
    out = tmp_path / "out" / "train_text_document"
    stats = encode_jsonl_to_indexed(paths, "text", files.ranks, files.special_tokens, out)

    expected = [tiny_tokenizer.encode(d) + [tiny_tokenizer.eod_id] for d in docs]
    got, ds = read_back(out)
    assert got == expected
    assert ds.index.dtype == np.uint16 and stats["dtype"] == "uint16"
    assert list(ds.document_indices) == list(range(len(docs) + 1))
    assert stats["documents"] == len(docs) and stats["tokens"] == sum(map(len, expected))
    assert stats["empty_documents"] == 1 and stats["shards"] == 2
    assert [s["documents"] for s in stats["per_shard"]] == [len(SAMPLES) + 2, len(docs) - len(SAMPLES) - 2]
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "train_text_document.bin",
        "train_text_document.idx",
    ]


def test_workers_do_not_change_the_output(tmp_path, shards, tiny_tokenizer):
    paths, _ = shards
    files = tiny_tokenizer.save(tmp_path / "tok", "tiny")
    one = encode_jsonl_to_indexed(paths, "text", *files_args(files), tmp_path / "one")
    two = encode_jsonl_to_indexed(
        paths,
        "text",
        str(files.ranks),
        str(files.special_tokens),
        tmp_path / "two",
        map_fn=process_pool_map(2),
    )
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"one{ext}").read_bytes() == (tmp_path / f"two{ext}").read_bytes()
    assert one["tokens"] == two["tokens"]


def test_without_eod_and_overwrite(tmp_path, shards, tiny_tokenizer):
    paths, docs = shards
    files = tiny_tokenizer.save(tmp_path / "tok", "tiny")
    out = tmp_path / "noeod"
    encode_jsonl_to_indexed(paths, "text", *files_args(files), out)  # overwritten below
    stats = encode_jsonl_to_indexed(paths, "text", *files_args(files), out, append_eod=False)
    got, _ = read_back(out)
    assert got == [tiny_tokenizer.encode(d) for d in docs if d]  # the empty document is skipped
    assert stats["empty_documents"] == 1 and stats["documents"] == len(docs) - 1


def test_official_vocabulary_uses_int32(tmp_path, qwen_tiktoken_path):
    shard = tmp_path / "zh.jsonl"
    shard.write_text(json.dumps({"body": "通义千问是阿里巴巴开发的大语言模型"}, ensure_ascii=False) + "\n")
    stats = encode_jsonl_to_indexed(
        [shard], "body", qwen_tiktoken_path, None, tmp_path / "zh"
    )
    got, ds = read_back(tmp_path / "zh")
    assert stats["dtype"] == "int32" and ds.index.dtype == np.int32
    assert len(got[0]) == 11 and got[0][-1] == 151643


def test_bad_input_names_file_and_line(tmp_path, tiny_tokenizer):
    files = tiny_tokenizer.save(tmp_path / "tok", "tiny")
    shard = tmp_path / "bad.jsonl"
    shard.write_text('{"text": "ok"}\n{"content": "no text key"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: record has no 'text' field"):
        encode_jsonl_to_indexed([shard], "text", *files_args(files), tmp_path / "bad")
    shard.write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: field 'text' is int"):
        encode_jsonl_to_indexed([shard], "text", *files_args(files), tmp_path / "bad")
    shard.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        encode_jsonl_to_indexed([shard], "text", *files_args(files), tmp_path / "bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "tok"]  # nothing half-written
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        encode_jsonl_to_indexed(
            [tmp_path / "missing.jsonl"], "text", *files_args(files), tmp_path / "bad"
        )


def test_shard_tasks_resume_and_merge_in_order(tmp_path, shards, tiny_tokenizer):
    """The stage's halves: one task per shard writes a part + marker; a finished part is not redone (a
    requeued array task resumes); merging the parts gives what the one-call helper gives."""
    from qwen_hpc.tokenizer.indexed import encode_shard_task, merge_parts, plan_shard_tasks

    paths, docs = shards
    files = tiny_tokenizer.save(tmp_path / "tok", "tiny")
    tasks = plan_shard_tasks(paths, tmp_path / "parts", "text", files, dtype=np.uint16)
    assert [t.out_prefix for t in tasks] == [str(tmp_path / "parts" / f"{i:06d}") for i in range(2)]
    first = [encode_shard_task(t) for t in tasks]
    assert [s["documents"] for s in first] == [len(SAMPLES) + 2, len(docs) - len(SAMPLES) - 2]
    paths[1].rename(tmp_path / "moved.jsonl.gz")  # its part is done: the input is not read again
    assert encode_shard_task(tasks[1]) == first[1]
    merge_parts([t.out_prefix for t in reversed(tasks)], tmp_path / "reversed", np.uint16)
    got, _ = read_back(tmp_path / "reversed")
    expected = [tiny_tokenizer.encode(d) + [tiny_tokenizer.eod_id] for d in docs]
    assert got == expected[len(SAMPLES) + 2 :] + expected[: len(SAMPLES) + 2]
    (tmp_path / "parts" / "000000.bin").write_bytes(b"\0\0")
    with pytest.raises(ValueError, match="bin size does not match"):
        merge_parts([t.out_prefix for t in tasks], tmp_path / "broken", np.uint16)
    assert not (tmp_path / "broken.idx").exists() and not (tmp_path / "broken.bin").exists()


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_index_is_byte_identical_to_megatrons_builder(tmp_path, dtype):
    from qwen_hpc.tokenizer.indexed import write_megatron_index

    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 60000, size=n) for n in (1, 5, 300, 2, 70000, 1)]
    builder = indexed_dataset.IndexedDatasetBuilder(str(tmp_path / "theirs.bin"), dtype=dtype)
    for doc in docs:
        builder.add_document(doc, [len(doc)])
    builder.finalize(str(tmp_path / "theirs.idx"))
    write_megatron_index(tmp_path / "ours.idx", np.array([len(d) for d in docs]), dtype)
    assert (tmp_path / "ours.idx").read_bytes() == (tmp_path / "theirs.idx").read_bytes()


def test_tasks_planned_without_a_dtype_store_the_vocabularys_smallest(tmp_path, shards, tiny_tokenizer):
    """The `tokens` stage plans before it reads the vocabulary: each task then picks the dtype itself."""
    from qwen_hpc.tokenizer.indexed import encode_shard_task, merge_parts, plan_shard_tasks

    paths, _ = shards
    files = tiny_tokenizer.save(tmp_path / "tok", "tiny")
    tasks = plan_shard_tasks(paths, tmp_path / "parts", "text", files)
    assert {t.dtype for t in tasks} == {None}
    for task in tasks:
        encode_shard_task(task)
    merge_parts([t.out_prefix for t in tasks], tmp_path / "planned", np.uint16)
    encode_jsonl_to_indexed(paths, "text", *files_args(files), tmp_path / "helper")
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"planned{ext}").read_bytes() == (tmp_path / f"helper{ext}").read_bytes()


def test_cached_tokenizer_is_loaded_once_and_again_when_its_files_change(tmp_path, tiny_tokenizer):
    from qwen_hpc.tokenizer.encoding import QwenTokenizer
    from qwen_hpc.tokenizer.indexed import cached_tokenizer, forget_cached_tokenizer

    files = tiny_tokenizer.save(tmp_path / "tok", "tiny")
    first = cached_tokenizer(files)
    assert cached_tokenizer(files) is first and first.n_vocab == tiny_tokenizer.n_vocab
    forget_cached_tokenizer()
    assert cached_tokenizer(files) is not first
    smaller = QwenTokenizer({bytes([b]): b for b in range(256)}, name="bytes")
    smaller.save(tmp_path / "tok", "tiny")  # another vocabulary at the same paths (a rerun tokenizer stage)
    assert cached_tokenizer(files).n_vocab == smaller.n_vocab != tiny_tokenizer.n_vocab
