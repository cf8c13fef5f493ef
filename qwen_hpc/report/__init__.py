"""The experiment report (HTML + plots), built only from stage markers and metrics.jsonl files."""
