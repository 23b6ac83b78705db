//! Headless Chromium with WebGPU on a chromedriver of our own, for the page tests
//! (`tests/page.rs`) and the browser peer benchmark (`examples/peer_bench.rs`, which includes
//! this file by path): the browser options of `web/webdriver.json` (the wasm tests' too),
//! `CHROMEDRIVER` and `CHROME` from the environment.

use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thirtyfour::WebDriver;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("web/ is inside the repository")
        .to_path_buf()
}

/// A child process that dies with its owner, panicking or not.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chromedriver (`CHROMEDRIVER`, default `chromedriver` on the PATH) and a session
/// with `web/webdriver.json`'s browser arguments, less `drop` and plus `add`. The driver
/// lives as long as the returned [`Killed`].
pub async fn start(drop: &[&str], add: &[&str]) -> (WebDriver, Killed) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let exe = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let child = Command::new(&exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {exe}: {e}. The browser tests need Chromium and its driver: \
                 `apt-get install chromium chromium-driver` (see .ci/run)"
            )
        });
    let chromedriver = Killed(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{exe} did not listen on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("web/webdriver.json")).expect("webdriver.json"),
    )
    .expect("webdriver.json is JSON");
    let mut chrome = config["goog:chromeOptions"].clone();
    if let Ok(binary) = std::env::var("CHROME") {
        chrome["binary"] = json!(binary);
    }
    let args = chrome["args"].as_array_mut().expect("args");
    for arg in drop {
        let before = args.len();
        args.retain(|a| a != arg);
        assert!(args.len() < before, "web/webdriver.json has no {arg}");
    }
    args.extend(add.iter().map(|a| json!(a)));
    let Value::Object(caps) = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome,
        "goog:loggingPrefs": {"browser": "ALL"},
    }) else {
        unreachable!()
    };
    let driver = WebDriver::new(format!("http://127.0.0.1:{port}"), caps)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{exe} cannot start Chromium ({e}); install it with `apt-get install \
                 chromium` or point CHROME at its binary"
            )
        });
    (driver, chromedriver)
}
