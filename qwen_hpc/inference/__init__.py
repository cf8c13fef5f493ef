"""Generation with a KV cache on our Megatron-Core Qwen model, and ChatML prompts (spec §7.2)."""
