//! Subcommands. Each lives in its own file with its `Args` and `run`.

mod encode;
mod eval;
mod grpo;
mod train;

use clap::{Parser, Subcommand};

/// Factored recurrent actor-critic with PPO, and memory-operation policies with GRPO.
#[derive(Debug, Parser)]
#[command(name = "factored-rl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train an agent with recurrent PPO on a built-in environment.
    Train(train::Args),
    /// Evaluate a training checkpoint with deterministic acting.
    Eval(eval::Args),
    /// Embed texts with an OLMoE checkpoint folder.
    Encode(encode::Args),
    /// Train a memory-operation policy (OLMoE encoder + action head) with GRPO.
    Grpo(grpo::Args),
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> factored_rl::Result<()> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Encode(args) => encode::run(args),
        Command::Grpo(args) => grpo::run(args),
    }
}
