"""`qwen-hpc agent` as a user runs it: a model folder, tools, questions on stdin."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import QWEN, REPO, child_env

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from qwen_hpc.interop.hf_tokenizer import tokenizer_files
    from tests.inference.helpers import hf_model, tiny_tokenizer

    out = tmp_path_factory.mktemp("agent_model")
    hf_model(seed=5).save_pretrained(out, safe_serialization=True)
    for name, text in tokenizer_files(tiny_tokenizer(), model_max_length=128).items():
        (out / name).write_text(text, encoding="utf-8")
    return out


def _agent(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QWEN, "agent", *args], input=stdin, capture_output=True, text=True, cwd=REPO,
                          env=child_env(), timeout=600)


def test_agent_command_runs_the_react_loop(hf_folder) -> None:
    proc = _agent([f"model={hf_folder}", "tools=calculator,code_interpreter", "max_new_tokens=12",
                   "max_steps=2"], "What is 17 * 23?\n\n")
    assert proc.returncode == 0, proc.stderr
    assert "final (" in proc.stdout  # a random model: no tool call, or the step limit, but a clean answer line


def test_agent_command_rejects_unknown_tools_and_options(hf_folder) -> None:
    bad_tool = _agent([f"model={hf_folder}", "tools=teleporter"], "")
    assert bad_tool.returncode == 2 and "unknown tool 'teleporter'" in bad_tool.stderr
    bad_opt = _agent([f"model={hf_folder}", "warp=9"], "")
    assert bad_opt.returncode == 2 and "unknown options ['warp']" in bad_opt.stderr
