"""Stable-Baselines3 / sb3-contrib on CartPole-v1: the rows of shared/BASELINES.md, measured on this machine.

    --algo ppo        PPO, rl-zoo CartPole-v1 hyperparameters: 8 envs, n_steps 32, batch 256, 20 epochs,
                      gae_lambda 0.8, gamma 0.98, learning rate and clip range linear from 1e-3 / 0.2,
                      ent_coef 0, MlpPolicy (64x64). learn(50_000) runs 196 rollouts of 8 x 32 = 50,176 steps.
    --algo recurrent  sb3-contrib RecurrentPPO, MlpLstmPolicy (LSTM 256) with every default (n_steps 128,
                      batch 128, 10 epochs, lr 3e-4, gamma 0.99, lambda 0.95), 4 envs.
                      learn(20_000) runs 40 rollouts of 4 x 128 = 20,480 steps.
    --algo maskable   sb3-contrib MaskablePPO (every action allowed), defaults (n_steps 2048, batch 64,
                      10 epochs), 4 envs. learn(20_000) runs 3 rollouts of 4 x 2048 = 24,576 steps.

All: PyTorch on the CPU with 1 thread, DummyVecEnv (make_vec_env), Monitor episode statistics.

Prints env steps, wall time of the whole `learn` call and env steps/s, the env step (and seconds into
`learn`) at which the mean return of the last 20 finished training episodes first reached 475, that mean at
the end, and the mean return of a deterministic evaluation (10 episodes by default).
"""

import argparse
import platform
import time

import gymnasium as gym
import numpy as np
import sb3_contrib
import stable_baselines3
import torch
from sb3_contrib import MaskablePPO, RecurrentPPO
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

DEFAULTS = {  # algo: (learn(total_timesteps), envs)
    "ppo": (50_000, 8),
    "recurrent": (20_000, 4),
    "maskable": (20_000, 4),
}


def linear(start):
    """rl-zoo's `lin_<start>`: start * progress_remaining (1 -> 0 over the `learn` call)."""
    return lambda progress_remaining: progress_remaining * start


def allow_all(env):
    return np.ones(env.action_space.n, dtype=bool)


class Progress(BaseCallback):
    """Finished training episodes (Monitor's info['episode']) and when the last-20 mean first reached 475."""

    def __init__(self, threshold=475.0, window=20):
        super().__init__()
        self.threshold, self.window = threshold, window
        self.returns = []
        self.solved_at = None
        self.solved_after_s = None
        self.start = None

    def _on_training_start(self):
        self.start = time.perf_counter()

    def _on_step(self):
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is None:
                continue
            self.returns.append(float(episode["r"]))
            if (self.solved_at is None and len(self.returns) >= self.window
                    and np.mean(self.returns[-self.window:]) >= self.threshold):
                self.solved_at = self.num_timesteps
                self.solved_after_s = time.perf_counter() - self.start
        return True


def build(algo, n_envs, seed):
    if algo == "ppo":
        env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv)
        return PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gae_lambda=0.8, gamma=0.98,
                   ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2),
                   seed=seed, device="cpu", verbose=0)  # default MlpPolicy: separate 64x64 pi and vf
    if algo == "recurrent":
        env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv)
        return RecurrentPPO("MlpLstmPolicy", env, seed=seed, device="cpu", verbose=0)
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv,
                       wrapper_class=ActionMasker, wrapper_kwargs=dict(action_mask_fn=allow_all))
    return MaskablePPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=sorted(DEFAULTS), default="ppo")
    parser.add_argument("--steps", type=int, default=None,
                        help="total_timesteps for learn() (SB3 rounds up to whole rollouts); "
                             "default 50_000 for ppo, 20_000 otherwise")
    parser.add_argument("--n-envs", type=int, default=None, help="default 8 for ppo, 4 otherwise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    steps, n_envs = DEFAULTS[args.algo]
    steps = args.steps or steps
    n_envs = args.n_envs or n_envs

    torch.set_num_threads(args.threads)
    print(f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} thread), "
          f"stable-baselines3 {stable_baselines3.__version__}, sb3-contrib {sb3_contrib.__version__}, "
          f"gymnasium {gym.__version__}, numpy {np.__version__}")
    model = build(args.algo, n_envs, args.seed)
    progress = Progress()
    start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=progress)
    wall = time.perf_counter() - start
    done = model.num_timesteps

    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=args.seed + 10_000, vec_env_cls=DummyVecEnv)
    eval_returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True,
                                      return_episode_rewards=True)
    last20 = np.mean(progress.returns[-20:]) if progress.returns else float("nan")
    solved = (f"{progress.solved_at:,} steps ({progress.solved_after_s:.1f} s)" if progress.solved_at
              else "never")
    name = {"ppo": "PPO (rl-zoo hyperparameters, MLP 64x64)", "recurrent": "RecurrentPPO MlpLstmPolicy defaults",
            "maskable": "MaskablePPO defaults, all actions allowed"}[args.algo]
    print(f"{name}, {n_envs} envs, seed {args.seed}")
    print(f"  env steps {done:,} in {wall:.2f} s = {done / wall:,.0f} env steps/s; {len(progress.returns)} episodes")
    print(f"  last-20-episode mean >= 475 first at: {solved}; last-20 mean at the end: {last20:.1f}")
    print(f"  deterministic eval ({args.eval_episodes} episodes): mean {np.mean(eval_returns):.1f} "
          f"(min {np.min(eval_returns):.0f}, max {np.max(eval_returns):.0f})")


if __name__ == "__main__":
    main()
