"""Alignment (Qwen report §3): ChatML conversations, supervised fine-tuning data and its loss masks.

`chatml` is the one place that renders and tokenizes ChatML; chat-mode evaluation, reward modelling, agents
and the `sft` stage all build on it.
"""
