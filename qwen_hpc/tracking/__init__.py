"""Observation: metrics.jsonl (the source of truth for the report) and W&B. Never changes results."""

from qwen_hpc.tracking.base import NullTracker, Tracker

__all__ = ["NullTracker", "Tracker"]
