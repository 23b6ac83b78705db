//! `resnet serve`: the inference server. It lives in its own binary, `resnet-serve` (the
//! workspace member `serve/`), so that neither the library nor this CLI carries an async
//! runtime; this command runs that binary from the folder this one is in, with the same
//! arguments, as if it had been called directly.

use clap::Args;
use resnet_wgpu::{Error, Result};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct ServeArgs {
    /// Everything after `serve`, passed to `resnet-serve` as it is (`resnet serve --help`
    /// lists its flags: --weights, --name, --labels, --size, --resize, --precision, --http,
    /// --grpc, --max-batch, --max-queue-delay-us, --max-queue, ...).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// The server binary beside this one.
fn server_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()
        .map_err(|e| Error::Input(format!("cannot tell where this `resnet` binary is ({e})")))?;
    let name = format!("resnet-serve{}", std::env::consts::EXE_SUFFIX);
    let server = me.with_file_name(&name);
    if server.is_file() {
        Ok(server)
    } else {
        Err(Error::Input(format!(
            "`resnet serve` runs the server binary `{name}`, which is not next to {}: build it \
             with `cargo build --release -p resnet-serve` (or run `cargo run --release -p \
             resnet-serve -- ...`)",
            me.display()
        )))
    }
}

pub fn run(args: ServeArgs) -> Result<()> {
    let server = server_binary()?;
    let mut command = std::process::Command::new(&server);
    command.args(&args.args);
    // Unix: the server takes this process's place, so SIGTERM and SIGINT reach it directly
    // and its exit status is the command's.
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = command.exec();
        Err(Error::Input(format!(
            "cannot run {}: {e}",
            server.display()
        )))
    }
    #[cfg(not(unix))]
    {
        let status = command
            .status()
            .map_err(|e| Error::Input(format!("cannot run {}: {e}", server.display())))?;
        std::process::exit(status.code().unwrap_or(1));
    }
}
