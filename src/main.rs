//! `resnet`: run, plan and inspect ResNets on wgpu. See `resnet --help`.

mod cli;

use clap::Parser;

fn main() {
    let started = std::time::Instant::now();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,resnet_wgpu=info,resnet=info"),
    )
    .format_timestamp(None)
    .init();
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args, started) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
