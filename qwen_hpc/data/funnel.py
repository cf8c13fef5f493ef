"""The curation funnel: how many documents remain after each step, as a table and a PNG bar chart."""

from __future__ import annotations

import io
from typing import Any

# reasons grouped into the steps of the pipeline, in pipeline order
STEPS: list[tuple[str, tuple[str, ...]]] = [
    ("readable", ("unreadable", "binary", "invalid_utf8", "malformed", "blank_line")),
    ("non-empty, length ok", ("empty", "too_short", "too_long")),
    ("language", ("language",)),
    ("quality rules", ("quality_rule:",)),
    ("decontaminated", ("contaminated",)),
    ("quality model", ("quality_model",)),
    ("exact dedup", ("exact_duplicate",)),
    ("near dedup", ("near_duplicate",)),
    ("token budget", ("over_budget",)),
]


def _step_of(reason: str) -> str:
    for step, reasons in STEPS:
        if any(reason == r or (r.endswith(":") and reason.startswith(r)) for r in reasons):
            return step
    return "readable"  # any other reader reason


def funnel(read: int, dropped: dict[str, int]) -> list[dict[str, Any]]:
    by_step: dict[str, int] = {}
    for reason, n in dropped.items():
        by_step[_step_of(reason)] = by_step.get(_step_of(reason), 0) + n
    rows, remaining = [{"step": "read", "remaining": read, "dropped": 0}], read
    for step, _ in STEPS:
        remaining -= by_step.get(step, 0)
        rows.append({"step": step, "remaining": remaining, "dropped": by_step.get(step, 0)})
    return rows


def funnel_png(rows: list[dict[str, Any]], title: str = "data curation funnel") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2), dpi=100)
    labels = [r["step"] for r in rows][::-1]
    values = [r["remaining"] for r in rows][::-1]
    bars = ax.barh(labels, values, color="#4C72B0")
    for bar, row in zip(bars, rows[::-1], strict=True):
        note = f"{row['remaining']:,}" + (f"  (-{row['dropped']:,})" if row["dropped"] else "")
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + note, va="center", fontsize=8)
    ax.set_xlabel("documents remaining")
    ax.set_title(title)
    ax.set_xlim(0, max(values + [1]) * 1.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
