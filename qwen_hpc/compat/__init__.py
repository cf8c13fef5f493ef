"""Compatibility shims (Megatron-Core without CUDA). Active only where CUDA is absent."""
