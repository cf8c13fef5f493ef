"""Typed settings of the reward model and PPO (Qwen report §3.2; spec §8). Validated in `__post_init__`;
errors name the key. The paper's values are the defaults; what it leaves open is OpenRLHF's default, named as
such (config/stage/*.yaml says which is which)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, List, Optional  # noqa: UP035 (OmegaConf needs typing generics)

from qwen_hpc.alignment.chatml import DEFAULT_SYSTEM
from qwen_hpc.rlhf.preference import PREFERENCE_FORMATS
from qwen_hpc.utils.config_fields import runtime

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
HH_SUBSETS = ("helpful-base", "harmless-base")
LAYOUT_KEYS = ("tensor_model_parallel_size", "pipeline_model_parallel_size")


def check_layout_keys(section: str, obj: object) -> None:
    for name in LAYOUT_KEYS:
        value = getattr(obj, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{section}.{name}={value!r} must be an integer >= 1 (or null: pretrain.train's)")


def resolved_layout(obj: Any, train: Any) -> tuple[int, int]:
    """(TP, PP) of an RLHF job: the section's own keys, else those `train` (pretrain.train) trained with."""
    tp = obj.tensor_model_parallel_size or train.tensor_model_parallel_size
    pp = obj.pipeline_model_parallel_size or train.pipeline_model_parallel_size
    return tp, pp


@dataclass
class PreferenceSourceConfig:
    """A preference file set: paths or globs (relative ones under `run.data_root`), a format, a cap."""

    name: str
    paths: List[str]  # noqa: UP006
    format: str = "auto"
    max_pairs: Optional[int] = None  # noqa: UP045

    def __post_init__(self) -> None:
        where = f"sources[name={self.name!r}]"
        if not _NAME_RE.match(self.name or ""):
            raise ValueError(f"{where}.name must be non-empty letters, digits, '_', '.', '-'")
        if not self.paths:
            raise ValueError(f"{where}.paths needs at least one path or glob")
        if self.format not in PREFERENCE_FORMATS:
            raise ValueError(f"{where}.format={self.format!r} must be one of {'|'.join(PREFERENCE_FORMATS)}")


@dataclass
class SyntheticPairsConfig:
    """Verifiable pairs from the SFT embedded task set (used when `sources` is empty)."""

    train_pairs: int = 2000
    heldout_pairs: int = 200
    seed: int = 0
    wrong_result_share: float = 0.2  # of arithmetic pairs: rejected = same equation, wrong result

    def __post_init__(self) -> None:
        if self.train_pairs < 1 or self.heldout_pairs < 0 or not 0 <= self.wrong_result_share <= 1:
            raise ValueError("synthetic: train_pairs >= 1, heldout_pairs >= 0, wrong_result_share in [0, 1]")


@dataclass
class RewardModelConfig:
    # "": reward_model_pmp starts from the sft stage's checkpoints, reward_model from reward_model_pmp's end;
    # else a Megatron checkpoint root/folder (a base or SFT model) or an RLHF `checkpoints/` root
    init_checkpoint: str = ""
    lr: float = 3.0e-6  # paper: constant 3e-6
    batch_size: int = 64  # pairs per step (paper: 64)
    micro_batch_size: int = 8  # pairs per forward (chosen and rejected of a pair always in one batch)
    seq_length: int = 2048  # paper: 2048; capped at the model's seq_length
    epochs: int = 1  # paper: 1
    clip_grad: float = 1.0  # OpenRLHF default (max_norm 1.0)
    weight_decay: float = 0.0  # OpenRLHF default (l2 0)
    seed: int = 1234
    save_interval: int = runtime(50)
    system: str = DEFAULT_SYSTEM
    sources: List[PreferenceSourceConfig] = field(default_factory=list)  # noqa: UP006 - []: synthetic
    heldout_fraction: float = 0.05  # of file pairs, for the held-out accuracy
    synthetic: SyntheticPairsConfig = field(default_factory=SyntheticPairsConfig)
    hh_rlhf_eval: List[str] = field(default_factory=lambda: list(HH_SUBSETS))  # noqa: UP006
    hh_eval_limit: int = 0  # > 0: at most this many held-out HH pairs per subset (CPU budget); 0 = all
    # the models' layout in this job, the keys pretraining uses (null: pretrain.train's): TP shards the models
    # (PP must be 1: preflight); the job's ranks / TP are data-parallel replicas that split each batch. How the
    # job runs, not what it learns.
    tensor_model_parallel_size: Optional[int] = runtime(None)  # noqa: UP045 - OmegaConf needs Optional
    pipeline_model_parallel_size: Optional[int] = runtime(None)  # noqa: UP045

    def layout(self, train: Any) -> tuple[int, int]:
        return resolved_layout(self, train)

    def __post_init__(self) -> None:
        check_layout_keys("reward model", self)
        if not self.lr > 0 or self.batch_size < 1 or self.micro_batch_size < 1 or self.epochs < 1:
            raise ValueError("reward model: lr > 0, batch_size, micro_batch_size and epochs >= 1")
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"reward model: batch_size={self.batch_size} must be a multiple of micro_batch_size="
                f"{self.micro_batch_size}"
            )
        if not 0 <= self.heldout_fraction < 1:
            raise ValueError(f"reward model: heldout_fraction={self.heldout_fraction} must be in [0, 1)")
        bad = [s for s in self.hh_rlhf_eval if s not in HH_SUBSETS]
        if bad:
            raise ValueError(f"reward model: hh_rlhf_eval {bad} not in {list(HH_SUBSETS)}")
        if self.seq_length < 8 or self.hh_eval_limit < 0 or self.save_interval < 0:
            raise ValueError("reward model: seq_length >= 8, hh_eval_limit >= 0, save_interval >= 0")


