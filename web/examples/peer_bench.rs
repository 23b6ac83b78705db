//! The browser peer benchmark's driver (`peer/web/README.md`): serves `peer/web`'s page with
//! its engines, our wasm module and the model on 127.0.0.1, opens it in headless Chromium with
//! WebGPU through WebDriver (the browser tests' setup: `web/webdriver.json`, `CHROMEDRIVER`,
//! `CHROME`), waits for the page's results and prints one table.
//!
//! ```sh
//! web/build.sh                                   # our wasm module, web/dist/pkg
//! (cd peer/web && npm ci)                        # ONNX Runtime Web, pinned by its lock file
//! target/peer-web/venv/bin/python tools/gen_browser_peer.py   # target/peer-web/model
//! cargo run --release -p resnet-web --example peer_bench -- [--runs 10] [--warmup 1] [--batches 1,8]
//!     [--engines ours,ort,tfjs] [--profile] [--json target/peer-web/result.json]
//! ```
//!
//! An example rather than a test: it takes minutes and measures rather than checks, so
//! `cargo test` only builds it. The page itself refuses to time an engine whose output is not
//! ours within 1e-4 (relative to ours' largest |logit|); such a row shows its error.

#[cfg(not(target_arch = "wasm32"))]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    native::main().await;
}

// The driver is native; the wasm32 build of this package is the page's module.
#[cfg(target_arch = "wasm32")]
fn main() {}

