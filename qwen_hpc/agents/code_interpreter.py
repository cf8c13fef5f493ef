"""The code-interpreter tool: a stateful Python session on a Jupyter kernel inside the sandbox.

As Qwen-Agent does it, the kernel is `ipykernel` driven by `jupyter_client`; here it is started through
`qwen_hpc.sandbox` (no network, rlimits, its own directory, a scrubbed environment), and the kernel and its
client talk over Unix sockets in that directory (ZeroMQ's `ipc` transport), which need no network. Each
cell has a wall-time budget: a cell that runs past it, or a kernel that dies (a memory bomb, a crash), is
answered with an error observation and a fresh kernel, so the next call works. Variables persist across
calls while the kernel lives; uploaded files stay in the directory across restarts.

Figures: matplotlib runs on the Agg backend; after every cell the open figures are saved as PNG files in
`figures/` and their data series (line y-values, bar heights, scatter points) are read back, so a
visualization task can be checked by its data, not only by a picture.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_hpc.agents.tools import Tool

log = logging.getLogger(__name__)

_FIGURE_MARK = "__QWEN_HPC_FIGURES__"
_FIGURE_DUMP = r"""
def __qwen_hpc_dump_figures(directory, start):
    import json, os, sys
    if "matplotlib.pyplot" not in sys.modules:
        print("@MARK@[]")
        return
    import matplotlib.pyplot as plt
    from matplotlib.container import BarContainer
    def _num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return str(v)

    out = []
    for n, num in enumerate(plt.get_fignums()):
        fig = plt.figure(num)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "figure-%d.png" % (start + n))
        fig.savefig(path)
        series = []
        for ax in fig.axes:
            for line in ax.get_lines():
                series.append({"kind": "line", "x": [_num(v) for v in line.get_xdata()],
                               "y": [float(v) for v in line.get_ydata()]})
            for cont in ax.containers:
                if isinstance(cont, BarContainer):
                    horizontal = getattr(cont, "orientation", "vertical") == "horizontal"
                    series.append({"kind": "bar", "y": [float(p.get_width() if horizontal else p.get_height())
                                                        for p in cont.patches]})
            for coll in ax.collections:
                offsets = coll.get_offsets()
                if len(offsets):
                    series.append({"kind": "scatter", "points": [[float(a), float(b)] for a, b in offsets]})
        out.append({"path": path, "series": series})
        plt.close(fig)
    print("@MARK@" + json.dumps(out))
""".replace("@MARK@", _FIGURE_MARK)


@dataclass
class CellResult:
    ok: bool
    stdout: str = ""
    result: str = ""  # the text/plain of the cell's last expression
    error: str = ""
    figures: list[dict[str, Any]] = field(default_factory=list)  # {"path", "series"}
    restarted: bool = False

    def observation(self) -> str:
        """What the model reads back (Qwen-Agent style: output, then the error, then the figure files)."""
        parts = [p for p in (self.stdout.rstrip("\n"), self.result) if p]
        if self.error:
            parts.append(f"Error: {self.error}")
        parts += [f"![fig-{n}]({Path(f['path']).name})" for n, f in enumerate(self.figures)]
        return "\n".join(parts) if parts else "Finished execution."


@dataclass(frozen=True)
class KernelLimits:
    """The kernel's budget: memory per process, processes, file size; `cell_wall_s` per cell (the kernel
    is restarted when a cell runs past it) and `kernel_cpu_s` over the kernel's whole life."""

    cell_wall_s: float = 30.0
    kernel_cpu_s: float = 3600.0
    memory_mb: int = 2048
    file_size_mb: int = 64
    nproc: int = 64
    startup_s: float = 60.0