PPO_REWARDS = ("model", "rule")


@dataclass
class PPOConfig:
    """Paper values (§3.2.2) where it gives them; the rest are OpenRLHF's defaults, named in the YAML."""

    policy_checkpoint: str = ""  # "": the sft stage's checkpoints
    reward_checkpoint: str = ""  # "": the reward_model stage's checkpoints (reward and value init)
    reward: str = "model"  # model (the learned RM) | rule (checkable embedded tasks, for CPU verification)
    steps: int = 200  # PPO steps (rollout + update); paper: unconfirmed
    value_warmup_steps: int = 50  # paper: the value model alone for the first 50 steps
    prompts_per_step: int = 64  # OpenRLHF rollout_batch_size is 512 prompts; paper: unconfirmed
    samples_per_prompt: int = 2  # paper: 2 responses per query
    max_new_tokens: int = 512  # rollout length; OpenRLHF generate_max_len 1024; paper: unconfirmed
    top_p: float = 0.9  # paper
    temperature: float = 1.0  # OpenRLHF default
    kl_coef: float = 0.04  # paper (OpenRLHF init_kl_coef 0.01), fixed (no adaptive controller)
    policy_lr: float = 1.0e-6  # paper
    value_lr: float = 5.0e-6  # paper
    value_clip: float = 0.15  # paper
    eps_clip: float = 0.2  # OpenRLHF default
    gamma: float = 1.0  # OpenRLHF default
    lam: float = 0.95  # OpenRLHF default (GAE lambda)
    ppo_epochs: int = 1  # OpenRLHF max_epochs
    train_batch_size: int = 0  # rollouts per optimizer step (OpenRLHF train_batch_size); 0 = the step's whole batch
    micro_batch_size: int = 8  # sequences per forward/backward
    clip_grad: float = 1.0  # OpenRLHF max_norm
    ptx_coef: float = 0.05  # OpenRLHF ptx_coef; paper: used, value unconfirmed
    ptx_batch_size: int = 8  # pretraining sequences per update
    ptx_paths: List[str] = field(default_factory=list)  # noqa: UP006 - []: the embedded stream (README)
    prompt_paths: List[str] = field(default_factory=list)  # noqa: UP006 - []: the embedded tasks
    normalize_reward: bool = True  # running mean/std of raw rewards (paper: running mean)
    heldout_prompts: int = 64  # greedy replies to held-out embedded prompts, scored by the rule, at start and end
    train_prompts: int = 256  # embedded tasks: the training-split prompts PPO draws from (reshuffled each pass)
    seen_eval_prompts: int = 0  # greedy replies to the first N of those, scored at start and end (0 = off)
    system: str = DEFAULT_SYSTEM
    seed: int = 1234
    save_interval: int = runtime(20)
    # the models' layout in this job, the keys pretraining uses (null: pretrain.train's): TP shards the models
    # (PP must be 1: preflight); the job's ranks / TP are data-parallel replicas that split each batch. How the
    # job runs, not what it learns.
    tensor_model_parallel_size: Optional[int] = runtime(None)  # noqa: UP045 - OmegaConf needs Optional
    pipeline_model_parallel_size: Optional[int] = runtime(None)  # noqa: UP045

    def layout(self, train: Any) -> tuple[int, int]:
        return resolved_layout(self, train)

    def __post_init__(self) -> None:
        check_layout_keys("ppo", self)
        if self.reward not in PPO_REWARDS:
            raise ValueError(f"ppo.reward={self.reward!r} must be one of {'|'.join(PPO_REWARDS)}")
        if self.steps < 1 or self.value_warmup_steps < 0 or self.prompts_per_step < 1 or self.samples_per_prompt < 1:
            raise ValueError("ppo: steps, prompts_per_step, samples_per_prompt >= 1; value_warmup_steps >= 0")
        if not 0 < self.top_p <= 1 or self.temperature <= 0 or self.max_new_tokens < 1:
            raise ValueError("ppo: top_p in (0, 1], temperature > 0, max_new_tokens >= 1")
        if min(self.kl_coef, self.value_clip, self.eps_clip, self.ptx_coef) < 0 or not 0 <= self.lam <= 1:
            raise ValueError("ppo: kl_coef, value_clip, eps_clip, ptx_coef >= 0 and lam in [0, 1]")
        if self.policy_lr <= 0 or self.value_lr <= 0 or self.micro_batch_size < 1 or self.ppo_epochs < 1:
            raise ValueError("ppo: policy_lr, value_lr > 0; micro_batch_size, ppo_epochs >= 1")
        rollouts = self.prompts_per_step * self.samples_per_prompt
        if self.train_batch_size < 0 or (self.train_batch_size and rollouts % self.train_batch_size):
            raise ValueError(
                f"ppo.train_batch_size={self.train_batch_size} must be 0 (the whole batch) or divide the step's "
                f"{rollouts} rollouts (prompts_per_step={self.prompts_per_step} x samples_per_prompt="
                f"{self.samples_per_prompt})"
            )
        if self.train_prompts < 1 or not 0 <= self.seen_eval_prompts <= self.train_prompts:
            raise ValueError(
                f"ppo: train_prompts={self.train_prompts} must be >= 1 and seen_eval_prompts="
                f"{self.seen_eval_prompts} in [0, train_prompts]"
            )
