import json

from qwen_hpc.tokenizer.evaluate import compression_report

from .helpers import CHINESE, CODE, ENGLISH


def test_compression_report(tmp_path, tiny_tokenizer):
    data = tmp_path / "data"
    (data / "shards").mkdir(parents=True)
    for name, text in (("en", ENGLISH), ("zh", CHINESE), ("code", CODE)):
        for k in range(2):
            (data / "shards" / f"{name}-{k}.jsonl").write_text(
                "".join(json.dumps({"text": text}) + "\n" for _ in range(5))
            )
    manifest = {
        "text_key": "text",
        "sources": [
            {
                "name": n,
                "shards": [f"shards/{n}-0.jsonl", f"shards/{n}-1.jsonl"],
                "documents": 10,
                "weight": 1.0,
            }
            for n in ("en", "zh", "code")
        ],
    }
    (data / "manifest.json").write_text(json.dumps(manifest))

    out = tmp_path / "tok" / "compression.json"
    shards = {entry["name"]: [data / s for s in entry["shards"]] for entry in manifest["sources"]}
    report = compression_report(tiny_tokenizer, shards, out, max_docs_per_source=7)
    assert set(report) == {"en", "zh", "code"}
    details = json.loads(out.read_text())["sources"]
    assert details["zh"]["documents"] == 7  # capped, across both shards
    assert details["en"]["tokens"] == 7 * len(tiny_tokenizer.encode(ENGLISH))
    assert report["en"] == round(len(ENGLISH) / len(tiny_tokenizer.encode(ENGLISH)), 4) > 2  # trained on it
    assert details["zh"]["bytes_per_token"] > details["zh"]["chars_per_token"]
