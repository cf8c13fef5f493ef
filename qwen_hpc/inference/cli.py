"""`qwen-hpc generate` and `qwen-hpc chat`: try a model by hand (not DAG stages).

    qwen-hpc generate model=runs/tiny/export_hf/hf prompt='Once upon a time' max_new_tokens=64 temperature=0.7
    qwen-hpc chat model=runs/tiny/export_hf/hf [system='You are a helpful assistant.'] [temperature=0.7]
    qwen-hpc generate model=... prompt=@long.txt dynamic_ntk=true logn=true window=true   # past seq_length

`dynamic_ntk`, `logn` and `window` (Qwen §2.5) default to the model's own `long_context` settings (those in
its config, e.g. true/true for the released 1.8B-14B sizes); `prompt=@file` reads the prompt from a file.

`model` is an exported HF folder or an `import_hf` output folder. `generate` prints the text (and, with
`logprobs=true`, one JSON line with ids and log-probs); `chat` keeps the ChatML history of the conversation
and reads user turns from stdin until EOF or an empty line. Both stop at `<|im_end|>`, `<|im_start|>` or
`<|endoftext|>` (spec §7.2, §13), so a fine-tuned model's reply ends where its turn ends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from qwen_hpc.inference.generate import SamplingConfig

_USAGE = __doc__ or ""


def _parse(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in args:
        if "=" not in arg:
            raise ValueError(f"expected key=value, got {arg!r}")
        key, value = arg.split("=", 1)
        out[key.strip()] = value
    return out


def _sampling(opts: dict[str, str], chat_stops: tuple[int, ...]) -> SamplingConfig:
    kwargs: dict = {}
    for key in ("max_new_tokens", "top_k", "seed"):
        if key in opts:
            kwargs[key] = int(opts.pop(key))
    for key in ("temperature", "top_p", "repetition_penalty"):
        if key in opts:
            kwargs[key] = float(opts.pop(key))
    if "stop" in opts:
        kwargs["stop_strings"] = tuple(s for s in opts.pop("stop").split("|") if s)
    kwargs["stop_token_ids"] = chat_stops
    return SamplingConfig(**kwargs)


_SWITCHES = {"dynamic_ntk": "use_dynamic_ntk", "logn": "use_logn_attn", "window": "use_window_attn"}


def _long_context(opts: dict[str, str], defaults: Any) -> Any:
    """The model's long-context settings with the command's `dynamic_ntk=`/`logn=`/`window=` applied."""
    from dataclasses import replace

    changes = {}
    for key, field in _SWITCHES.items():
        if key in opts:
            value = opts.pop(key).lower()
            if value not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{key}={value!r} must be true or false")
            changes[field] = value in ("true", "1", "yes")
    return replace(defaults, **changes)


def main(command: str, args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(_USAGE)
        return 0
    try:
        opts = _parse(args)
        model_path = opts.pop("model")
    except (ValueError, KeyError):
        print(f"qwen-hpc {command}: needs model=<dir> and key=value options\n{_USAGE}", file=sys.stderr)
        return 2
    from qwen_hpc.alignment.chatml import DEFAULT_SYSTEM, chat_stop_ids, chatml_ids
    from qwen_hpc.inference.generate import Generator
    from qwen_hpc.inference.loading import open_model, open_model_config
    from qwen_hpc.parallel import single_process_megatron

    with single_process_megatron():
        model, tokenizer = open_model(model_path)
        # <|im_end|>, <|im_start|>, <|endoftext|>: the stops the exported generation_config.json lists, so a
        # fine-tuned chat model ends its reply in `generate` too (a base model ends at <|endoftext|>)
        stops = chat_stop_ids(tokenizer)
        prompt, system = opts.pop("prompt", ""), opts.pop("system", DEFAULT_SYSTEM)
        if prompt.startswith("@"):
            prompt = Path(prompt[1:]).read_text(encoding="utf-8")
        model_cfg = open_model_config(model_path)
        try:
            long_context = _long_context(opts, model_cfg.long_context)
        except ValueError as exc:
            print(f"qwen-hpc {command}: {exc}", file=sys.stderr)
            return 2
        want_logprobs = opts.pop("logprobs", "false").lower() in ("1", "true", "yes")
        sampling = _sampling(opts, stops)
        if opts:
            print(f"qwen-hpc {command}: unknown options {sorted(opts)}", file=sys.stderr)
            return 2
        generator = Generator(model, tokenizer, long_context=long_context, train_length=model_cfg.seq_length)
        if command == "generate":
            if not prompt:
                print("qwen-hpc generate: needs prompt='...'", file=sys.stderr)
                return 2
            out = generator.generate([prompt], sampling)[0]
            print(out.text)
            if want_logprobs:
                print(
                    json.dumps(
                        {"token_ids": out.token_ids, "logprobs": out.logprobs, "finish": out.finish_reason}
                    )
                )
            return 0
        history: list[dict[str, str]] = [{"role": "system", "content": system}]
        for line in sys.stdin:
            if not line.strip():
                break
            history.append({"role": "user", "content": line.rstrip("\n")})
            reply = generator.generate_ids([chatml_ids(tokenizer, history)], sampling)[0].text
            history.append({"role": "assistant", "content": reply})
            print(f"assistant: {reply}", flush=True)
    return 0
