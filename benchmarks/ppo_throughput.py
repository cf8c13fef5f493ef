"""PPO throughput on the tiny model: the time of each phase of one PPO step (rollout, scoring, reference +
values, training) and rollout tokens/s inside PPO vs the same `Generator` call alone (goal: ≥ 0.8×).

Self-contained: the tiny model (random weights, the measure is speed), a byte-level Qwen tokenizer with the
ChatML special tokens, the embedded prompts and the rule reward. Both sides sample the same prompts with the
same seed, so they generate the same number of tokens; each side is repeated and the median is reported.

    python benchmarks/ppo_throughput.py [--prompts 8] [--new-tokens 32] [--repeats 3]
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
        ppo_tps, alone_tps = [], []
        for r in range(args.repeats):
            exp = make_experience(models, tok, prompts, ppo, RunningMoments(), step=r, vocab=tok.n_vocab,
                                  generator_cls=Generator, sampling_cls=SamplingConfig)
            out = update(models, exp, ppo, warmup=False, vocab=tok.n_vocab, ptx_batch=None)
            for key in ("time/rollout_s", "time/scoring_s", "time/reference_values_s"):
                phases.setdefault(key, []).append(exp.metrics[key])
            phases.setdefault("time/training_s", []).append(out["time/training_s"])
            ppo_tps.append(exp.metrics["rollout_tokens_per_s"])
            # the generator alone, same prompts, same sampling settings and seed
            ids = [chatml_ids(tok, list(pr.messages), system=ppo.system) for pr in prompts for _ in range(2)]
            sampling = SamplingConfig(max_new_tokens=ppo.max_new_tokens, temperature=ppo.temperature,
                                      top_p=ppo.top_p, stop_token_ids=chat_stop_ids(tok),
                                      seed=ppo.seed * 1_000_003 + r)
            t0 = time.perf_counter()
            gens = Generator(policy, tok, vocab_size=tok.n_vocab).generate_ids(ids, sampling)
            alone_tps.append(sum(len(g.token_ids) for g in gens) / (time.perf_counter() - t0))
    print(f"tiny model, {args.prompts} prompts x 2 samples, {args.new_tokens} new tokens, median of {args.repeats}")
    for key, values in phases.items():
        print(f"  {key:<26} {statistics.median(values):8.3f} s")
    inside, alone = statistics.median(ppo_tps), statistics.median(alone_tps)
    print(f"  rollout tokens/s in PPO    {inside:8.1f}")
    print(f"  generator alone tokens/s   {alone:8.1f}")
    print(f"  ratio PPO / generator alone {inside / alone:.2f}x (goal >= 0.8x)")


if __name__ == "__main__":
    main()
