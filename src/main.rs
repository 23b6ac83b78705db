//! `resnet`: run, plan and inspect ResNets on wgpu. See `resnet --help`.

#[cfg(not(target_arch = "wasm32"))]
mod cli;

// The command line is native only; in the browser the library runs through `web/`.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use clap::Parser;

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
