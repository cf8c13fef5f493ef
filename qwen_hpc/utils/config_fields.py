"""Which config fields decide a stage's output, declared once on the field itself.

Every dataclass field of the config is one of:
- *decides the output* (the default): it enters the stage's config hash, so changing it reruns the stage
  and everything downstream;
- *how it runs* (`runtime(...)`): workers, logging cadence, the MFU peak, resources, cache locations, poll
  and stream settings. Changing it never reruns anything;
- *decides the output of the stages that name it* (`scoped(...)`): e.g. the inference-only
  `model.long_context` settings, hashed by `long_context` and `export_hf` (which list
  `"model.long_context"` in their CONFIG_KEYS) but not by `pretrain`, whose weights they never touch.

`output_view` walks a plain (resolved) config section along its dataclass schema and keeps only what
decides the output; the stage contract hashes that view. Domain packages use `runtime`/`scoped` on their
own dataclasses; nothing here knows about Hydra or stages.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterator
from typing import Any

HASH_KEY = "qwen_hpc_hash"
RUNTIME = "runtime"
SCOPED = "scoped"


def runtime(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING) -> Any:
    """A field that says how a stage runs, not what it produces: never part of a config hash."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={HASH_KEY: RUNTIME})


def scoped(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING) -> Any:
    """A field hashed only by the stages whose CONFIG_KEYS name its dotted path."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={HASH_KEY: SCOPED})


def kind(f: dataclasses.Field) -> str:
    """`runtime`, `scoped` or `output` (decides the output: the default)."""
    return f.metadata.get(HASH_KEY, "output")


@functools.cache
def _hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field holds, directly or as list elements / dict values / Optional."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType, list, dict, tuple):
        for arg in typing.get_args(hint):
            found = _dataclass_in(arg)
            if found is not None:
                return found
    return None


def field_schema(schema: type, name: str) -> type | None:
    """The dataclass type inside field `name` of `schema` (None for a leaf)."""
    return _dataclass_in(_hints(schema).get(name))


def output_view(schema: type | None, value: Any, *, include: frozenset[str] = frozenset(), path: str = "") -> Any:
    """`value` (plain dicts/lists) without its runtime fields, and without scoped fields whose dotted path
    (e.g. `model.long_context`) is not in `include`."""
    if schema is None:
        return value
    if isinstance(value, list):
        return [output_view(schema, item, include=include, path=path) for item in value]
    if not isinstance(value, dict):
        return value
    fields = {f.name: f for f in dataclasses.fields(schema)}
    out = {}
    for key, item in value.items():
        f = fields.get(key)
        full = f"{path}.{key}" if path else str(key)
        if f is not None:
            k = kind(f)
            if k == RUNTIME or (k == SCOPED and full not in include):
                continue
        out[key] = output_view(field_schema(schema, key) if f else None, item, include=include, path=full)
    return out


def iter_fields(schema: type, path: str = "") -> Iterator[tuple[str, dataclasses.Field, str]]:
    """(dotted path, field, kind) of every field under `schema`, depth first; list elements are not expanded
    (their fields are listed once, under `<path>[]`)."""
    for f in dataclasses.fields(schema):
        full = f"{path}.{f.name}" if path else f.name
        yield full, f, kind(f)
        sub = field_schema(schema, f.name)
        if sub is not None:
            hint = _hints(schema)[f.name]
            is_list = typing.get_origin(hint) is list or any(
                typing.get_origin(a) is list for a in typing.get_args(hint)
            )
            yield from iter_fields(sub, f"{full}[]" if is_list else full)
