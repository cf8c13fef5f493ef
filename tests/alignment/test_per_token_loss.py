"""The SFT objective: the loss is the mean over the supervised tokens of the whole global batch, so a batch
split into micro-batches holding different numbers of supervised tokens gets exactly the gradient of that
global mean (Megatron's per-token loss), not a mean of per-micro-batch means."""

from __future__ import annotations

import torch
from megatron.core import parallel_state as ps
from megatron.core.pipeline_parallel import get_forward_backward_func

from qwen_hpc.alignment import embedded
from qwen_hpc.alignment.sequences import SFTDataset, tokenize_conversations
from qwen_hpc.compat.megatron_cpu import cpu_shims
from qwen_hpc.interop.hf_checkpoint import single_process_megatron
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.training.config import OptimizerConfig, TrainConfig
from qwen_hpc.training.data import MicroBatchIterator
from qwen_hpc.training.loop import Objective, _build_optimizer, build_training_model
from qwen_hpc.training.step import StepContext, causal_mask, reduce_loss

SEQ = 160


def test_gradient_is_that_of_the_global_token_mean() -> None:
    tok = QwenTokenizer({bytes([b]): b for b in range(256)}, name="bytes")
    tasks = embedded.generate(5, 4, held_out=False, weights=(0.0, 1.0, 0.0))
    convs, _ = tokenize_conversations(tok, [t.messages for t in tasks], masking="paper", max_tokens=SEQ + 1,
                                      system="Hi.")
    for conv in convs[:2]:  # micro-batch 1 gets far fewer supervised tokens than micro-batch 2
        conv.targets[:] = False
        conv.targets[-3:] = True
    ds = SFTDataset(convs, seq_length=SEQ, mode="padding", pad_id=tok.eod_id, seed=0)
    ds._perms = {0: torch.arange(4).numpy()}  # fixed order: conversations 0,1 | 2,3
    model_cfg = ModelConfig(name="t", num_layers=1, hidden_size=32, num_attention_heads=2, ffn_hidden_size=64,
                            seq_length=SEQ)
    train = TrainConfig(train_iters=1, micro_batch_size=2, global_batch_size=4, precision="fp32")
    with single_process_megatron(seed=3), cpu_shims():
        model, ddp, config, _ = build_training_model(model_cfg, train, 384, objective=Objective(per_token_loss=True))
        optimizer, scheduler = _build_optimizer(ddp, train, OptimizerConfig(warmup_iters=0), False)
        ctx = StepContext(ddp_model=ddp, optimizer=optimizer, scheduler=scheduler,
                          forward_backward=get_forward_backward_func(), num_microbatches=2, micro_batch_size=2,
                          seq_length=SEQ, mask=causal_mask(SEQ), device=torch.device("cpu"))
        ddp.zero_grad_buffer()
        loss_sum, tokens = reduce_loss(ctx.run_schedule(MicroBatchIterator(ds, micro_batch_size=2),
                                                        forward_only=False))
        ours = {n: p.main_grad.clone() for n, p in model.named_parameters()}
        # reference: one forward over the whole batch, the mean over all its supervised tokens
        batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ds[0]}
        per_token = model(batch["tokens"], batch["position_ids"], causal_mask(SEQ), labels=batch["labels"])
        mean = (per_token * batch["loss_mask"]).sum() / batch["loss_mask"].sum()
        names, params = zip(*model.named_parameters(), strict=True)
        reference = dict(zip(names, torch.autograd.grad(mean, params), strict=True))
        assert ps.get_data_parallel_world_size() == 1
    assert tokens == float(batch["loss_mask"].sum()) and abs(loss_sum / tokens - float(mean)) < 1e-5
    counts = [float(batch["loss_mask"][:2].sum()), float(batch["loss_mask"][2:].sum())]
    assert counts[1] > 3 * counts[0]
    for name in names:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-4, atol=1e-7)
