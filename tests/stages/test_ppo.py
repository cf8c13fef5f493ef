"""Stage `ppo` through the CLI on the small run: with the rule reward, PPO raises the reward of the prompts it
trains on over the SFT policy with a bounded KL (the held-out raise is `xfail` here; an opt-in long run asserts
it); the value warm-up keeps KL at 0 and the policy unchanged; SIGTERM mid-run saves and the rerun makes the
same next rollouts and updates as an uninterrupted run; a reward model that returns NaN stops the run with a
message."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from qwen_hpc.report.html import read_jsonl
from qwen_hpc.rlhf import state as rstate
from qwen_hpc.utils.io import read_json
from tests.conftest import QWEN, REPO, child_env, run_qwen

KL_BOUND = 0.5  # mean per-token KL to the reference (nats) the toy run must stay below
FAST = ["ppo.prompts_per_step=4", "ppo.max_new_tokens=8", "ppo.heldout_prompts=0", "logger=none",
        "ppo.save_interval=0"]


def _root_with_upstream(small_run, root: Path) -> list[str]:
    small_run.stage("reward_model")
    for stage in ("tokenizer", "sft", "reward_model"):
        shutil.copytree(small_run.run_dir / stage, root / "small" / stage)
    return [f"run.root={root}", *[a for a in small_run.args() if not a.startswith("run.root=")]]


def _steps(stage: Path) -> dict[int, dict]:
    return {r["step"]: r for r in read_jsonl(stage / "metrics.jsonl") if "kl" in r}


# 30 steps of 8 prompts x 4 samples drawn from a pool of 16 training prompts (each seen ~15 times), toy LRs
RULE_RUN = ["ppo.reward=rule", "ppo.steps=30", "ppo.value_warmup_steps=4", "ppo.prompts_per_step=8",
            "ppo.samples_per_prompt=4", "ppo.policy_lr=1e-4", "ppo.value_lr=3e-4", "ppo.max_new_tokens=14",
            "ppo.train_prompts=16", "ppo.seen_eval_prompts=16", "ppo.heldout_prompts=64"]


def test_ppo_with_the_rule_reward_beats_the_sft_policy(small_run, tmp_path: Path) -> None:
    """One rule-reward run from the small run's SFT policy. Strict: the loop learns, i.e. the greedy reward and
    accuracy on the prompts it trains on rise well above the SFT policy's (measured 0.637 -> 0.825, 31 -> 69 %
    right) with a bounded KL and KL 0 through the value warm-up. The issue's held-out raise is `xfail` when
    not reached: over a small pool the toy policy memorises the prompts it is rewarded on (here held-out
    0.695 -> 0.653); the setting measured to raise it (a 4,096-prompt pool, policy LR 1e-4, 120 steps of
    32 prompts x 4 samples: 0.679 -> 0.7015 / 0.730 on 200 prompts, two seeds) takes ~20 CPU-minutes, beyond
    the suite's budget: `test_ppo_with_the_rule_reward_raises_the_held_out_reward` runs it on request."""
    args = _root_with_upstream(small_run, tmp_path)
    run_qwen(["ppo", *args, *RULE_RUN])
    stage = tmp_path / "small" / "ppo"
    steps = _steps(stage)
    assert sorted(steps) == list(range(1, 31))
    assert all(steps[s]["kl"] == 0.0 and steps[s]["value_warmup"] == 1.0 for s in (1, 2, 3, 4))
    assert max(r["kl"] for r in steps.values()) < KL_BOUND
    assert any(r["kl"] != 0.0 for s, r in steps.items() if s > 5)
    report = read_json(stage / "eval.json")
    initial, final = report["initial"], report["final"]
    assert initial["seen/prompts"] == final["seen/prompts"] == 16 and final["prompts"] == 64
    # +0.19 in the suite (0.637 -> 0.825), +0.125 in one process (0.750 -> 0.875): the SFT differs by thread count
    assert final["seen/mean_reward"] >= initial["seen/mean_reward"] + 0.05, report
    assert final["seen/accuracy"] > initial["seen/accuracy"], report
    if final["mean_reward"] <= initial["mean_reward"]:
        pytest.xfail(
            f"held-out greedy reward {initial['mean_reward']:.3f} -> {final['mean_reward']:.3f} (accuracy "
            f"{initial['accuracy']:.3f} -> {final['accuracy']:.3f}) while the trained-on prompts rose "
            f"{initial['seen/mean_reward']:.3f} -> {final['seen/mean_reward']:.3f}: issue 16's held-out raise "
            "is not reached here; a 4,096-prompt pool at LR 1e-4 reached it in 120 steps of 32 x 4 (two seeds), too "
            "slow for the suite: QWEN_HPC_LONG_TESTS=1 runs test_ppo_with_the_rule_reward_raises_the_held_out_reward"
        )
    assert final["accuracy"] >= initial["accuracy"], report


