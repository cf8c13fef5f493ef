"""Our tiktoken tokenizer ↔ a Hugging Face `tokenizer.json` that `AutoTokenizer` loads with no custom code.

Qwen's tokenizer (report §2.2; spec §2.2–2.4) is byte-level BPE over tiktoken ranks with Qwen's
pre-tokenization pattern (single digits), NFC normalization and the special tokens right after the regular
ranks. The same tokenizer in the `tokenizers` library is:

- normalizer NFC; pre-tokenizer = Split(Qwen's pattern, isolated) then ByteLevel (no extra regex);
- a BPE model whose vocabulary is every rank's bytes written with the byte-level (GPT-2) alphabet, and
  whose merges are, for every multi-byte token t, each split t = a + b with a and b in the vocabulary,
  ordered by rank(t). tiktoken merges, at each step, the adjacent pair whose concatenation has the lowest
  rank; a merge list ranked by the rank of the result is exactly that rule. `ignore_merges` mirrors
  tiktoken's shortcut of taking a whole pre-token that is itself in the vocabulary;
- the special tokens as added tokens; the ChatML chat template of spec §7.2.

One difference is deliberate and documented: an HF tokenizer always parses special-token text in its
input, while `QwenTokenizer.encode` treats it as plain text unless allowed (see tokenizer/encoding.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from qwen_hpc.alignment.chatml import CHATML_TEMPLATE
from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.tokenizer.pattern import ENDOFTEXT, IM_END, IM_START, QWEN_PAT_STR


@cache
def byte_alphabet() -> dict[int, str]:
    """The byte-level BPE alphabet: printable Latin-1 bytes stand for themselves, the rest map above 255."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _to_unicode(token: bytes) -> str:
    alphabet = byte_alphabet()
    return "".join(alphabet[b] for b in token)


def _from_unicode(text: str) -> bytes:
    inverse = {c: b for b, c in byte_alphabet().items()}
    return bytes(inverse[c] for c in text)


def bpe_merges(ranks: Mapping[bytes, int]) -> list[tuple[str, str]]:
    """Every split of every multi-byte token into two vocabulary tokens, by rank of the merged token."""
    found = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                found.append((rank, ranks[left], ranks[right], left, right))
    found.sort()
    return [(_to_unicode(a), _to_unicode(b)) for _, _, _, a, b in found]


def tokenizer_json(tokenizer: QwenTokenizer) -> str:
    """The `tokenizer.json` text of `tokenizer` (a `tokenizers.Tokenizer` serialised)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    ranks = tokenizer.mergeable_ranks
    model = models.BPE(
        vocab={_to_unicode(t): r for t, r in ranks.items()},
        merges=bpe_merges(ranks),
        ignore_merges=True,
        fuse_unk=False,
        byte_fallback=False,
    )
    hf = Tokenizer(model)
    hf.normalizer = normalizers.NFC()
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PAT_STR), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.decoder = decoders.ByteLevel()
    specials = sorted(tokenizer.special_tokens.items(), key=lambda kv: kv[1])
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, _ in specials])
    text = hf.to_str()
    # add_special_tokens numbers added tokens after the vocabulary; check they landed on our ids.
    added = {t["content"]: t["id"] for t in json.loads(text)["added_tokens"]}
    if added != dict(specials):
        raise ValueError("special tokens are not right after the regular ranks; cannot express them in HF")
    return text


def tokenizer_files(tokenizer: QwenTokenizer, *, model_max_length: int) -> dict[str, str]:
    """{file name: text} of the HF tokenizer folder: tokenizer.json, tokenizer_config.json, specials map."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "bos_token": None,
        "eos_token": ENDOFTEXT,
        "pad_token": ENDOFTEXT,
        "unk_token": None,
        "additional_special_tokens": [IM_START, IM_END],
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "padding_side": "left",
        "chat_template": CHATML_TEMPLATE,
    }
    special_map = {
        "eos_token": ENDOFTEXT,
        "pad_token": ENDOFTEXT,
        "additional_special_tokens": [IM_START, IM_END],
    }
    return {
        "tokenizer.json": tokenizer_json(tokenizer),
        "tokenizer_config.json": json.dumps(config, indent=2, ensure_ascii=False) + "\n",
        "special_tokens_map.json": json.dumps(special_map, indent=2) + "\n",
        "chat_template.jinja": CHATML_TEMPLATE,
    }


def tokenizer_from_hf(path: str | Path) -> QwenTokenizer:
    """Read a byte-level BPE `tokenizer.json` (as written above, or Qwen2's) back into a `QwenTokenizer`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("model", {}).get("type") != "BPE":
        raise ValueError(f"{path}: not a BPE tokenizer")
    ranks = {_from_unicode(token): rank for token, rank in data["model"]["vocab"].items()}
    specials = {t["content"]: t["id"] for t in data.get("added_tokens", []) if t.get("special")}
    return QwenTokenizer(ranks, specials, name=Path(path).parent.name or "hf")
