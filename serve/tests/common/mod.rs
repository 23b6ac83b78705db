//! The `resnet-serve` process the integration tests talk to: the digits classifier on
//! 127.0.0.1, HTTP and gRPC on ephemeral ports, killed when dropped.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The digits classifier's folder (`assets/digits`).
pub fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/digits")
}

/// A running `resnet-serve`, with the addresses it printed.
pub struct Process {
    /// The server's process.
    pub child: Child,
    /// `host:port` of its HTTP listener.
    pub http: String,
    /// `host:port` of its gRPC listener.
    pub grpc: String,
}

impl Process {
    /// Starts the server with `extra` arguments and `env`, and waits until both listeners are
    /// bound (it prints the gRPC address, then the HTTP one).
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Process {
        let d = digits();
        let mut child = Command::new(env!("CARGO_BIN_EXE_resnet-serve"))
            .envs(env.iter().copied())
            .args(["--weights", d.join("digits.safetensors").to_str().unwrap()])
            .args(["--labels", d.join("labels.txt").to_str().unwrap()])
            .args(["--size", "32", "--resize", "32", "--http", "127.0.0.1:0"])
            .args(["--grpc", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start resnet-serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut grpc = None;
        let http = loop {
            let line = lines
                .next()
                .expect("resnet-serve exited before listening")
                .unwrap();
            if let Some(a) = line.split("over gRPC on ").nth(1) {
                grpc = Some(a.trim().to_string());
            }
            if let Some(a) = line.split("over HTTP on ").nth(1) {
                break a.trim().to_string();
            }
        };
        // Keep draining stderr so that the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Process {
            child,
            http,
            grpc: grpc.expect("no gRPC address before the HTTP one"),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
