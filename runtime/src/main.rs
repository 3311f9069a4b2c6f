//! `twinrt`: parse arguments, call the subcommand, map errors to exit codes.

use clap::Parser;
use runtime::cli::{self, Cli, Command};

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TWINRT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match cli.command {
        Command::Check { dir } => cli::check(&dir),
        Command::Inspect {
            data_dir,
            twin,
            history,
            events,
        } => report(cli::inspect(&data_dir, twin.as_deref(), history, events)),
        Command::Run {
            dir,
            data_dir,
            in_memory,
            run_for,
            seed,
            summary_every,
        } => {
            let data_dir = (!in_memory).then_some(data_dir);
            report(runtime_block_on(cli::run(
                &dir,
                data_dir,
                run_for,
                seed,
                summary_every,
            )))
        }
        Command::Bench(args) => report(runtime_block_on(runtime::bench::run(args))),
    };
    std::process::exit(code);
}

fn runtime_block_on<F: std::future::Future<Output = anyhow::Result<()>>>(
    f: F,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
