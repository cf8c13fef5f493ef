"""The built GPTModel has the Qwen layout (report §2.3, spec §3.3) and runs on the CPU through the shims."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from megatron.core import parallel_state as ps

from qwen_hpc.compat.megatron_cpu import cpu_shims, model_parallel_seed
from qwen_hpc.launch.distributed import ensure_process_group
from qwen_hpc.model.builder import build_model, padded_vocab_size, transformer_config
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.model.spec import final_norm_module, qwen_layer_spec, resolve_backend

CFG = ModelConfig(num_layers=2, hidden_size=128, num_attention_heads=4, ffn_hidden_size=352, seq_length=32)


@pytest.fixture(scope="module")
def model() -> Iterator[torch.nn.Module]:
    ensure_process_group("gloo")
    ps.initialize_model_parallel(1, 1)
    model_parallel_seed(1234)
    try:
        yield build_model(CFG, padded_vocab_size(1000, CFG))
    finally:
        ps.destroy_model_parallel()


def test_padded_vocab_size() -> None:
    assert padded_vocab_size(1000, CFG) == 1024
    assert padded_vocab_size(1024, CFG) == 1024
    assert padded_vocab_size(1025, CFG, tp=2) == 1280
    assert padded_vocab_size(151851, ModelConfig()) == 151936  # Qwen's 151,851 tokens -> 151,936 rows


def test_untied_embedding_and_output_layer(model: torch.nn.Module) -> None:
    assert not model.share_embeddings_and_output_weights
    emb, head = model.embedding.word_embeddings.weight, model.output_layer.weight
    assert emb.shape == head.shape == (1024, CFG.hidden_size)
    assert emb.data_ptr() != head.data_ptr()


def test_bias_only_on_qkv(model: torch.nn.Module) -> None:
    biases = [name for name, _ in model.named_parameters() if name.endswith("bias")]
    assert biases == [f"decoder.layers.{i}.self_attention.linear_qkv.bias" for i in range(CFG.num_layers)]


def test_pre_rmsnorm_swiglu_and_rope(model: torch.nn.Module) -> None:
    norms = [m for m in model.modules() if isinstance(m, torch.nn.RMSNorm)]
    assert len(norms) == 2 * CFG.num_layers + 1  # two pre-norms per layer + the final norm
    assert all(n.eps == 1e-6 for n in norms)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    layer = model.decoder.layers[0]
    assert layer.mlp.linear_fc1.weight.shape == (2 * CFG.ffn_hidden_size, CFG.hidden_size)  # gate and up
    assert layer.config.gated_linear_unit and layer.config.activation_func is torch.nn.functional.silu
    inv_freq = model.rotary_pos_emb.inv_freq
    assert inv_freq.dtype == torch.float32 and inv_freq.numel() == CFG.head_dim // 2  # full head dim
    assert model.position_embedding_type == "rope"


def test_parameter_count_matches_config(model: torch.nn.Module) -> None:
    assert sum(p.numel() for p in model.parameters()) == CFG.num_parameters(1024)


def test_init_scales_residual_output_projections(model: torch.nn.Module) -> None:
    std = CFG.init_method_std
    scaled = std / math.sqrt(2 * CFG.num_layers)
    layer = model.decoder.layers[0]
    for weight, expected in (
        (layer.self_attention.linear_qkv.weight, std),
        (layer.mlp.linear_fc1.weight, std),
        (layer.self_attention.linear_proj.weight, scaled),
        (layer.mlp.linear_fc2.weight, scaled),
        (model.output_layer.weight, std),
        (model.embedding.word_embeddings.weight, std),
    ):
        assert float(weight.detach().std()) == pytest.approx(expected, rel=0.05)
    assert float(layer.self_attention.linear_qkv.bias.detach().abs().max()) == 0.0
    assert all(
        float(m.weight.detach().min()) == 1.0 for m in model.modules() if isinstance(m, torch.nn.RMSNorm)
    )


def test_forward_on_cpu_gives_finite_per_token_loss(model: torch.nn.Module) -> None:
    b, s = 2, CFG.seq_length
    tokens = torch.randint(0, 1000, (b, s))
    positions = torch.arange(s).expand(b, s)
    mask = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)[None, None]
    with cpu_shims(), torch.no_grad():
        logits = model(tokens, positions, mask)
        loss = model(tokens, positions, mask, labels=tokens)
    assert logits.shape == (b, s, 1024)
    assert loss.shape == (b, s) and torch.isfinite(loss).all()
    assert float(loss.mean()) == pytest.approx(math.log(1024), rel=0.05)  # near-uniform at init


def test_transformer_config_has_qwen_switches() -> None:
    tc = transformer_config(CFG)
    assert tc.normalization == "RMSNorm" and tc.add_qkv_bias and not tc.add_bias_linear
    assert tc.kv_channels == CFG.head_dim and tc.layernorm_epsilon == 1e-6
    if not torch.cuda.is_available():
        assert tc.use_cpu_initialization and not tc.gradient_accumulation_fusion and not tc.apply_rope_fusion


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU backend selection")
def test_cpu_uses_the_local_spec() -> None:
    assert resolve_backend()[0] == "local"
    spec = qwen_layer_spec()
    assert spec.submodules.input_layernorm is final_norm_module()
    with pytest.raises(RuntimeError, match="transformer_engine"):
        resolve_backend("te")


def test_norm_kernel_falls_back_to_torch_rmsnorm_on_cpu() -> None:
    """Apex's fused RMSNorm is a CUDA kernel: on a CPU machine the torch norm is chosen and said why."""
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    from qwen_hpc.model.builder import select_kernels
    from qwen_hpc.model.spec import apex_rmsnorm_usable, local_norm_module, qwen_layer_spec

    if apex_rmsnorm_usable():
        pytest.skip("CUDA + Apex present: the fused path is the one in use here")
    norm, reason = local_norm_module()
    assert norm is WrappedTorchNorm and "torch RMSNorm" in reason
    spec = qwen_layer_spec("local")
    assert spec.submodules.input_layernorm is WrappedTorchNorm
    assert spec.submodules.pre_mlp_layernorm is WrappedTorchNorm
    assert "rmsnorm=torch RMSNorm" in select_kernels("local").describe()
