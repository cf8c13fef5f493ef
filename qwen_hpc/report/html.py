"""The experiment report: one self-contained HTML page (plots embedded as data URIs, so it can be
mailed or opened from a cluster's shared filesystem without its neighbours)."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

from qwen_hpc.utils.io import read_jsonl as read_jsonl  # re-exported: the report's reader of metrics

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}code{font-size:90%}"
    "figure{margin:0}img{max-width:100%}nav li{margin:2px 0}section{margin:2em 0}"
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return html.escape(json.dumps(value, default=str))
    return html.escape(str(value))


def section_id(caption: str) -> str:
    """The anchor of a section: its caption in lower case, runs of other characters as one '-'. The contents
    list links to it, and a reader can link straight to, say, `index.html#perplexity-vs-context-length`."""
    return re.sub(r"[^a-z0-9]+", "-", caption.lower()).strip("-") or "section"


def _unique(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for base in ids:
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td>{'–' if v is None else _fmt(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table>{head}{body}</table>"


def render(
    title: str,
    stages: list[dict[str, Any]],
    plots: dict[str, bytes],
    tables: dict[str, tuple[list[str], list[list[Any]]]] | None = None,
) -> str:
    """`stages`: [{"stage", "status", "wall_s", "metrics": {...}}]; `plots`: caption -> PNG bytes;
    `tables`: caption -> (columns, rows), e.g. our benchmark scores next to the paper's. Every plot and table
    is a `<section>` with an id, listed in the contents at the top."""
    blocks: list[tuple[str, str]] = []  # (caption, inner html)
    for caption, png in plots.items():
        data = base64.b64encode(png).decode()
        blocks.append((caption, f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                                f"<figcaption>{html.escape(caption)}</figcaption></figure>"))
    for caption, (columns, rows) in (tables or {}).items():
        blocks.append((caption, _table(columns, rows)))
    stage_rows = [
        [row["stage"], row["status"], row.get("wall_s", ""),
         "<br>".join(f"<code>{html.escape(k)}</code> = {_fmt(v)}" for k, v in row["metrics"].items())]
        for row in stages
    ]
    stage_table = (
        "<table><tr><th>stage</th><th>status</th><th>wall (s)</th><th>headline metrics</th></tr>"
        + "".join(f"<tr><td>{html.escape(s)}</td><td>{html.escape(st)}</td><td>{_fmt(w)}</td><td>{m}</td></tr>"
                  for s, st, w, m in stage_rows)
        + "</table>"
    )
    blocks.append(("Stages", stage_table))
    ids = _unique([section_id(caption) for caption, _ in blocks])
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
        "<nav><h2>Contents</h2><ol>"
        + "".join(f"<li><a href='#{i}'>{html.escape(c)}</a></li>" for i, (c, _) in zip(ids, blocks, strict=True))
        + "</ol></nav>",
    ]
    for anchor, (caption, inner) in zip(ids, blocks, strict=True):
        parts.append(f"<section id='{anchor}'><h2>{html.escape(caption)}</h2>{inner}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
