import base64

import pytest
from tiktoken.load import load_tiktoken_bpe

from qwen_hpc.tokenizer.ranks import RanksFileError, read_ranks, write_ranks


def test_write_read_round_trip(tmp_path, trained_ranks):
    path = write_ranks(tmp_path / "sub" / "tiny.tiktoken", trained_ranks)
    assert read_ranks(path) == trained_ranks
    assert load_tiktoken_bpe(str(path)) == trained_ranks  # tiktoken's own loader agrees
    first = path.read_text().splitlines()[0]
    assert first == "AA== 0"  # base64 of the byte 0x00, rank 0
    assert [p.name for p in path.parent.iterdir()] == ["tiny.tiktoken"]  # no temporary left behind


def test_official_file_reads_like_tiktoken(qwen_tiktoken_path):
    ranks = read_ranks(qwen_tiktoken_path)
    assert len(ranks) == 151643 and sorted(ranks.values()) == list(range(151643))
    assert ranks == load_tiktoken_bpe(str(qwen_tiktoken_path))


def write_lines(tmp_path, *lines: str):
    path = tmp_path / "bad.tiktoken"
    path.write_text("".join(line + "\n" for line in lines))
    return path


B64 = {t: base64.b64encode(t).decode() for t in (b"a", b"b", b"ab")}


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (
            (f"{B64[b'a']} 0", f"{B64[b'b']}", f"{B64[b'ab']} 2"),
            r"bad\.tiktoken:2: expected 'base64token rank'",
        ),
        ((f"{B64[b'a']} 0", f"{B64[b'b']} 1 x"), r":2: expected"),
        ((f"{B64[b'a']} 0", "!!notbase64!! 1"), r":2: token '!!notbase64!!' is not valid base64"),
        ((f"{B64[b'a']} 0", f"{B64[b'b']} one"), r":2: rank 'one' is not a non-negative integer"),
        ((f"{B64[b'a']} 0", f"{B64[b'b']} -1"), r":2: rank '-1'"),
        ((f"{B64[b'a']} 0", "", f"{B64[b'a']} 2"), r":3: token b'a' already has rank 0"),
        ((f"{B64[b'a']} 0", f"{B64[b'b']} 0"), r":2: rank 0 already used on line 1"),
        (("", "  "), r"no ranks found"),
    ],
)
def test_malformed_file_names_the_line(tmp_path, lines, match):
    with pytest.raises(RanksFileError, match=match):
        read_ranks(write_lines(tmp_path, *lines))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_ranks(tmp_path / "absent.tiktoken")


def test_write_rejects_bad_mappings(tmp_path):
    with pytest.raises(RanksFileError, match="rank 0 is given to both"):
        write_ranks(tmp_path / "x.tiktoken", {b"a": 0, b"b": 0})
    with pytest.raises(RanksFileError, match="non-empty bytes"):
        write_ranks(tmp_path / "x.tiktoken", {b"": 0})
    assert not (tmp_path / "x.tiktoken").exists()
