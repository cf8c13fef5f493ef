"""Stage `ppo` (Qwen report §3.2.2; spec §8.2): PPO of the SFT policy against the reward model (or, with
`ppo.reward=rule`, against the checkable answers of the embedded tasks, to verify the loop on a CPU).
Writes `checkpoints/` (policy, value, optimizers, normalizer, cursors), `metrics.jsonl` (every step: reward
raw/normalized, KL, entropy, losses, clip fraction, response length, time per phase) and `eval.json`
(greedy held-out replies scored by the rule, before and after PPO).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "ppo"
DESCRIPTION = "PPO (policy, reference, value, reward models; KL 0.04, top-p 0.9, value warm-up) from SFT and RM"
CONFIG_KEYS = ("model", "ppo")
UPSTREAM = ("tokenizer", "sft", "reward_model")
DISTRIBUTED = False

log = logging.getLogger(__name__)


def _ptx_stream(cfg: QwenConfig, tok: Any) -> list[list[int]]:
    """Pretraining sequences for PPO-ptx: `ppo.ptx_paths` (JSONL `text` under run.data_root, cut into
    model.seq_length windows); else the documented tiny stream: embedded SFT-style conversations (a seed of
    their own) as plain language-model text."""
    from qwen_hpc.alignment import embedded
    from qwen_hpc.alignment.chatml import chatml_ids

    seq = cfg.model.seq_length
    if not cfg.ppo.ptx_paths:
        tasks = embedded.generate(cfg.ppo.seed + 17, 512, held_out=False)
        return [chatml_ids(tok, list(t.messages), add_generation_prompt=False)[:seq] for t in tasks]
    out: list[list[int]] = []
    for pattern in cfg.ppo.ptx_paths:
        for path in sorted(Path(cfg.run.data_root).glob(pattern)):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                text = json.loads(line).get("text")
                if not isinstance(text, str):
                    raise ValueError(f"{path}:{number}: a ptx record needs a 'text' string")
                ids = tok.encode(text) + [tok.eod_id]
                out += [ids[i : i + seq] for i in range(0, len(ids), seq) if len(ids[i : i + seq]) > 1]
    if not out:
        raise FileNotFoundError(f"ppo.ptx_paths {cfg.ppo.ptx_paths} give no text under {cfg.run.data_root}")
    return out


def _file_prompts(cfg: QwenConfig) -> list[Any]:
    from qwen_hpc.rlhf.ppo import Prompt
    from qwen_hpc.rlhf.preference import RecordError, _prompt

    out = []
    for pattern in cfg.ppo.prompt_paths:
        for path in sorted(Path(cfg.run.data_root).glob(pattern)):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    record = json.loads(line)
                    try:
                        out.append(Prompt(tuple(_prompt(record.get("prompt", record.get("messages"))))))
                    except RecordError as err:
                        log.warning("%s:%d: prompt skipped: %s", path, number, err)
    return out


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    import torch

    from qwen_hpc.interop.hf_checkpoint import load_model, single_process_megatron
    from qwen_hpc.rlhf import state as rstate
    from qwen_hpc.rlhf.ppo import NonFiniteReward, PPOModels, embedded_prompts
    from qwen_hpc.rlhf.ppo_train import run_ppo
    from qwen_hpc.rlhf.reward import RewardModel, build_reward_model
    from qwen_hpc.stages.reward_model import tokenizer
    from qwen_hpc.utils.io import write_json

    ppo = cfg.ppo
    tok = tokenizer(cfg, ctx)
    policy_path = Path(ppo.policy_checkpoint) if ppo.policy_checkpoint else ctx.stage_path("sft") / "checkpoints"
    rm_root = Path(ppo.reward_checkpoint) if ppo.reward_checkpoint else ctx.stage_path("reward_model") / "checkpoints"
    rm_found = rstate.latest(rm_root)
    if rm_found is None and ppo.reward == "model":
        raise FileNotFoundError(f"ppo.reward=model needs a reward-model checkpoint: none under {rm_root}")
    if ppo.prompt_paths:
        if ppo.reward == "rule":
            raise ValueError("ppo.reward=rule needs the embedded tasks: leave ppo.prompt_paths empty")
        prompts, heldout = _file_prompts(cfg), []
    else:
        prompts = embedded_prompts(ppo.seed, max(4 * ppo.prompts_per_step, 256), held_out=False)
        heldout = embedded_prompts(0, ppo.heldout_prompts, held_out=True) if ppo.heldout_prompts else []
    with single_process_megatron(seed=ppo.seed):
        policy = load_model(policy_path, cfg.model).train()
        reference = load_model(policy_path, cfg.model)
        for p in reference.parameters():
            p.requires_grad_(False)
        if rm_found is not None:
            rm_payload = rstate.load(rm_found)
            value = build_reward_model(cfg.model, rm_payload)
            reward = build_reward_model(cfg.model, rm_payload).eval() if ppo.reward == "model" else None
        else:  # rule reward and no reward model yet: the value model starts from the policy with a fresh head
            log.warning("no reward-model checkpoint under %s: value model = SFT weights + a fresh head", rm_root)
            value, reward = RewardModel(load_model(policy_path, cfg.model), cfg.model.hidden_size, seed=ppo.seed), None
        if reward is not None:
            for p in reward.parameters():
                p.requires_grad_(False)
        betas = (0.9, 0.95)  # OpenRLHF's Adam betas
        models = PPOModels(
            policy, reference, value, reward,
            torch.optim.AdamW(policy.parameters(), lr=ppo.policy_lr, betas=betas, weight_decay=0.0),
            torch.optim.AdamW(value.parameters(), lr=ppo.value_lr, betas=betas, weight_decay=0.0),
        )
        try:
            result = run_ppo(
                models, tok, prompts, heldout, _ptx_stream(cfg, tok) if ppo.ptx_coef > 0 else [], ppo,
                vocab=tok.n_vocab, ckpt_root=ctx.stage_dir / "checkpoints", should_stop=ctx.should_stop,
                log=lambda m, s: ctx.tracker.log(m, step=s),
            )
        except NonFiniteReward as err:
            log.error("%s", err)
            raise RuntimeError(f"PPO stopped: {err}") from None
    metrics: dict[str, Any] = {
        "step": result.step, "resumed_from": result.resumed_from, "reward": ppo.reward,
        "policy_checkpoint": str(policy_path), "reward_checkpoint": str(rm_found) if rm_found else None,
        **{f"last/{k}": v for k, v in result.last_metrics.items()},
    }
    if result.status != "completed":
        return StageResult(result.status, metrics=metrics, outputs={"checkpoint": result.checkpoint})
    write_json(ctx.stage_dir / "eval.json", {"initial": result.initial_eval, "final": result.final_eval})
    metrics.update({f"eval_initial/{k}": v for k, v in result.initial_eval.items()})
    metrics.update({f"eval_final/{k}": v for k, v in result.final_eval.items()})
    return StageResult("completed", metrics=metrics, outputs={"checkpoint": result.checkpoint})
