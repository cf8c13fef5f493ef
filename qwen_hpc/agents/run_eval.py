"""The whole agent evaluation on one loaded chat model: the tool-use set (Table 6) and the code-interpreter
set (Tables 7–8), and a Markdown table of our scores beside the paper's."""

from __future__ import annotations

from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from qwen_hpc.agents.code_eval import CodeCase, code_scores, load_code_cases, run_code_case
from qwen_hpc.agents.code_interpreter import KernelLimits
from qwen_hpc.agents.config import AgentEvalConfig
from qwen_hpc.agents.evalset import ToolCase, load_tool_cases
from qwen_hpc.agents.evaluate import evaluate_tool_use
from qwen_hpc.agents.loop import GeneratorCompleter

PAPER = resources.files("qwen_hpc.agents.evalsets") / "paper.yaml"


def pick_tool_cases(cases: list[ToolCase], n: int) -> list[ToolCase]:
    if n == 0:
        return cases
    positives = [c for c in cases if c.positive][:n]
    return positives + [c for c in cases if not c.positive][: max(1, n // 4)]


def pick_code_cases(cases: list[CodeCase], n: int) -> list[CodeCase]:
    if n == 0:
        return cases
    out, seen = [], {}
    for case in cases:
        seen[case.category] = seen.get(case.category, 0) + 1
        if seen[case.category] <= n:
            out.append(case)
    return out


def evaluate_agent(model: Any, tokenizer: Any, model_cfg: Any, cfg: AgentEvalConfig,
                   data_root: str | Path | None) -> dict[str, Any]:
    from qwen_hpc.alignment.chatml import chat_stop_ids, chatml_ids
    from qwen_hpc.inference.generate import Generator, SamplingConfig

    generator = Generator(model, tokenizer, long_context=model_cfg.long_context, train_length=model_cfg.seq_length)
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, stop_token_ids=chat_stop_ids(tokenizer))

    def chat(batch: list[list[dict[str, str]]]) -> list[str]:
        prompts = [chatml_ids(tokenizer, messages, system=cfg.system) for messages in batch]
        return [g.text for g in generator.generate_ids(prompts, sampling)]

    _, tool_cases = load_tool_cases()
    tool_cases = pick_tool_cases(tool_cases, cfg.tool_cases)
    tool, tool_records = evaluate_tool_use(chat, tool_cases, encode=tokenizer.encode,
                                           token_bytes=lambda t: tokenizer.decode_bytes([t]),
                                           batch_size=cfg.batch_size)
    code_cases, skipped = load_code_cases(data_root)
    code_cases = pick_code_cases(code_cases, cfg.code_cases)
    complete = GeneratorCompleter(generator, tokenizer, replace(sampling))
    limits = KernelLimits(cell_wall_s=cfg.cell_wall_s, memory_mb=cfg.kernel_memory_mb)
    code_results = [run_code_case(complete, case, limits=limits, max_steps=cfg.max_steps) for case in code_cases]
    return {
        "tool_use": {"scores": asdict(tool), "records": tool_records},
        "code_interpreter": {"scores": code_scores(code_results), "skipped_sources": skipped,
                             "records": [asdict(r) for r in code_results]},
    }


def paper_table(results: dict[str, Any]) -> str:
    """Markdown: our scores in the first row of each table, the paper's rows below."""
    paper = yaml.safe_load(PAPER.read_text())
    tool, code = results["tool_use"]["scores"], results["code_interpreter"]["scores"]
    lines = ["### Tool use (Table 6; ours: the project's own set)", "",
             "| model | tool selection % | tool input Rouge-L | false positive % |", "|---|---|---|---|",
             f"| **ours** | {tool['tool_selection']:.1f} | {tool['tool_input_rouge_l']:.3f} | "
             f"{tool['false_positive']:.1f} |"]
    lines += [f"| {m} | {v['tool_selection']} | {v['tool_input_rouge_l']} | {v['false_positive']} |"
              for m, v in paper["tool_use"].items()]

    def cell(key: str) -> str:
        return f"{code[key]:.1f}" if key in code else "–"

    lines += ["", "### Code interpreter, executable % (Table 7)", "", "| model | math | visualization | all |",
              "|---|---|---|---|",
              f"| **ours** | {cell('executable_math')} | "
              f"{cell('executable_vis_all')} | "
              f"{cell('executable_all')} |"]
    lines += [f"| {m} | {v['math']} | {v['visualization']} | {v['all']} |" for m, v in paper["code_executable"].items()]
    lines += ["", "### Code interpreter, correct % (Table 8)", "", "| model | math | vis-hard | vis-easy | vis-all |",
              "|---|---|---|---|---|",
              f"| **ours** | {cell('correct_math')} | {cell('correct_vis_hard')} | {cell('correct_vis_easy')} | "
              f"{cell('correct_vis_all')} |"]
    lines += [f"| {m} | {v['math']} | {v['vis_hard']} | {v['vis_easy']} | {v['vis_all']} |"
              for m, v in paper["code_correct"].items()]
    return "\n".join(lines) + "\n"
