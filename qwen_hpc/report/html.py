"""The experiment report: one self-contained HTML page (plots embedded as data URIs, so it can be
mailed or opened from a cluster's shared filesystem without its neighbours)."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from qwen_hpc.utils.io import read_jsonl as read_jsonl  # re-exported: the report's reader of metrics


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return html.escape(json.dumps(value, default=str))
    return html.escape(str(value))


def render(
    title: str,
    stages: list[dict[str, Any]],
    plots: dict[str, bytes],
    tables: dict[str, tuple[list[str], list[list[Any]]]] | None = None,
) -> str:
    """`stages`: [{"stage", "status", "wall_s", "metrics": {...}}]; `plots`: caption -> PNG bytes;
    `tables`: caption -> (columns, rows), e.g. our benchmark scores next to the paper's."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left;vertical-align:top}th{background:#f3f3f3}code{font-size:90%}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    for caption, png in plots.items():
        data = base64.b64encode(png).decode()
        parts.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    for caption, (columns, rows) in (tables or {}).items():
        parts.append(f"<h2>{html.escape(caption)}</h2><table><tr>"
                     + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{'–' if v is None else _fmt(v)}</td>" for v in row) + "</tr>")
        parts.append("</table>")
    parts.append(
        "<h2>Stages</h2><table><tr><th>stage</th><th>status</th><th>wall (s)</th>"
        "<th>headline metrics</th></tr>"
    )
    for row in stages:
        metrics = "<br>".join(f"<code>{html.escape(k)}</code> = {_fmt(v)}" for k, v in row["metrics"].items())
        parts.append(
            f"<tr><td>{html.escape(row['stage'])}</td><td>{html.escape(row['status'])}</td>"
            f"<td>{_fmt(row.get('wall_s', ''))}</td><td>{metrics}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "\n".join(parts)

