"""A checkpoint folder that describes itself: `model_config.json` + `checkpoints/` + `tokenizer/`.

`import_hf` writes one, and so does `pretrain` (its stage folder), so that `export_hf`, `init_checkpoint`
and the inference commands can take any such folder on its own: the dimensions come from the folder's
`model_config.json` and the tokenizer from its `tokenizer/` folder, never from the current run's `model`
or `tokenizer` stages (issue 12 item 2). A path inside the folder (its `checkpoints/` root or one
`iter_*` checkpoint) names the same folder and pins which checkpoint to read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.tokenizer.encoding import SPECIAL_TOKENS_FILE, QwenTokenizer, TokenizerFiles
from qwen_hpc.utils.io import write_bytes, write_text

MODEL_CONFIG = "model_config.json"
CHECKPOINTS = "checkpoints"
TOKENIZER = "tokenizer"


@dataclass(frozen=True)
class CheckpointFolder:
    """Where the parts of one self-describing checkpoint folder are."""

    root: Path  # the folder holding model_config.json
    checkpoint: Path  # what to load: the `checkpoints/` root (its `latest`) or one `iter_*` folder

    def model_config(self) -> ModelConfig:
        return read_model_config(self.root / MODEL_CONFIG)

    def tokenizer_files(self) -> TokenizerFiles | None:
        """The folder's tokenizer (`tokenizer/<name>.tiktoken` + `special_tokens.json`), or None."""
        return tokenizer_files_in(self.root / TOKENIZER)


def read_model_config(path: Path) -> ModelConfig:
    try:
        return ModelConfig(**json.loads(path.read_text()))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a model config ({exc})") from exc


def tokenizer_files_in(directory: str | Path) -> TokenizerFiles | None:
    """The one `*.tiktoken` file of `directory` (with its `special_tokens.json` when present), or None."""
    directory = Path(directory)
    ranks = sorted(directory.glob("*.tiktoken")) if directory.is_dir() else []
    if not ranks:
        return None
    if len(ranks) > 1:
        raise ValueError(f"{directory}: several *.tiktoken files ({', '.join(p.name for p in ranks)})")
    specials = directory / SPECIAL_TOKENS_FILE
    return TokenizerFiles(ranks[0], specials if specials.is_file() else None)


def load_tokenizer(path: str | Path) -> QwenTokenizer:
    """A tokenizer given explicitly: a folder with one `*.tiktoken` (+ `special_tokens.json`), a
    `*.tiktoken` file, or a Hugging Face folder / `tokenizer.json`."""
    path = Path(path)
    if path.is_file() and path.suffix == ".tiktoken":
        specials = path.with_name(SPECIAL_TOKENS_FILE)
        return TokenizerFiles(path, specials if specials.is_file() else None).load()
    if path.is_dir() and (files := tokenizer_files_in(path)) is not None:
        return files.load()
    hf = path / "tokenizer.json" if path.is_dir() else path
    if hf.is_file() and hf.suffix == ".json":
        from qwen_hpc.interop.hf_tokenizer import tokenizer_from_hf

        return tokenizer_from_hf(hf)
    raise FileNotFoundError(f"{path}: no *.tiktoken file and no tokenizer.json")


def open_checkpoint_folder(path: str | Path) -> CheckpointFolder:
    """The folder `path` is (model_config.json inside) or lies in (its `checkpoints/` or an `iter_*`)."""
    path = Path(path)
    for root in (path, path.parent, path.parent.parent):
        if (root / MODEL_CONFIG).is_file():
            checkpoint = path if root != path else path / CHECKPOINTS
            if not checkpoint.exists():
                raise FileNotFoundError(f"{root}: has {MODEL_CONFIG} but no {CHECKPOINTS}/ folder")
            return CheckpointFolder(root, checkpoint)
    raise FileNotFoundError(
        f"{path}: not a checkpoint folder: no {MODEL_CONFIG} in it or in the two folders above it "
        f"(folders written by import_hf and pretrain have one)"
    )


def write_folder_description(
    root: str | Path, cfg: ModelConfig, tokenizer: TokenizerFiles | QwenTokenizer | None
) -> None:
    """Write `model_config.json` and `tokenizer/` (`tokenizer.tiktoken` + `special_tokens.json`) into `root`,
    each file atomically."""
    root = Path(root)
    write_text(root / MODEL_CONFIG, json.dumps(asdict(cfg), indent=2) + "\n")
    if isinstance(tokenizer, QwenTokenizer):
        tokenizer.save(root / TOKENIZER, "tokenizer")
    elif tokenizer is not None:
        # one name whatever the tokenizer stage called it, as import_hf writes it
        write_bytes(root / TOKENIZER / "tokenizer.tiktoken", tokenizer.ranks.read_bytes())
        if tokenizer.special_tokens is not None:
            write_bytes(root / TOKENIZER / SPECIAL_TOKENS_FILE, tokenizer.special_tokens.read_bytes())


def model_fingerprint(path: str | Path) -> str:
    """What identifies a model folder given by path: a folder the project wrote (model_config.json) by its
    `fingerprint`; a Hugging Face folder by its config.json and the name, size and time of its other files."""
    from qwen_hpc.utils.hashing import hash_obj

    path = Path(path)
    if not (path / MODEL_CONFIG).is_file() and (path / "config.json").is_file():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name != "config.json")
        return hash_obj(
            {
                "config": (path / "config.json").read_text(),
                "files": [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files],
            }
        )
    return fingerprint(path)


def fingerprint(path: str | Path) -> str:
    """What identifies the checkpoint `path` names right now: which checkpoint, when it was written, and
    the folder's description. A new `latest` or a rewritten model_config.json changes it."""
    from qwen_hpc.training.checkpoint import resolve_checkpoint
    from qwen_hpc.utils.hashing import hash_obj

    folder = open_checkpoint_folder(path)
    checkpoint = resolve_checkpoint(folder.checkpoint)
    return hash_obj(
        {
            "checkpoint": str(checkpoint.resolve()),
            "written": (checkpoint / "metadata.json").stat().st_mtime_ns,
            "model_config": (folder.root / MODEL_CONFIG).read_text(),
        }
    )
