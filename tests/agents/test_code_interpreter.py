"""The code interpreter: a stateful Jupyter kernel inside the sandbox (spec §9.4; issue: state, figures,
uploads, recovery from a hung or dead kernel, no network)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from qwen_hpc.agents.code_interpreter import CodeInterpreter, KernelLimits, code_interpreter_tool
from qwen_hpc.agents.loop import run_react
from qwen_hpc.agents.tools import ToolRegistry
from qwen_hpc.sandbox import isolation

pytest.importorskip("ipykernel")


@pytest.fixture(scope="module")
def interpreter() -> Iterator[CodeInterpreter]:
    with CodeInterpreter(KernelLimits(cell_wall_s=15, memory_mb=1536)) as ci:
        yield ci


def test_state_persists_and_uploads_are_readable(interpreter: CodeInterpreter) -> None:
    interpreter.upload("data.csv", "a,b\n1,2\n3,4\n")
    assert interpreter.run("import pandas as pd\ndf = pd.read_csv('data.csv')\ntotal = int(df.b.sum())").ok
    cell = interpreter.run("print(total * 10)\ntotal + 1")
    assert (cell.ok, cell.stdout, cell.result) == (True, "60\n", "7")
    assert "NameError" in interpreter.run("undefined_name").error


def test_figures_are_saved_with_their_data(interpreter: CodeInterpreter) -> None:
    cell = interpreter.run("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                           "ax.plot([1, 2, 3], [4, 5, 9])\nax.bar(['x', 'y'], [2.5, 7])\nplt.show()")
    assert cell.ok and len(cell.figures) == 1
    figure = cell.figures[0]
    with open(figure["path"], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    kinds = {s["kind"]: s for s in figure["series"]}
    assert kinds["line"]["y"] == [4.0, 5.0, 9.0] and kinds["bar"]["y"] == [2.5, 7.0]
    assert "![fig-0](figure-" in cell.observation()
    assert interpreter.run("plt.get_fignums()").result == "[]"  # closed after being saved


def test_no_network_from_inside_the_kernel(interpreter: CodeInterpreter) -> None:
    cell = interpreter.run("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=2)")
    assert not cell.ok and ("unreachable" in cell.error or "refused" in cell.error)
    if isolation().network_isolated:
        cell = interpreter.run("import socket\n[a for a in socket.if_nameindex()]")
        assert "eth" not in cell.result


def test_hung_cell_and_dead_kernel_restart_and_the_next_call_works() -> None:
    with CodeInterpreter(KernelLimits(cell_wall_s=3, memory_mb=1536)) as ci:
        ci.upload("keep.txt", "kept")
        assert ci.run("x = 1").ok
        hung = ci.run("while True:\n    pass")
        assert hung.restarted and "budget" in hung.error
        assert ci.run("print('x' in dir(), open('keep.txt').read())").stdout == "False kept\n"
        died = ci.run("import os\nos._exit(3)")
        assert died.restarted and "died" in died.error
        bomb = ci.run("blob = bytearray(16 * 1024 ** 3)")
        assert not bomb.ok and "MemoryError" in bomb.error
        assert ci.run("print('alive')").stdout == "alive\n"
        assert ci.restarts == 2


def test_the_tool_in_the_react_loop(interpreter: CodeInterpreter) -> None:
    segments = iter([
        "I will compute it.\nAction: code_interpreter\nAction Input: ```py\nprint(sum(range(101)))\n```",
        " I now know the final answer\nFinal Answer: 5050",
    ])
    run = run_react(lambda m, p, s: next(segments), ToolRegistry([code_interpreter_tool(interpreter)]), "sum 0..100")
    assert run.answer == "5050" and run.steps[0].ok and run.steps[0].observation == "5050"
    assert json.dumps(run.steps[0].arguments).count("print") == 1
