"""Language ID, Gopher/C4 rules and the learned quality model, each dropping under its own reason; Parquet
input; the mixture's upsampling and token budget."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from qwen_hpc.data import curate
from qwen_hpc.data.config import LanguageIDConfig, MixtureConfig, QualityModelConfig, QualityRulesConfig
from qwen_hpc.data.langid import identify
from qwen_hpc.utils.io import read_json

from .helpers import config, jsonl_source, read_jsonl, shard_records, write_lines

EN = ("The committee met on Tuesday to discuss the budget for the new library, and most members agreed "
      "that the reading rooms should stay open later in the evening during the winter months.")
FR = ("Le comité s'est réuni mardi pour discuter du budget de la nouvelle bibliothèque, et la plupart des "
      "membres ont convenu que les salles de lecture devraient rester ouvertes plus tard le soir.")
ZH = "委员会周二开会讨论了新图书馆的预算，大多数成员同意阅览室在冬季应该晚上开放更长时间。"


def test_language_id_uses_the_shipped_fasttext_model() -> None:
    assert identify(EN)[0] == "en" and identify(FR)[0] == "fr" and identify(ZH)[0] == "zh"
    assert identify(EN)[1] > 0.8


def test_language_filter_respects_hints_and_skips_code(tmp_path: Path) -> None:
    web = write_lines(tmp_path / "web.jsonl", [{"text": t} for t in (EN, FR, ZH)])
    en_only = write_lines(tmp_path / "en.jsonl", [{"text": EN + " Again."}, {"text": ZH + "。"}])
    code = write_lines(tmp_path / "code.jsonl", [{"text": "def f(x):\n    return x  # étude\n"}])
    sources = [jsonl_source("web", web), jsonl_source("en", en_only, language="en"),
               jsonl_source("code", code, kind="code")]
    out = tmp_path / "out"
    stats = curate(config(language_id=LanguageIDConfig()), sources, out, progress=False)
    assert stats.dropped == {"language": 2}
    dropped = sorted((d["source"], d["line"], d["detail"].split(" (")[0]) for d in read_jsonl(out / "dropped.jsonl"))
    assert dropped == [("en", 2, "identified zh"), ("web", 2, "identified fr")]
    kept = {r["text"]: r["meta"] for r in shard_records(out)}
    assert kept[ZH]["language"] == "zh" and "language" not in kept["def f(x):\n    return x  # étude\n"]


RULE_CASES = {
    "min_words": "Too short.",
    "symbol_ratio": "# heading # more # and # more # hash # marks # everywhere # here # now",
    "bullet_lines": "\n".join(f"- item number {i} of the list" for i in range(12)),
    "ellipsis_lines": "\n".join(f"and then the story went on {i}..." for i in range(8)),
    "duplicate_lines": "\n".join(["buy the best shoes in the town today"] * 6 + [EN]),
    "alpha_words": "the 12345 23456 34567 45678 56789 67890 78901 89012 90123 and of 11111 22222 33333 44444",
    "stop_words": "Quantum chromodynamics describes strong interactions between quarks gluons hadrons mesons.",
    "lorem_ipsum": EN + " Lorem ipsum dolor sit amet.",
    "mean_word_length": "a b c d e f g h i j k l m n o p the and of to",
}


@pytest.mark.parametrize("rule", sorted(RULE_CASES))
def test_each_quality_rule_drops_under_its_own_name(rule: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [{"text": RULE_CASES[rule]}, {"text": EN}])
    stats = curate(config(quality_rules=QualityRulesConfig()), [jsonl_source("web", path)], tmp_path / "o",
                   progress=False)
    assert stats.dropped == {f"quality_rule:{rule}": 1} and stats.kept == 1


def test_quality_model_is_trained_recorded_and_applied(tmp_path: Path) -> None:
    rng = random.Random(0)
    spam = "cheap pills casino win free money click here best deals viagra loans crypto bonus".split()
    places = ("museum", "school", "park", "theatre", "garden", "station", "market", "hall", "court", "bridge")
    reference = [EN.replace("library", w) for w in places] * 2
    ref_path = write_lines(tmp_path / "ref.jsonl", [{"text": t} for t in reference])
    pool = [" ".join(rng.choice(spam) for _ in range(40)) for _ in range(30)] + [EN, EN.replace("library", "hall")]
    web = write_lines(tmp_path / "web.jsonl", [{"text": t} for t in pool])
    cfg = config(quality_model=QualityModelConfig(positives=[str(ref_path)], pool_docs=100))
    out = tmp_path / "out"
    stats = curate(cfg, [jsonl_source("web", web)], out, progress=False)
    assert stats.dropped == {"quality_model": 30} and stats.kept == 2
    record = read_json(out / "stats.json")["quality_model"]
    assert record["positive_documents"] == 20 and record["pool_documents"] == 31  # "hall" is a positive too
    assert record["pool"]["positives_left_out"] == 1
    assert record["threshold"] == 0.5 and record["positives"]["paths"] == [str(ref_path)]
    assert record["heldout_accuracy"] >= 0.5 and record["heldout_roc_auc"] >= 0.5
    assert read_json(out / "quality_model.json") == record
    assert all(d["detail"].startswith("P(good) ") for d in read_jsonl(out / "dropped.jsonl"))


def test_parquet_rows_and_bad_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["first row", None, "third row"], "url": ["a", "b", "c"]}),
                   tmp_path / "good.parquet")
    pq.write_table(pa.table({"other": ["x", "y"]}), tmp_path / "nocol.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    from qwen_hpc.data.config import SourceConfig

    source = SourceConfig(name="pq", paths=[str(tmp_path / "*.parquet")], format="parquet", text_key="content")
    out = tmp_path / "out"
    stats = curate(config(), [source], out, progress=False)
    assert stats.read == 6 and stats.kept == 2
    assert stats.dropped == {"malformed": 3, "unreadable": 1}
    where = {(Path(d["file"]).name, d["line"]): d["reason"] for d in read_jsonl(out / "dropped.jsonl")}
    assert where == {("broken.parquet", 0): "unreadable", ("good.parquet", 2): "malformed",
                     ("nocol.parquet", 1): "malformed", ("nocol.parquet", 2): "malformed"}
    assert {r["id"]: r["meta"]["url"] for r in shard_records(out)} == {"pq/1:1": "a", "pq/1:3": "c"}


def test_mixture_upsampling_and_token_budget(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [{"text": f"{i:04d} " + "x" * 396} for i in range(100)])  # 10k tokens
    b = write_lines(tmp_path / "b.jsonl", [{"text": f"{i:04d} " + "y" * 396} for i in range(10)])  # 1k tokens
    sources = [jsonl_source("big", a), jsonl_source("small", b, upsample=4.0)]
    plain = curate(config(), sources, tmp_path / "o1", progress=False)
    manifest = read_json(tmp_path / "o1" / "manifest.json")
    assert [s["weight"] for s in manifest["sources"]] == [1.0, 4.0] and plain.kept == 110
    # budget 7k tokens for 10k + 4x1k upsampled: scale 0.5 -> big keeps half its documents, small 2 epochs
    budget = curate(config(mixture=MixtureConfig(target_tokens=7000)), sources, tmp_path / "o2", progress=False)
    manifest = read_json(tmp_path / "o2" / "manifest.json")
    big, small = manifest["sources"]
    assert small["weight"] == pytest.approx(2.0, abs=0.01) and small["documents"] == 10
    assert big["weight"] == 1.0 and budget.dropped == {"over_budget": 100 - big["documents"]}
    assert 48 <= big["documents"] <= 50
    assert budget.read == budget.kept + sum(budget.dropped.values())
