"""The Megatron-Core `ModuleSpec` of one Qwen decoder layer (Qwen report §2.3; spec §3.3).

A Qwen layer is Megatron's standard GPT layer: pre-RMSNorm → self-attention (QKV with bias, RoPE, causal
softmax) → residual → pre-RMSNorm → SwiGLU MLP → residual. The spec only picks *which modules* implement it;
the Qwen-specific switches (RMSNorm, QKV-only bias, SwiGLU, untied head) live in the `TransformerConfig`
built by `qwen_hpc.model.builder`.

The backend is chosen once, here:
- ``"te"``: Transformer Engine's fused modules (flash/fused attention, LayerNorm fused into the linear layers).
  Only when `transformer_engine` imports *and* CUDA is available.
- ``"local"``: plain PyTorch modules from Megatron-Core (torch RMSNorm, unfused attention). Runs on the CPU.
  On CUDA with NVIDIA Apex built, its norms become Apex's fused RMSNorm kernel (`ApexFusedRMSNorm`):
  Megatron's own Apex norm (`FusedLayerNorm`) implements LayerNorm only.
"""

from __future__ import annotations

import importlib.util

import torch
from megatron.core.transformer.spec_utils import ModuleSpec

BACKENDS = ("auto", "te", "local")


def apex_rmsnorm_usable() -> bool:
    """NVIDIA Apex's fused RMSNorm: a CUDA kernel, so it needs both the built extension and a device.

    Checked through the compiled extension, not the `apex` name: the unrelated PyPI package called `apex`
    imports fine and has no kernels.
    """
    return torch.cuda.is_available() and importlib.util.find_spec("fused_layer_norm_cuda") is not None


class ApexFusedRMSNorm(torch.nn.Module):
    """Megatron norm-module signature `(config, hidden_size, eps)` around `apex.normalization.FusedRMSNorm`."""

    def __init__(self, config: object, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        from apex.normalization import FusedRMSNorm

        self.norm = FusedRMSNorm(hidden_size, eps=eps)
        # keep Megatron's sequence-parallel bookkeeping happy (the weight is replicated across TP ranks)
        self.norm.weight.sequence_parallel = getattr(config, "sequence_parallel", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def local_norm_module() -> tuple[type, str]:
    """(norm class, reason) for the local backend: Apex's fused RMSNorm on CUDA when built, else torch's."""
    if apex_rmsnorm_usable():
        return ApexFusedRMSNorm, "Apex fused RMSNorm (fused_layer_norm_cuda)"
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    reason = "no CUDA device" if not torch.cuda.is_available() else "Apex not built"
    return WrappedTorchNorm, f"torch RMSNorm ({reason})"


def transformer_engine_usable() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("transformer_engine") is not None


def resolve_backend(backend: str = "auto") -> tuple[str, str]:
    """Return (backend, reason) for `backend` in auto|te|local."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} must be one of {'|'.join(BACKENDS)}")
    if backend == "local":
        return "local", "requested"
    if transformer_engine_usable():
        return "te", "transformer_engine importable and CUDA available"
    if backend == "te":
        raise RuntimeError("backend='te' needs the transformer_engine package and a CUDA device")
    reason = "no CUDA device" if not torch.cuda.is_available() else "transformer_engine not installed"
    return "local", reason


def qwen_layer_spec(backend: str = "auto") -> ModuleSpec:
    """The `ModuleSpec` for one Qwen transformer layer with the given (or automatically chosen) backend."""
    chosen, _ = resolve_backend(backend)
    if chosen == "te":
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_with_transformer_engine_spec

        return get_gpt_layer_with_transformer_engine_spec()
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    spec = get_gpt_layer_local_spec(normalization="RMSNorm")
    norm, _ = local_norm_module()
    spec.submodules.input_layernorm = norm
    spec.submodules.pre_mlp_layernorm = norm
    return spec


def final_norm_module(backend: str = "auto") -> type:
    """The module for the final RMSNorm, matching the layer backend.

    Passed explicitly because Megatron's own default picks Apex's FusedLayerNorm whenever an `apex` module
    imports, and that one rejects RMSNorm.
    """
    chosen, _ = resolve_backend(backend)
    if chosen == "te":
        from megatron.core.extensions.transformer_engine import TENorm

        return TENorm
    return local_norm_module()[0]
