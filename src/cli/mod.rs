//! Subcommands. Each lives in its own file with its `Args` and `run`.

pub mod encode;

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
    /// Embed texts with an OLMoE checkpoint folder.
    Encode(encode::Args),
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> factored_rl::Result<()> {
    match cli.command {
        Command::Encode(args) => encode::run(args),
    }
}
