"""Tools the agent can call: a Python callable with the description and JSON parameter schema the ReAct
prompt shows the model.

A tool's `parameters` is Qwen's list form (`[{"name", "description", "required", "schema"}]`, spec §9.2):
the prompt prints it verbatim with `json.dumps(..., ensure_ascii=False)`, and `validate` checks a call's
arguments against it before the callable runs, so a bad call becomes an observation the model can read
and recover from rather than an exception in the loop.
"""

from __future__ import annotations

import ast
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

JSON_ARGS = " Format the arguments as a JSON object."
CODE_ARGS = " Enclose the code within triple backticks (`) at the beginning and end of the code."


class ToolError(ValueError):
    """A call the tool refused (unknown tool, bad arguments, a failure inside the tool): shown to the model."""


@dataclass(frozen=True)
class Tool:
    name_for_model: str
    name_for_human: str
    description_for_model: str
    parameters: tuple[Mapping[str, Any], ...]
    fn: Callable[..., Any] | None = field(default=None, compare=False)
    args_format: str = "json"  # "json" | "code" (Qwen-Agent's suffix choice)

    def __post_init__(self) -> None:
        if self.args_format not in ("json", "code"):
            raise ValueError(f"tool {self.name_for_model}: args_format must be json or code")
        for p in self.parameters:
            missing = {"name", "description", "required", "schema"} - set(p)
            if missing:
                raise ValueError(f"tool {self.name_for_model}: parameter {p} lacks {sorted(missing)}")

    def validate(self, args: Any) -> dict[str, Any]:
        """The call's arguments as a dict, or ToolError saying what is wrong with them."""
        if self.args_format == "code" and isinstance(args, str):
            args = {self.parameters[0]["name"]: args}
        if not isinstance(args, dict):
            raise ToolError(f"{self.name_for_model} expects a JSON object of arguments, got {args!r}")
        known = {p["name"]: p for p in self.parameters}
        unknown = sorted(set(args) - set(known))
        if unknown:
            raise ToolError(f"{self.name_for_model} has no parameter {', '.join(unknown)}; "
                            f"its parameters are {', '.join(known)}")
        for name, p in known.items():
            if name not in args:
                if p["required"]:
                    raise ToolError(f"{self.name_for_model} needs the argument {name!r}")
                continue
            try:
                jsonschema.validate(args[name], p["schema"])
            except jsonschema.ValidationError as exc:
                raise ToolError(f"argument {name!r} of {self.name_for_model}: {exc.message}") from None
        return dict(args)

    def __call__(self, args: Any) -> str:
        if self.fn is None:
            raise ToolError(f"{self.name_for_model} is described but cannot be run here")
        result = self.fn(**self.validate(args))
        return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


class ToolRegistry:
    """Tools by `name_for_model`, in registration order (the order the prompt lists them)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> Tool:
        if tool.name_for_model in self._tools:
            raise ValueError(f"tool {tool.name_for_model!r} is registered twice")
        self._tools[tool.name_for_model] = tool
        return tool

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolError(f"there is no tool {name!r}; the tools are {', '.join(self._tools)}") from None

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        return ToolRegistry(self[n] for n in names)


# ---------------------------------------------------------------------------- the calculator

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS = {"sqrt": math.sqrt, "log": math.log, "exp": math.exp, "sin": math.sin, "cos": math.cos,
          "tan": math.tan, "abs": abs, "round": round, "floor": math.floor, "ceil": math.ceil}
_CONSTS = {"pi": math.pi, "e": math.e}


def _evaluate(node: ast.AST) -> float | int:
    """Arithmetic only: the calculator is a tool, not a way around the sandbox."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise ToolError("exponent too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS
            and not node.keywords):
        return _FUNCS[node.func.id](*(_evaluate(a) for a in node.args))
    raise ToolError(f"not arithmetic: {ast.unparse(node)!r}")


def calculate(expression: str) -> str:
    try:
        value = _evaluate(ast.parse(expression.replace("^", "**"), mode="eval"))
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (SyntaxError, TypeError, ValueError, OverflowError) as exc:
        raise ToolError(f"cannot evaluate {expression!r}: {exc}") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


CALCULATOR = Tool(
    name_for_model="calculator",
    name_for_human="Calculator",
    description_for_model="Evaluates an arithmetic expression (+ - * / // % ^, parentheses, sqrt, log, exp, "
                          "sin, cos, tan, abs, round, floor, ceil, pi, e) and returns the exact result.",
    parameters=({"name": "expression", "description": "the arithmetic expression to evaluate",
                 "required": True, "schema": {"type": "string"}},),
    fn=calculate,
)