# the setting measured to raise the held-out reward: a pool of 4,096 training prompts (none repeats, so there is
# nothing to memorise), 120 steps of 32 prompts x 4 samples at policy LR 1e-4, scored on 200 held-out prompts
HELDOUT_RUN = ["ppo.reward=rule", "ppo.steps=120", "ppo.value_warmup_steps=10", "ppo.prompts_per_step=32",
               "ppo.samples_per_prompt=4", "ppo.policy_lr=1e-4", "ppo.value_lr=3e-4", "ppo.max_new_tokens=14",
               "ppo.train_prompts=4096", "ppo.heldout_prompts=200", "ppo.micro_batch_size=32"]


@pytest.mark.long
def test_ppo_with_the_rule_reward_raises_the_held_out_reward(small_run, tmp_path: Path) -> None:
    """Issue 16's held-out raise, as an opt-in run (~20 CPU-minutes: beyond CI's budget, README "PPO on tiny"):
    the greedy reward and accuracy on 200 held-out questions rise over the SFT policy's with a bounded KL
    (measured 0.675 -> 0.7095, 38.5 -> 44.5 % right, from the SFT CI builds; 0.679 -> 0.7015 / 0.730 from
    another build, seeds 1234 / 3)."""
    args = _root_with_upstream(small_run, tmp_path)
    run_qwen(["ppo", *args, *HELDOUT_RUN], timeout=5400)
    stage = tmp_path / "small" / "ppo"
    steps = _steps(stage)
    assert sorted(steps) == list(range(1, 121)) and max(r["kl"] for r in steps.values()) < KL_BOUND
    report = read_json(stage / "eval.json")
    initial, final = report["initial"], report["final"]
    assert final["prompts"] == 200
    assert final["mean_reward"] > initial["mean_reward"] and final["accuracy"] > initial["accuracy"], report


def test_ppo_logs_every_phase_and_keeps_kl_at_zero_in_warmup(small_run, tmp_path: Path) -> None:
    args = _root_with_upstream(small_run, tmp_path)
    # 4 prompts x 2 samples in mini-batches of 4 rollouts: two optimizer steps per PPO step
    run_qwen(["ppo", *args, *FAST, "ppo.reward=rule", "ppo.steps=5", "ppo.value_warmup_steps=2",
              "ppo.train_batch_size=4"])
    steps = _steps(tmp_path / "small" / "ppo")
    assert sorted(steps) == list(range(1, 6))
    assert all(r["optimizer_steps"] == 2.0 for r in steps.values())
    assert all(steps[s]["kl"] == 0.0 and steps[s]["value_warmup"] == 1.0 for s in (1, 2))
    assert max(abs(r["kl"]) for r in steps.values()) < KL_BOUND
    for key in ("reward/raw", "reward/normalized", "entropy", "policy_loss", "value_loss", "clip_fraction",
                "response_length", "time/rollout_s", "time/scoring_s", "time/training_s"):
        assert key in steps[5], key