// Chromium on a chromedriver, as the page tests start it.
#[cfg(not(target_arch = "wasm32"))]
#[path = "../tests/common/chromium.rs"]
mod chromium;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::chromium::{self, root};
    use resnet_web::serve::{Server, router_with};
    use serde_json::Value;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};
    use thirtyfour::WebDriver;

    /// Chromium's arguments beyond `web/webdriver.json`'s: nothing that reaches the network
    /// (closed on CI machines) or a first-run dialog runs during a measurement; the developer
    /// features make `GPUAdapter.info` name the device (else "swiftshader" with no
    /// description) and leave timestamp queries unquantised, for the profile.
    const QUIET: &[&str] = &[
        "--enable-webgpu-developer-features",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ];

    struct Args {
        runs: u32,
        warmup: u32,
        batches: String,
        engines: String,
        profile: bool,
        json: Option<PathBuf>,
        limit: Duration,
        chrome_args: Vec<String>,
    }

    fn usage() -> ! {
        eprintln!(
            "usage: peer_bench [--runs N] [--warmup N] [--batches 1,8] [--engines ours,ort,tfjs] [--profile] \
             [--json FILE] [--limit-s SECONDS] [--chrome-arg ARG]..."
        );
        std::process::exit(2);
    }

    fn args() -> Args {
        let mut a = Args {
            runs: 10,
            warmup: 1,
            batches: "1,8".into(),
            engines: "ours,ort,tfjs".into(),
            profile: false,
            json: None,
            limit: Duration::from_secs(3600),
            chrome_args: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| usage());
            match flag.as_str() {
                "--runs" => a.runs = value().parse().unwrap_or_else(|_| usage()),
                "--warmup" => a.warmup = value().parse().unwrap_or_else(|_| usage()),
                "--batches" => a.batches = value(),
                "--engines" => a.engines = value(),
                "--profile" => a.profile = true,
                "--json" => a.json = Some(value().into()),
                "--chrome-arg" => a.chrome_args.push(value()),
                "--limit-s" => {
                    a.limit = Duration::from_secs(value().parse().unwrap_or_else(|_| usage()))
                }
                _ => usage(),
            }
        }
        a
    }

    /// `path` (under the repository), or an exit saying which step makes it.
    fn need(path: &str, how: &str) -> PathBuf {
        let p = root().join(path);
        if !p.exists() {
            eprintln!("error: {} is missing; {how}", p.display());
            std::process::exit(1);
        }
        p
    }

    /// Chromium with `web/webdriver.json`'s arguments, [`QUIET`] and `extra`.
    async fn browser(extra: &[String]) -> (WebDriver, chromium::Killed) {
        let add: Vec<&str> = QUIET
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .collect();
        chromium::start(&[], &add).await
    }

    fn num(v: &Value, key: &str, digits: usize) -> String {
        v[key]
            .as_f64()
            .map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
    }

    /// The table: one row per engine and batch, ours/engine = ours' images/s over the
    /// engine's, and ours' first run over the engine's (lower is better for ours).
    fn print_table(result: &Value) {
        let rows = result["rows"].as_array().cloned().unwrap_or_default();
        let ours = |batch: &Value| {
            rows.iter()
                .find(|r| r["engine"] == "ours" && &r["batch"] == batch)
                .cloned()
                .unwrap_or(Value::Null)
        };
        println!(
            "| engine | batch | first run s | median ms / batch | images/s | ours/engine images/s | ours/engine first run | max rel diff vs ours | vs onnxruntime CPU |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for r in &rows {
            let o = ours(&r["batch"]);
            let ratio = |key: &str| match (o[key].as_f64(), r[key].as_f64()) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "–".into(),
            };
            let check = match r["error"].as_str() {
                Some(e) => format!("error: {e}"),
                None => r["relVsOurs"]
                    .as_f64()
                    .map_or("–".into(), |x| format!("{x:.1e}")),
            };
            let cpu = r["relVsOnnxruntimeCpu"]
                .as_f64()
                .map_or("–".into(), |x| format!("{x:.1e}"));
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {check} | {cpu} |",
                r["name"].as_str().unwrap_or("?"),
                r["batch"],
                num(r, "firstRunS", 2),
                num(r, "medianMs", 1),
                num(r, "imagesPerS", 3),
                ratio("imagesPerS"),
                ratio("firstRunS"),
            );
        }
    }

    /// Each profiled engine's kernels, slowest first (the 20 slowest and the rest summed).
    fn print_profiles(result: &Value) {
        for p in result["profiles"].as_array().into_iter().flatten() {
            println!("\nprofile: {}, batch {}", p["engine"], p["batch"]);
            if let Some(e) = p["error"].as_str() {
                println!("  not available: {e}");
                continue;
            }
            let mut rows = p["kernels"].as_array().cloned().unwrap_or_default();
            let ms = |r: &Value| r["ms"].as_f64().unwrap_or(0.0);
            rows.sort_by(|a, b| ms(b).total_cmp(&ms(a)));
            let total: f64 = rows.iter().filter_map(|r| r["ms"].as_f64()).sum();
            println!("| step | kernel | GPU ms | % |\n|---|---|---|---|");
            for r in rows.iter().take(20) {
                let ms = ms(r);
                println!(
                    "| {} | {} | {ms:.1} | {:.1} |",
                    r["name"].as_str().unwrap_or("?"),
                    r["kernel"].as_str().unwrap_or(""),
                    100.0 * ms / total.max(1e-9)
                );
            }
            let rest: f64 = rows.iter().skip(20).filter_map(|r| r["ms"].as_f64()).sum();
            println!(
                "| {} more steps | | {rest:.1} | {:.1} |\n| total | | {total:.1} | 100 |",
                rows.len().saturating_sub(20),
                100.0 * rest / total.max(1e-9)
            );
        }
    }

    pub async fn main() {
        let a = args();
        let page = need("peer/web/index.html", "check out the repository whole");
        let page = page.parent().unwrap().to_path_buf();
        let ort = need(
            "peer/web/node_modules/onnxruntime-web/dist",
            "run `npm ci` in peer/web",
        );
        let tfjs = need(
            "peer/web/node_modules/@tensorflow",
            "run `npm ci` in peer/web",
        );
        let pkg = need("web/dist/pkg/resnet_web_bg.wasm", "run web/build.sh");
        let pkg = pkg.parent().unwrap().to_path_buf();
        let model = need(
            "target/peer-web/model/resnet50.onnx",
            "run tools/gen_browser_peer.py (see its docstring)",
        );
        let model = model.parent().unwrap().to_path_buf();
        let app = router_with(
            &page,
            &[
                ("ort", &ort),
                ("tfjs", &tfjs),
                ("pkg", &pkg),
                ("model", &model),
            ],
        );
        let server = Server::start_router(app, "127.0.0.1:0").expect("a local port");

        let (driver, _chromedriver) = browser(&a.chrome_args).await;
        let url = format!(
            "{}?runs={}&warmup={}&batches={}&engines={}&profile={}",
            server.url(),
            a.runs,
            a.warmup,
            a.batches,
            a.engines,
            u8::from(a.profile)
        );
        eprintln!("peer_bench: {url}");
        let started = Instant::now();
        driver.goto(&url).await.expect("the page opens");
        let mut last_status = String::new();
        let state = loop {
            let v = driver
                .execute(
                    "return [document.body.dataset.state, \
                     document.getElementById('status').textContent];",
                    vec![],
                )
                .await
                .expect("the page answers")
                .json()
                .clone();
            let state = v[0].as_str().unwrap_or_default().to_string();
            let status = v[1].as_str().unwrap_or_default().to_string();
            if status != last_status {
                eprintln!("[{:6.1} s] {status}", started.elapsed().as_secs_f64());
                last_status = status;
            }
            if state == "done" || state == "failed" {
                break state;
            }
            if started.elapsed() > a.limit {
                break "timed out".into();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let console: String = driver
            .browser_log()
            .await
            .unwrap_or_default()
            .iter()
            .map(|l| format!("  console: {}\n", l.message))
            .collect();
        let read = |js: &'static str| {
            let driver = &driver;
            async move {
                driver
                    .execute(js, vec![])
                    .await
                    .map(|r| r.json().clone())
                    .unwrap_or(Value::Null)
            }
        };
        let (result, failed) = if state == "done" {
            (read("return window.benchResult;").await, false)
        } else {
            let error = read("return window.benchError ?? null;").await;
            eprintln!("peer_bench: the page {state}: {error}\n{console}");
            // The rows finished before the failure or the time limit, if any.
            let partial = read("return window.benchPartial ?? null;").await;
            if partial.is_null() {
                let _ = driver.quit().await;
                std::process::exit(1);
            }
            eprintln!("peer_bench: the rows finished so far:");
            (partial, true)
        };
        let _ = driver.quit().await;
        if !failed {
            eprint!("{console}");
        }

        println!("page: {}", result["userAgent"].as_str().unwrap_or("?"));
        println!("adapter: {}", result["adapter"]);
        println!("engines: {}", result["engines"]);
        println!(
            "runs: {} timed after {} untimed; {:.0} s in all\n",
            result["runs"],
            result["warmup"],
            started.elapsed().as_secs_f64()
        );
        print_table(&result);
        print_profiles(&result);
        if let Some(path) = a.json {
            std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("peer_bench: wrote {}", path.display());
        }
        if failed {
            std::process::exit(1);
        }
    }
}
