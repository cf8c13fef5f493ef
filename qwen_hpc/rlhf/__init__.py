"""RLHF (Qwen report §3.2; spec §8): preference data, the reward model and PPO."""
