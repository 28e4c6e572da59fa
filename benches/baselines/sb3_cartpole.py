"""Stable-Baselines3 PPO on CartPole-v1 with the rl-zoo hyperparameters, for the end-to-end comparison in
docs/performance.md (the `BASELINES.md` row, run on the same machine as `factored-rl train --env cartpole`).

    python benches/baselines/sb3_cartpole.py [--steps 50176] [--seed 0]

Prints env steps/s over the whole `learn` call, the env step at which the last-20-episode mean return
first reached 475, and a deterministic evaluation (10 episodes).
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env


def linear(start):
    return lambda progress_remaining: progress_remaining * start


class FirstSolved(BaseCallback):
    def __init__(self):
        super().__init__()
        self.returns = []
        self.solved_at = None

    def _on_step(self):
        for info in self.locals["infos"]:
            if "episode" in info:
                self.returns.append(info["episode"]["r"])
                if self.solved_at is None and len(self.returns) >= 20 and np.mean(self.returns[-20:]) >= 475:
                    self.solved_at = self.num_timesteps
        return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50_176)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = make_vec_env("CartPole-v1", n_envs=8, seed=args.seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=args.seed, verbose=0)
    callback = FirstSolved()
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps, callback=callback)
    wall = time.perf_counter() - start
    steps = model.num_timesteps
    eval_env = gym.make("CartPole-v1")
    returns = []
    for episode in range(10):
        obs, _ = eval_env.reset(seed=10_000 + episode)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(action)
            total += reward
            done = terminated or truncated
        returns.append(total)
    print(f"SB3 PPO seed {args.seed}: {steps} env steps in {wall:.2f} s = {steps / wall:,.0f} env steps/s; "
          f"last-20 mean >= 475 first at {callback.solved_at}; deterministic eval mean {np.mean(returns):.1f}")


if __name__ == "__main__":
    main()
