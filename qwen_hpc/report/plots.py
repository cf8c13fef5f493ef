"""Plots for the report (matplotlib, Agg: no display needed on a compute node)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open one alive)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def loss_curve_png(
    train: list[tuple[int, float]], val: list[tuple[int, float]], *, smoothing: int, title: str
) -> bytes:
    """Training loss (raw and smoothed) and validation loss against the optimizer step, as PNG bytes."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if train:
        steps, losses = zip(*train, strict=True)
        ax.plot(steps, losses, color="#9ecae1", linewidth=0.8, label="train loss")
        if smoothing > 1:
            ax.plot(
                steps,
                _smooth(losses, smoothing),
                color="#08519c",
                linewidth=1.6,
                label=f"train loss ({smoothing}-step mean)",
            )
    if val:
        vsteps, vlosses = zip(*val, strict=True)
        ax.plot(vsteps, vlosses, "o-", color="#d94801", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def perplexity_vs_length_png(table: dict[str, dict[int, float]], train_length: int, *, title: str) -> bytes:
    """Perplexity against context length, one line per long-context setting (log scales, as the numbers span
    orders of magnitude once a plain model passes its training length)."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name, row in table.items():
        lengths = sorted(row)
        ax.plot(lengths, [row[n] for n in lengths], "o-", label=name)
    ax.axvline(
        train_length, color="grey", linestyle="--", linewidth=1, label=f"training length {train_length}"
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("perplexity")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _png(fig)


@dataclass(frozen=True)
class CurvePanel:
    """One panel of a training stage's curves: the first of `train` keys the stage logged, drawn against the
    step, with the first of `held_out` keys as dots (the stages name the same quantity differently: the
    reward model logs `train_accuracy` and `heldout/accuracy`, PPO `reward/raw` and `eval/mean_reward`)."""

    label: str
    train: tuple[str, ...]
    held_out: tuple[str, ...] = ()


CURVE_PANELS = (
    CurvePanel("loss", ("loss", "policy_loss"), ("val_loss",)),
    CurvePanel("learning rate", ("lr",)),
    CurvePanel("tokens / s", ("tokens_per_s", "rollout_tokens_per_s")),
    CurvePanel("accuracy", ("accuracy", "train_accuracy"), ("val_accuracy", "heldout/accuracy")),
    CurvePanel("reward", ("reward", "reward/raw"), ("eval/mean_reward",)),
    CurvePanel("KL to the reference", ("kl",)),
)


def _first_logged(records: list[dict], keys: tuple[str, ...]) -> tuple[str, list[tuple[int, float]]] | None:
    for key in keys:
        points = _per_step(records, key)
        if points:
            return key, points
    return None


def training_curves_png(records: list[dict], *, smoothing: int, title: str) -> bytes | None:
    """Loss (and validation loss), LR and throughput against the step — plus accuracy, reward and KL where a
    stage logs them (reward model, PPO) — one panel each; None when the stage logged none of them."""
    panels = []
    for panel in CURVE_PANELS:
        found = _first_logged(records, panel.train)
        if found:
            panels.append((panel, *found, _first_logged(records, panel.held_out)))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), dpi=100, squeeze=False)
    for ax, (panel, key, points, held_out) in zip(axes[0], panels, strict=True):
        steps, values = zip(*points, strict=True)
        noisy = panel.label in ("loss", "reward")
        ax.plot(steps, values, color="#9ecae1" if noisy else "#3182bd", linewidth=0.9, label=key)
        if noisy and len(values) > smoothing:
            ax.plot(steps, _smooth(values, smoothing), color="#08519c", linewidth=1.4, label=f"mean of {smoothing}")
        if held_out:
            name, val = held_out
            ax.plot(*zip(*val, strict=True), "o-", color="#e6550d", markersize=3, label=name)
        ax.set_xlabel("step")
        ax.set_ylabel(panel.label)
        ax.grid(alpha=0.3)
        if panel.label in ("loss", "accuracy", "reward", "KL to the reference"):
            ax.legend(fontsize=7)
    fig.suptitle(title)
    return _png(fig)


def _per_step(records: list[dict], key: str) -> list[tuple[int, float]]:
    """The last value logged for each step (a requeued run re-logs the steps after its checkpoint)."""
    by_step: dict[int, float] = {}
    for r in records:
        value = r.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and "step" in r:
            by_step[int(r["step"])] = float(value)
    return sorted(by_step.items())
