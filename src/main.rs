//! The `factored-rl` command line: `train`, `eval`, `encode`, `grpo`.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    factored_rl::backend::retain_freed_memory();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
