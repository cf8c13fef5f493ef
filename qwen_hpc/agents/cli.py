"""`qwen-hpc agent model=<dir> tools=calculator,code_interpreter`: a ReAct agent on a chat model, by hand.

Reads one question per line from stdin (until EOF or an empty line), runs the ReAct loop with the named
tools (spec §9.2: the ReAct prompt as the user turn, generation paused at `Observation:`, the tool's result
appended in the same assistant turn) and prints each step and the final answer. Sampling options as for
`qwen-hpc chat` (temperature=, top_p=, top_k=, max_new_tokens=, seed=); `max_steps=` bounds the tool calls
per question.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack

from qwen_hpc.agents.loop import GeneratorCompleter, run_react
from qwen_hpc.agents.tools import CALCULATOR, Tool, ToolRegistry

_USAGE = __doc__ or ""


def builtin_tool(name: str, stack: ExitStack) -> Tool:
    """The tools the command can offer; the code interpreter's kernel is closed when the command ends."""
    if name == "calculator":
        return CALCULATOR
    if name == "code_interpreter":
        from qwen_hpc.agents.code_interpreter import CodeInterpreter, code_interpreter_tool

        return code_interpreter_tool(stack.enter_context(CodeInterpreter()))
    raise ValueError(f"unknown tool {name!r} (known: calculator, code_interpreter)")


def main(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(_USAGE)
        return 0
    from qwen_hpc.inference.cli import _parse, _sampling

    try:
        opts = _parse(args)
        model_path = opts.pop("model")
    except (ValueError, KeyError):
        print(f"qwen-hpc agent: needs model=<dir> and key=value options\n{_USAGE}", file=sys.stderr)
        return 2
    tool_names = [t for t in opts.pop("tools", "calculator").split(",") if t]
    max_steps = int(opts.pop("max_steps", "8"))
    opts.setdefault("max_new_tokens", "256")
    from qwen_hpc.alignment.chatml import chat_stop_ids
    from qwen_hpc.inference.generate import Generator
    from qwen_hpc.inference.loading import open_model, open_model_config
    from qwen_hpc.parallel import single_process_megatron

    with ExitStack() as stack:
        try:
            tools = ToolRegistry(builtin_tool(n, stack) for n in tool_names)
        except ValueError as exc:
            print(f"qwen-hpc agent: {exc}", file=sys.stderr)
            return 2
        stack.enter_context(single_process_megatron())
        model, tokenizer = open_model(model_path)
        sampling = _sampling(opts, chat_stop_ids(tokenizer))
        if opts:
            print(f"qwen-hpc agent: unknown options {sorted(opts)}", file=sys.stderr)
            return 2
        model_cfg = open_model_config(model_path)
        generator = Generator(model, tokenizer, long_context=model_cfg.long_context,
                              train_length=model_cfg.seq_length)
        complete = GeneratorCompleter(generator, tokenizer, sampling)
        for line in sys.stdin:
            if not line.strip():
                break
            run = run_react(complete, tools, line.strip(), max_steps=max_steps)
            for n, step in enumerate(run.steps, 1):
                print(f"[{n}] {step.tool}({step.arguments}) -> {step.observation}", flush=True)
            print(f"final ({run.finish}): {run.answer if run.answer is not None else run.text}", flush=True)
    return 0
