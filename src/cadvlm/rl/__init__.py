"""The rl stage: GRPO on a geometric reward after SFT (grpo), its reward (reward), its pictures (prompts)."""
