"""What a PPO run starts from: prompts (a prompt JSONL under the data root, or the embedded tasks), the
PPO-ptx pretraining stream, and the four models with their optimizers (OpenRLHF's Adam betas 0.9/0.95, no
weight decay)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from qwen_hpc.rlhf import state as rstate
from qwen_hpc.rlhf.config import PPOConfig
from qwen_hpc.rlhf.ppo import PPOModels, Prompt

log = logging.getLogger(__name__)


def _jsonl(paths: list[str], data_root: Path) -> list[tuple[Path, int, Any]]:
    out = []
    for pattern in paths:
        files = sorted(Path(p) for p in Path(data_root).glob(pattern)) if not Path(pattern).is_absolute() \
            else [Path(pattern)]
        for path in files:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    out.append((path, number, json.loads(line)))
    return out


def file_prompts(cfg: PPOConfig, data_root: Path) -> list[Prompt]:
    from qwen_hpc.rlhf.preference import RecordError, _prompt

    out = []
    for path, number, record in _jsonl(cfg.prompt_paths, data_root):
        try:
            out.append(Prompt(tuple(_prompt(record.get("prompt", record.get("messages"))))))
        except RecordError as err:
            log.warning("%s:%d: prompt skipped: %s", path, number, err)
    if not out:
        raise FileNotFoundError(f"ppo.prompt_paths {cfg.prompt_paths} give no prompt under {data_root}")
    return out


def ptx_stream(cfg: PPOConfig, tok: Any, seq_length: int, data_root: Path) -> list[list[int]]:
    """Pretraining sequences for PPO-ptx: `ptx_paths` (JSONL `text`, cut into seq_length windows); else the
    documented tiny stream: 512 embedded chat conversations (a seed of their own) read as plain LM text."""
    from qwen_hpc.alignment import embedded
    from qwen_hpc.alignment.chatml import chatml_ids

    if not cfg.ptx_paths:
        tasks = embedded.generate(cfg.seed + 17, 512, held_out=False)
        return [chatml_ids(tok, list(t.messages), add_generation_prompt=False)[:seq_length] for t in tasks]
    out: list[list[int]] = []
    for path, number, record in _jsonl(cfg.ptx_paths, data_root):
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"{path}:{number}: a ptx record needs a 'text' string")
        ids = tok.encode(text) + [tok.eod_id]
        out += [ids[i : i + seq_length] for i in range(0, len(ids), seq_length) if len(ids[i : i + seq_length]) > 1]
    if not out:
        raise FileNotFoundError(f"ppo.ptx_paths {cfg.ptx_paths} give no text under {data_root}")
    return out


def build_models(cfg: PPOConfig, model_cfg: Any, policy_path: Path, rm_root: Path) -> tuple[PPOModels, str | None]:
    """(models, the reward checkpoint used). Call inside `single_process_megatron`."""
    from qwen_hpc.interop.hf_checkpoint import load_model
    from qwen_hpc.rlhf.reward import RewardModel, build_reward_model

    rm_found = rstate.latest(rm_root)
    if rm_found is None and cfg.reward == "model":
        raise FileNotFoundError(f"ppo.reward=model needs a reward-model checkpoint: none under {rm_root}")
    policy = load_model(policy_path, model_cfg).train()
    reference = load_model(policy_path, model_cfg)
    reward = None
    if rm_found is not None:
        payload = rstate.load(rm_found)
        value = build_reward_model(model_cfg, payload)
        reward = build_reward_model(model_cfg, payload).eval() if cfg.reward == "model" else None
    else:  # rule reward and no reward model: the value model starts from the policy with a fresh head
        log.warning("no reward-model checkpoint under %s: value model = SFT weights + a fresh head", rm_root)
        value = RewardModel(load_model(policy_path, model_cfg), model_cfg.hidden_size, seed=cfg.seed)
    for frozen in (reference, reward):
        for p in frozen.parameters() if frozen is not None else ():
            p.requires_grad_(False)
    betas = (0.9, 0.95)
    models = PPOModels(
        policy, reference, value, reward,
        torch.optim.AdamW(policy.parameters(), lr=cfg.policy_lr, betas=betas, weight_decay=0.0),
        torch.optim.AdamW(value.parameters(), lr=cfg.value_lr, betas=betas, weight_decay=0.0),
    )
    return models, str(rm_found) if rm_found else None