def test_value_warmup_leaves_the_policy_unchanged(small_run, tmp_path: Path) -> None:
    args = _root_with_upstream(small_run, tmp_path)
    run_qwen(["ppo", *args, *FAST, "ppo.reward=model", "ppo.steps=2", "ppo.value_warmup_steps=5"])
    stage = tmp_path / "small" / "ppo"
    assert [r["kl"] for r in _steps(stage).values()] == [0.0, 0.0]
    final = rstate.load(rstate.latest(stage / "checkpoints"))
    from qwen_hpc.config.compose import load
    from qwen_hpc.interop.hf_checkpoint import load_model, single_process_megatron
    from qwen_hpc.rlhf.reward import lm_weights

    _, cfg = load(args)
    with single_process_megatron():
        sft = lm_weights(load_model(tmp_path / "small" / "sft" / "checkpoints", cfg.model))
    assert all(torch.equal(final["policy"][k], v) for k, v in sft.items())
    rm = rstate.load(rstate.latest(tmp_path / "small" / "reward_model" / "checkpoints"))
    assert not torch.equal(final["value"]["head"]["weight"], rm["head"]["weight"])  # the value model learned


def test_sigterm_mid_ppo_resumes_with_the_same_rollouts_and_updates(small_run, tmp_path: Path) -> None:
    extra = [*FAST, "ppo.reward=model", "ppo.steps=6", "ppo.value_warmup_steps=2"]
    ref_args = _root_with_upstream(small_run, tmp_path / "ref")
    run_qwen(["ppo", *ref_args, *extra])
    reference = _steps(tmp_path / "ref" / "small" / "ppo")
    args = _root_with_upstream(small_run, tmp_path / "run")
    stage = tmp_path / "run" / "small" / "ppo"
    proc = subprocess.Popen([*QWEN, "ppo", *args, *extra], cwd=REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(_steps(stage) if (stage / "metrics.jsonl").exists() else {}) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, output
    stopped = int((stage / "checkpoints" / "latest").read_text().strip().removeprefix("iter_"))
    assert 2 <= stopped < 6, output
    run_qwen(["ppo", *args, *extra])
    assert read_json(stage / "_SUCCESS.json")["metrics"]["resumed_from"] == stopped
    resumed = _steps(stage)
    ignore = {"time/", "rollout_tokens_per_s", "_timestamp", "time", "wall"}
    for step in range(1, 7):
        same = {k: v for k, v in reference[step].items() if not any(k.startswith(i) for i in ignore)}
        assert {k: resumed[step][k] for k in same} == same, step


def test_a_reward_model_returning_nan_stops_ppo_with_a_message(small_run, tmp_path: Path) -> None:
    args = _root_with_upstream(small_run, tmp_path)
    rm_dir = tmp_path / "small" / "reward_model" / "checkpoints"
    payload = rstate.load(rstate.latest(rm_dir))
    payload["head"]["bias"].fill_(float("nan"))
    bad = rstate.save(tmp_path / "nan_rm", 1, payload)
    proc = run_qwen(["ppo", *args, *FAST, "ppo.reward=model", "ppo.steps=2", f"ppo.reward_checkpoint={bad}"],
                    check=False)
    assert proc.returncode != 0
    assert "the reward model returned a non-finite reward (nan)" in proc.stdout + proc.stderr
    assert not (tmp_path / "small" / "ppo" / "_SUCCESS.json").exists()


def test_two_data_parallel_ranks_run_ppo_and_resume_after_sigterm(small_run, tmp_path: Path) -> None:
    """PPO as a 2-task job (launcher=local, gloo): each rank rolls out 2 of the step's 4 prompts, the
    gradients are summed, rank 0 logs every step; SIGTERM to the job (the local executor forwards it to both
    tasks, as Slurm signals every task) → both ranks stop together → rank 0 saves → the rerun resumes at
    that step and finishes the run."""
    import os

    extra = [*FAST, "ppo.reward=model", "ppo.steps=4", "ppo.value_warmup_steps=1", "ppo.ptx_batch_size=2",
             "ppo.resources.tasks_per_node=2"]
    args = [a.replace("launcher=debug", "launcher=local") for a in _root_with_upstream(small_run, tmp_path)]
    stage = tmp_path / "small" / "ppo"
    proc = subprocess.Popen([*QWEN, "ppo", *args, *extra], cwd=REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(_steps(stage) if (stage / "metrics.jsonl").exists() else {}) < 1:
        time.sleep(0.05)
    os.kill(int(read_json(stage / "launch.json")["job_id"]), signal.SIGTERM)  # the local job's controller
    output, _ = proc.communicate(timeout=300)
    stopped = int((stage / "checkpoints" / "latest").read_text().strip().removeprefix("iter_"))
    assert 1 <= stopped < 4, output
    assert not (stage / "_SUCCESS.json").exists(), output
    run_qwen(["ppo", *args, *extra])
    metrics = read_json(stage / "_SUCCESS.json")["metrics"]
    assert metrics["resumed_from"] == stopped and metrics["data_parallel_size"] == 2
    records = [r for r in read_jsonl(stage / "metrics.jsonl") if "kl" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # rank 0 alone logs, and each step once
    assert records[0]["kl"] == 0.0 and records[0]["value_warmup"] == 1.0  # warm-up over both ranks
    assert all(math.isfinite(r["policy_loss"]) for r in records if r["step"] > 1)
    payload = rstate.load(rstate.latest(stage / "checkpoints"))
    assert len(payload["rng_replicas"]) == 2 and payload["prompt_cursor"] == 4 * 4


def test_ppo_runs_tensor_parallel_over_two_ranks(small_run, tmp_path: Path) -> None:
    """PPO at `ppo.tensor_model_parallel_size=2` (one replica over 2 ranks): policy and reference resharded
    from the SFT checkpoint, the value model SFT + a fresh head (no reward checkpoint at this TP: the rule
    reward), rollouts from the gathered logits, log-probs that agree with the generator's, one checkpoint file
    per TP rank."""
    extra = [*FAST, "ppo.reward=rule", "ppo.steps=2", "ppo.value_warmup_steps=1", "ppo.ptx_batch_size=2",
             "ppo.resources.tasks_per_node=2", "ppo.tensor_model_parallel_size=2",
             f"ppo.reward_checkpoint={tmp_path / 'none'}"]
    args = [a.replace("launcher=debug", "launcher=local") for a in _root_with_upstream(small_run, tmp_path)]
    run_qwen(["ppo", *args, *extra])
    stage = tmp_path / "small" / "ppo"
    steps = _steps(stage)
    assert sorted(steps) == [1, 2] and steps[1]["kl"] == 0.0
    assert all(r["logprob_gap_generator"] < 1e-4 for r in steps.values())  # trainer and generator agree
    assert math.isfinite(steps[2]["policy_loss"]) and math.isfinite(steps[2]["value_loss"])
    latest = rstate.latest(stage / "checkpoints")
    assert (latest / "state.pt").is_file() and (latest / "state_tp1.pt").is_file()


@pytest.mark.parametrize(("experiment", "tp", "ranks"), [("qwen_1_8b", 2, 8), ("qwen_7b_chat", 8, 8), ("qwen_14b", 8, 8),
                                                         ("qwen_72b", 8, 8), ("code_qwen_7b", 8, 8)])
def test_paper_experiments_give_the_rlhf_stages_a_layout_that_fits(experiment, tp, ranks) -> None:
    """The experiment files set the RLHF stages' TP (one value for the chain PMP -> RM -> PPO) and PP = 1 on
    one node (pretraining's TP/PP would be inherited otherwise), which preflight accepts
    (docs/rlhf-memory.md: memory)."""
    from qwen_hpc.config.compose import load
    from qwen_hpc.stages.preflight import check_rlhf_layout, job_world_size

    _, cfg = load([f"experiment={experiment}", "launcher=slurm"])
    for stage in ("reward_model_pmp", "reward_model", "ppo"):
        assert getattr(cfg, stage).layout(cfg.pretrain.train) == (tp, 1) and job_world_size(cfg, stage) == ranks
        check_rlhf_layout(stage, cfg)
