"""The embedded corpus: a default pretraining corpus that exists on any machine with the project installed,
assembled at run time from text the Python installation and the project's dependencies already carry.
Nothing is downloaded and nothing is stored in the repository.

Two sources, written to `<out_dir>/prose.jsonl` and `<out_dir>/code.jsonl`, one JSON object per line:
`{"text": ..., "origin": ...}`, where `origin` says where the text came from.

`prose` — English documentation, in this order:
  1. `pydoc_topics:<topic>`: the Python language-reference topics that `help("for")` prints
     (the standard library's `pydoc_data.topics`), all ~80 of them, sorted by topic;
  2. `metadata:<distribution>`: the long description (usually the README) from the METADATA of every
     distribution installed in site-packages, sorted by name (this project's own is left out);
  3. `docstring:<module>`: one document per module file: the module's docstring and every class and
     function docstring in source order, each under a `module|class|def <qualified name>` line. Modules
     come from the standard library and from the dependencies in `DOCSTRING_PACKAGES` (numpy, torch,
     matplotlib, megatron, tiktoken, tqdm, regex — those installed), taken one from each in turn, each
     package's files in a fixed pseudo-random order (sorted by SHA-256 of the name), so a size limit
     samples every package evenly instead of the alphabetically first folders.
`code` — standard-library Python source files (`stdlib:<relative path>`), whole files, in the same kind of
  fixed pseudo-random order. Files over `MAX_CODE_FILE_CHARS` characters and files that are not UTF-8
  are left out.

Everywhere: test suites (`test`, `tests`, `testing`, `idle_test` folders, `test_*` files), the stdlib's
`encodings/` (generated codec tables) and `pydoc_data/` (already used as prose) are skipped, as are
documents under `MIN_DOC_CHARS` characters. Each source stops at `max_docs_per_source` documents or once it
holds `max_chars_per_source` characters, whichever comes first. The defaults (5,000 documents, 3,000,000
characters) give about 3 MB per source, enough to train a ~4k-token BPE vocabulary and a tiny model for a few
hundred steps. The bytes are a pure function of the installation (Python version and installed packages):
file lists are sorted, nothing depends on time, locale, the working directory or `sys.path`, and origins
are relative names, not absolute paths. `<out_dir>/embedded.json` records what went in (counts, sizes,
SHA-256 of each file, which packages were found, what was skipped and why).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import re
import site
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from qwen_hpc.data.config import EMBEDDED_SOURCE_NAMES, SourceConfig
from qwen_hpc.utils.io import atomic_path, write_json

PROSE, CODE = EMBEDDED_SOURCE_NAMES
DOCSTRING_PACKAGES = ("numpy", "torch", "matplotlib", "megatron", "tiktoken", "tqdm", "regex")
MIN_DOC_CHARS = 64
MAX_CODE_FILE_CHARS = 100_000
EXCLUDED_DISTRIBUTIONS = frozenset({"qwen-hpc"})
_SKIP_DIRS = frozenset(
    {"test", "tests", "testing", "idle_test", "__pycache__", "site-packages", "dist-packages"}
)
# encodings/: generated codec tables; pydoc_data/: text, used as prose already
_STDLIB_SKIP_TOP = frozenset({"encodings", "pydoc_data"})


@dataclass
class _Budget:
    """Collects (origin, text) documents for one source until a limit is reached; counts what it skipped."""

    max_docs: int
    max_chars: int
    docs: list[tuple[str, str]] = field(default_factory=list)
    chars: int = 0
    parts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def full(self) -> bool:
        return len(self.docs) >= self.max_docs or self.chars >= self.max_chars

    def add(self, part: str, origin: str, text: str) -> None:
        if len(text.strip()) < MIN_DOC_CHARS:
            self.skipped["shorter_than_min_doc_chars"] += 1
            return
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a string escape: not writable as UTF-8
            self.skipped["not_encodable"] += 1
            return
        self.docs.append((origin, text))
        self.chars += len(text)
        self.parts[part] += 1


def build_embedded_corpus(
    out_dir: Path, max_docs_per_source: int, *, max_chars_per_source: int = 3_000_000
) -> list[SourceConfig]:
    """Write `<out_dir>/prose.jsonl`, `<out_dir>/code.jsonl` and `embedded.json`; return the two sources."""
    if max_docs_per_source < 1 or max_chars_per_source < 1:
        raise ValueError("max_docs_per_source and max_chars_per_source must be >= 1")
    out_dir = Path(out_dir)
    stdlib, site_dirs = _roots()
    packages = _find_packages(site_dirs)

    prose = _Budget(max_docs_per_source, max_chars_per_source)
    _fill(prose, "pydoc_topics", _topic_docs())
    _fill(prose, "metadata", _description_docs(site_dirs, prose))
    stdlib_files = [
        (rel, p) for rel, p in _python_files(stdlib, "") if rel.split("/")[0] not in _STDLIB_SKIP_TOP
    ]
    if not prose.full:  # listing torch's files takes a moment: only when docstrings are needed
        groups = [_hash_order(stdlib_files)] + [
            _hash_order(_python_files(pkg, pkg.name)) for pkg in packages.values()
        ]
        _fill(prose, "docstring", _docstring_docs(_round_robin(groups), prose))

    code = _Budget(max_docs_per_source, max_chars_per_source)
    _fill(code, "stdlib", _code_docs(_hash_order(stdlib_files), code))

    summary = {
        "python": sys.version.split()[0],
        "docstring_packages": {name: name in packages for name in DOCSTRING_PACKAGES},
        "limits": {"max_docs_per_source": max_docs_per_source, "max_chars_per_source": max_chars_per_source},
        "sources": {},
    }
    sources = []
    for name, budget in ((PROSE, prose), (CODE, code)):
        path = out_dir / f"{name}.jsonl"
        data = "".join(
            json.dumps({"text": t, "origin": o}, ensure_ascii=False) + "\n" for o, t in budget.docs
        )
        blob = data.encode("utf-8")
        with atomic_path(path) as tmp:
            tmp.write_bytes(blob)
        summary["sources"][name] = {
            "file": path.name,
            "documents": len(budget.docs),
            "chars": budget.chars,
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "parts": dict(sorted(budget.parts.items())),
            "skipped": dict(sorted(budget.skipped.items())),
        }
        sources.append(
            SourceConfig(
                name=name,
                paths=[str(path)],
                format="jsonl",
                text_key="text",
                language="en" if name == PROSE else None,
                kind="code" if name == CODE else "text",
            )
        )
    write_json(out_dir / "embedded.json", summary)
    return sources


def _fill(budget: _Budget, part: str, docs: Iterable[tuple[str, str]]) -> None:
    for origin, text in docs:
        if budget.full:
            return
        budget.add(part, origin, text)


# ---------------------------------------------------------------------------------------------------- where


def _roots() -> tuple[Path, list[Path]]:
    """The standard library folder and the site-packages folders, independent of cwd and sys.path."""
    paths = sysconfig.get_paths()
    stdlib = Path(paths["stdlib"]).resolve()
    candidates = [paths["purelib"], paths["platlib"], *site.getsitepackages()]
    site_dirs: list[Path] = []
    for c in candidates:
        p = Path(c).resolve()
        if p.is_dir() and p not in site_dirs:
            site_dirs.append(p)
    return stdlib, site_dirs


def _find_packages(site_dirs: list[Path]) -> dict[str, Path]:
    """Folder of each installed package of DOCSTRING_PACKAGES (first site folder that has it)."""
    found = {}
    for name in DOCSTRING_PACKAGES:
        for d in site_dirs:
            if (d / name).is_dir():
                found[name] = d / name
                break
    return found


def _python_files(root: Path, prefix: str) -> list[tuple[str, Path]]:
    """(relative posix name, path) of the .py files under root, tests skipped, sorted by name."""
    files = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("test_")]
        rel_folder = Path(folder).relative_to(root).as_posix()
        for filename in filenames:
            if not filename.endswith(".py") or filename.startswith("test_") or filename == "conftest.py":
                continue
            rel = filename if rel_folder == "." else f"{rel_folder}/{filename}"
            files.append((f"{prefix}/{rel}" if prefix else rel, Path(folder) / filename))
    return sorted(files)


def _hash_order(files: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """A fixed pseudo-random order, so a size limit takes an even sample instead of the first folders."""
    return sorted(files, key=lambda item: hashlib.sha256(item[0].encode("utf-8")).digest())


def _round_robin(groups: list[list[tuple[str, Path]]]) -> list[tuple[str, Path]]:
    """One file from each group in turn (stdlib, numpy, torch, ...), so no package crowds out the others."""
    merged = []
    for i in range(max((len(g) for g in groups), default=0)):
        merged.extend(g[i] for g in groups if i < len(g))
    return merged


def _module_name(rel: str) -> str:
    parts = rel[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


# ---------------------------------------------------------------------------------------------------- prose


def _topic_docs() -> Iterator[tuple[str, str]]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions package pydoc_data separately
        return
    for name in sorted(topics):
        yield f"pydoc_topics:{name}", topics[name]


def _description_docs(site_dirs: list[Path], budget: _Budget) -> Iterator[tuple[str, str]]:
    dists: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=[str(d) for d in site_dirs]):
        try:
            meta = dist.metadata
            name = re.sub(r"[-_.]+", "-", meta["Name"] or "").lower()
            body = meta.get_payload() or ""  # type: ignore[attr-defined]
            if not isinstance(body, str) or not body.strip():
                body = _header_description(meta.get("Description") or "")
        except (OSError, UnicodeDecodeError, TypeError):  # a broken METADATA file
            budget.skipped["metadata_unreadable"] += 1
            continue
        if name and name not in EXCLUDED_DISTRIBUTIONS and name not in dists:
            dists[name] = body
    for name in sorted(dists):
        if dists[name].strip() and dists[name].strip() != "UNKNOWN":
            yield f"metadata:{name}", dists[name]


def _header_description(value: str) -> str:
    """Old METADATA puts the description in a header whose continuation lines start with '        |'."""
    return "\n".join(re.sub(r"^ {7,8}\|", "", line) for line in value.splitlines())


def _docstring_docs(files: list[tuple[str, Path]], budget: _Budget) -> Iterator[tuple[str, str]]:
    for rel, path in files:
        if budget.full:  # stop parsing (the expensive part) as soon as the budget is spent
            return
        try:
            tree = ast.parse(path.read_bytes(), filename=rel)
        except (SyntaxError, ValueError, OSError):
            budget.skipped["docstring_unparsable"] += 1
            continue
        module = _module_name(rel)
        blocks = list(_docstrings(tree, module, "module"))
        if blocks:
            yield f"docstring:{module}", "\n\n".join(blocks) + "\n"


def _docstrings(node: ast.AST, qualname: str, kind: str) -> Iterator[str]:
    doc = ast.get_docstring(node, clean=True)  # type: ignore[arg-type]
    if doc:
        yield f"{kind} {qualname}\n\n{doc}"
    for child in getattr(node, "body", []):
        if isinstance(child, ast.ClassDef):
            yield from _docstrings(child, f"{qualname}.{child.name}", "class")
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _docstrings(child, f"{qualname}.{child.name}", "def")


# ----------------------------------------------------------------------------------------------------- code


def _code_docs(files: list[tuple[str, Path]], budget: _Budget) -> Iterator[tuple[str, str]]:
    for rel, path in files:
        if budget.full:
            return
        try:
            text = path.read_bytes().decode("utf-8")
        except (UnicodeDecodeError, OSError):
            budget.skipped["code_not_utf8_or_unreadable"] += 1
            continue
        if len(text) > MAX_CODE_FILE_CHARS:
            budget.skipped["code_over_max_file_chars"] += 1
            continue
        yield f"stdlib:{rel}", text