class CodeInterpreter:
    def __init__(self, limits: KernelLimits | None = None, workdir: str | Path | None = None) -> None:
        self.limits = limits or KernelLimits()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="qwen-interpreter-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._kernel: Any = None  # qwen_hpc.sandbox.SandboxProcess
        self._client: Any = None
        self._figures = 0
        self.restarts = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> CodeInterpreter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        from qwen_hpc.sandbox import SandboxLimits, spawn_python

        run_dir = self.workdir / ".kernel"
        run_dir.mkdir(exist_ok=True)
        conn_file, _ = write_connection_file(str(run_dir / "connection.json"), transport="ipc",
                                             ip=str(run_dir / "kernel"))
        limits = SandboxLimits(cpu_s=self.limits.kernel_cpu_s, wall_s=1e9, memory_mb=self.limits.memory_mb,
                               file_size_mb=self.limits.file_size_mb, nproc=self.limits.nproc)
        launch = ("from ipykernel.kernelapp import launch_new_instance\n"
                  f"launch_new_instance(argv=['-f', {conn_file!r}, '--HistoryManager.enabled=False'])\n")
        self._kernel = spawn_python(launch, workdir=str(self.workdir), limits=limits,
                                    env={"MPLBACKEND": "Agg"})
        client = BlockingKernelClient()
        client.load_connection_file(conn_file)
        client.start_channels()
        try:
            self._wait_ready(client)
        except RuntimeError:
            client.stop_channels()
            self._kernel.kill()
            raise
        self._client = client
        self._execute(_FIGURE_DUMP, self.limits.startup_s)

    def _wait_ready(self, client: Any) -> None:
        """Ask for kernel_info until its reply comes on the shell channel AND its status messages on iopub.

        jupyter_client's own wait trusts a heartbeat that a kernel still importing has not sent yet; and a
        ZeroMQ subscription takes a moment to reach the kernel, so until an iopub message has arrived, the
        "idle" that ends a cell could be lost and the cell would seem to hang."""
        deadline = time.monotonic() + self.limits.startup_s
        while time.monotonic() < deadline:
            if not self._kernel.alive():
                raise RuntimeError(f"the sandboxed kernel exited: {self._kernel.describe_exit()}")
            msg_id = client.kernel_info()
            replied = heard = False
            until = time.monotonic() + 2.0
            while time.monotonic() < until and not (replied and heard):
                try:
                    if not replied:
                        reply = client.get_shell_msg(timeout=0.2)
                        replied = reply["parent_header"].get("msg_id") == msg_id
                    if not heard:
                        msg = client.get_iopub_msg(timeout=0.2)
                        heard = msg["parent_header"].get("msg_id") == msg_id
                except queue.Empty:
                    continue
            if replied and heard:
                return
        raise RuntimeError(f"the sandboxed kernel did not answer within {self.limits.startup_s:g} s: "
                           f"{self._kernel.stderr()}")

    def close(self) -> None:
        if self._client is not None:
            self._client.stop_channels()
            self._client = None
        if self._kernel is not None:
            self._kernel.kill()
            self._kernel = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        self.restarts += 1
        if self._client is not None:
            self._client.stop_channels()
            self._client = None
        if self._kernel is not None:
            self._kernel.kill()
            self._kernel = None
        shutil.rmtree(self.workdir / ".kernel", ignore_errors=True)
        self.start()

    # ------------------------------------------------------------------ use

    def upload(self, name: str, content: str | bytes) -> Path:
        target = (self.workdir / name).resolve()
        if not target.is_relative_to(self.workdir.resolve()):
            raise ValueError(f"upload {name!r} would land outside the interpreter's directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        self._kernel_owns(target)
        return target

    def run(self, code: str) -> CellResult:
        if self._client is None:
            self.start()
        try:
            cell = self._execute(code, self.limits.cell_wall_s)
        except _KernelGone as gone:
            self.restart()
            return CellResult(ok=False, error=str(gone), restarted=True)
        dump = self._execute(f"__qwen_hpc_dump_figures('figures', {self._figures})", self.limits.startup_s)
        for line in dump.stdout.splitlines():
            if line.startswith(_FIGURE_MARK):
                cell.figures = json.loads(line[len(_FIGURE_MARK):])
                for fig in cell.figures:
                    fig["path"] = str(self.workdir / fig["path"])
        self._figures += len(cell.figures)
        return cell

    # ------------------------------------------------------------------ internals

    def _kernel_owns(self, path: Path) -> None:
        if self._kernel is not None:
            self._kernel.give(path)

    def _execute(self, code: str, wall_s: float) -> CellResult:
        client = self._client
        msg_id = client.execute(code, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + wall_s
        out, result, error = [], "", ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _KernelGone(f"the cell ran past its {wall_s:g} s budget; the kernel was restarted")
            if not self._kernel.alive():
                raise _KernelGone(f"the kernel died ({self._kernel.describe_exit()}); it was restarted")
            try:
                msg = client.get_iopub_msg(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                result = content["data"].get("text/plain", result)
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return CellResult(ok=not error, stdout="".join(out), result=result, error=error)


class _KernelGone(RuntimeError):
    pass


def strip_code_fence(text: str) -> str:
    """Qwen-Agent's `code` args format: the code inside triple backticks (a language tag allowed)."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text


def code_interpreter_tool(interpreter: CodeInterpreter) -> Tool:
    def run(code: str) -> str:
        return interpreter.run(strip_code_fence(code)).observation()

    return Tool(
        name_for_model="code_interpreter",
        name_for_human="Code Interpreter",
        description_for_model="Code interpreter: executes Python code in a stateful Jupyter session "
                              "(variables persist between calls; files the user uploaded are in the "
                              "working directory).",
        parameters=({"name": "code", "description": "the Python code to run", "required": True,
                     "schema": {"type": "string"}},),
        fn=run,
        args_format="code",
    )
