"""PPO throughput on the tiny model: the time of each phase of one PPO step (rollout, scoring, reference +
values, training) and rollout tokens/s inside PPO vs the same `Generator` call alone (goal: ≥ 0.8×).

Self-contained: the tiny model (random weights, the measure is speed), a byte-level Qwen tokenizer with the
ChatML special tokens, the embedded prompts and the rule reward. Both sides sample the same prompts with the
same seed, so they generate the same number of tokens; each side is repeated and the median is reported.
A first, unmeasured round warms both up (the first forward of a process pays one-off costs that only the
PPO side, which ran first, used to carry), and the two sides alternate which goes first, so drift in the
machine's load (shared CI cores) falls on both. Besides wall-clock tokens/s (what PPO logs) it reports
tokens per CPU-second of this process (`time.process_time`, all its threads), which other processes on a
loaded machine do not inflate: on shared 2-core CI the wall-clock ratio of two identical calls swings by
several times, the CPU-time ratio says whether the rollout inside PPO does more work than the generator.

    python benchmarks/ppo_throughput.py [--prompts 8] [--new-tokens 32] [--repeats 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first")
    args = p.parse_args()

    from qwen_hpc.alignment.chatml import chat_stop_ids, chatml_ids
    from qwen_hpc.config.compose import load
    from qwen_hpc.inference.generate import Generator, SamplingConfig
    from qwen_hpc.interop.hf_checkpoint import single_process_megatron
    from qwen_hpc.model.builder import build_model, padded_vocab_size
    from qwen_hpc.rlhf.ppo import PPOModels, RunningMoments, embedded_prompts, make_experience, update
    from qwen_hpc.rlhf.reward import RewardModel
    from qwen_hpc.tokenizer.encoding import QwenTokenizer

    torch.set_num_threads(max(1, torch.get_num_threads()))
    _, cfg = load(["experiment=tiny"])
    ppo = dataclasses.replace(cfg.ppo, prompts_per_step=args.prompts, max_new_tokens=args.new_tokens,
                              reward="rule", ptx_coef=0.0)
    tok = QwenTokenizer({bytes([b]): b for b in range(256)})
    prompts = embedded_prompts(0, args.prompts, held_out=False)
    with single_process_megatron(seed=0):
        rows = padded_vocab_size(tok.n_vocab, cfg.model, 1)
        policy, reference = build_model(cfg.model, rows, backend="local"), build_model(cfg.model, rows, backend="local")
        reference.load_state_dict(policy.state_dict())
        value = RewardModel(build_model(cfg.model, rows, backend="local"), cfg.model.hidden_size)
        models = PPOModels(policy, reference, value, None, torch.optim.AdamW(policy.parameters(), lr=1e-6),
                           torch.optim.AdamW(value.parameters(), lr=5e-6))
        phases: dict[str, list[float]] = {}
        ppo_tps, alone_tps, ppo_cpu, alone_cpu = [], [], [], []
        cpu_in_ppo: list[float] = []

        class CPUTimedGenerator(Generator):
            """The same generator; records tokens per CPU-second of the rollout PPO runs through it."""

            def generate_ids(self, *a, **kw):  # noqa: ANN002, ANN003, ANN202
                c0 = time.process_time()
                gens = super().generate_ids(*a, **kw)
                cpu_in_ppo.append(sum(len(g.token_ids) for g in gens) / (time.process_time() - c0))
                return gens

        def alone(r: int) -> tuple[float, float]:
            """The generator alone, same prompts, same sampling settings and seed: (tokens/s, tokens/CPU-s)."""
            ids = [chatml_ids(tok, list(pr.messages), system=ppo.system) for pr in prompts for _ in range(2)]
            sampling = SamplingConfig(max_new_tokens=ppo.max_new_tokens, temperature=ppo.temperature,
                                      top_p=ppo.top_p, stop_token_ids=chat_stop_ids(tok),
                                      seed=ppo.seed * 1_000_003 + r)
            t0, c0 = time.perf_counter(), time.process_time()
            gens = Generator(policy, tok, vocab_size=tok.n_vocab).generate_ids(ids, sampling)
            n = sum(len(g.token_ids) for g in gens)
            return n / (time.perf_counter() - t0), n / (time.process_time() - c0)

        for r in range(-args.warmup, args.repeats):
            first_alone = r % 2 == 1
            alone_r = alone(r) if first_alone else None
            exp = make_experience(models, tok, prompts, ppo, RunningMoments(), step=r, vocab=tok.n_vocab,
                                  generator_cls=CPUTimedGenerator, sampling_cls=SamplingConfig)
            out = update(models, exp, ppo, warmup=False, vocab=tok.n_vocab, ptx_batch=None)
            alone_r = alone(r) if not first_alone else alone_r
            if r < 0:
                continue
            for key in ("time/rollout_s", "time/scoring_s", "time/reference_values_s"):
                phases.setdefault(key, []).append(exp.metrics[key])
            phases.setdefault("time/training_s", []).append(out["time/training_s"])
            ppo_tps.append(exp.metrics["rollout_tokens_per_s"])
            ppo_cpu.append(cpu_in_ppo[-1])
            alone_tps.append(alone_r[0])
            alone_cpu.append(alone_r[1])
    report(args, phases, (ppo_tps, alone_tps), (ppo_cpu, alone_cpu))


def report(args: argparse.Namespace, phases: dict[str, list[float]], wall: tuple[list, list], cpu: tuple[list, list]) -> None:
    ppo_tps, alone_tps = wall
    ppo_cpu, alone_cpu = cpu
    print(f"tiny model, {args.prompts} prompts x 2 samples, {args.new_tokens} new tokens, median of {args.repeats} "
          f"after {args.warmup} warm-up round(s), sides alternating")
    for key, values in phases.items():
        print(f"  {key:<26} {statistics.median(values):8.3f} s")
    inside, alone = statistics.median(ppo_tps), statistics.median(alone_tps)
    print(f"  rollout tokens/s in PPO    {inside:8.1f}")
    print(f"  generator alone tokens/s   {alone:8.1f}")
    print(f"  ratio PPO / generator alone {inside / alone:.2f}x (goal >= 0.8x)   [wall clock]")
    inside, alone = statistics.median(ppo_cpu), statistics.median(alone_cpu)
    print(f"  rollout tokens/CPU-s in PPO {inside:8.1f}")
    print(f"  generator alone tokens/CPU-s {alone:7.1f}")
    print(f"  ratio PPO / generator alone {inside / alone:.2f}x (goal >= 0.8x)   [CPU time of this process]")


if __name__ == "__main__":
    main()
