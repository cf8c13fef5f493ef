"""Checks that must pass before a job is submitted: a missing input is a config error, not a job failure."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig


class PreflightError(ValueError):
    pass


def preflight(stage: str, cfg: QwenConfig) -> None:
    if stage == "data":
        from qwen_hpc.data.config import check_sources

        try:
            check_sources(cfg.data)
        except (FileNotFoundError, ValueError) as exc:
            raise PreflightError(str(exc)) from exc
        if not cfg.data.sources and not cfg.data.embedded_corpus:
            raise PreflightError("data.sources is empty and data.embedded_corpus=false: no input text")
