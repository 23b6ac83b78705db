//! The page in a real browser, driven through WebDriver: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) with WebGPU, on the page that `web/build.sh` built into
//! `web/dist`. A visitor's files go through the page's file input; every answer must be what
//! `resnet classify --json` (native, Vulkan) says for the same files: the same top 5 classes
//! in the same order, probabilities within [`PROB_TOL`]; a file that is not an image shows its
//! error on the page and the files after it are still classified.
//!
//! The page's failures, each with the exact text it shows: a browser without WebGPU, a site
//! missing the model's weights or labels, a picked checkpoint with a labels file of the wrong
//! length (and, with the right one, its names in the answers), and a panic in the module.
//!
//! Also writes a screenshot of the page after classifying (`target/web-page.png`, or
//! `RESNET_WEB_SCREENSHOT`), the README's picture.
//!
//! Nothing here skips: without the built page, a browser or a driver the test fails saying
//! what to install. `.ci/run` builds the page and runs this test. The page is served by
//! `resnet_web::serve` (tested by itself in `tests/serve.rs`).

#![cfg(not(target_arch = "wasm32"))]

#[path = "common/chromium.rs"]
mod chromium;

use chromium::{Killed, root};
use resnet_web::serve::Server;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use thirtyfour::error::WebDriverResult;
use thirtyfour::{By, WebDriver};

/// Largest |probability difference| allowed between the page (WebGPU, one image per
/// submission) and the CLI (Vulkan, all images in one batch): both are f32 through the same
/// kernels' arithmetic in different summation orders. Measured worst: see the test's output
/// (`worst probability difference`), 7e-11 on SwiftShader against lavapipe.
const PROB_TOL: f64 = 1e-5;

/// The held-out digits the page classifies: the first file (by name) of each label 0..9 in
/// `assets/digits/heldout`, read from the folder so that no label can go missing.
fn heldout_digits() -> Vec<String> {
    let dir = root().join("assets/digits/heldout");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    names.sort();
    let picked: Vec<String> = (0..10)
        .map(|label| {
            names
                .iter()
                .find(|n| digit_label(n) == Some(label))
                .unwrap_or_else(|| panic!("{} has no digit labelled {label}", dir.display()))
                .clone()
        })
        .collect();
    assert_eq!(picked.len(), 10, "one of each label 0..9");
    picked
}

/// `NNN_labelD.png` → D.
fn digit_label(name: &str) -> Option<u32> {
    let d = name.strip_suffix(".png")?.rsplit_once("_label")?.1;
    d.parse().ok()
}

/// Not an image: must show an error on the page, and not stop the files after it.
const BAD_FILE: &str = "not-an-image.png";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Headless Chromium in a WebDriver session (thirtyfour) on a chromedriver of our own.
///
/// Dropping it, passing or panicking, quits Chromium (thirtyfour's drop ends the session from
/// a thread of its own), then kills the driver. That drop needs the tests' multi-threaded
/// runtime: on a current-thread one it waits out its 120 s request timeout and leaves Chromium
/// running.
struct Browser {
    driver: WebDriver,
    _chromedriver: Killed,
}

impl Browser {
    /// Starts chromedriver (`CHROMEDRIVER`, default `chromedriver` on the PATH) and a session
    /// with the browser options of `web/webdriver.json` (the wasm tests' too).
    async fn start() -> Browser {
        Browser::start_with(&[], &[]).await
    }

    /// As [`Browser::start`], without the browser arguments `drop` and with `add`.
    async fn start_with(drop: &[&str], add: &[&str]) -> Browser {
        let add: Vec<&str> = add
            .iter()
            .copied()
            .chain(["--window-size=900,1400"])
            .collect();
        let (driver, chromedriver) = chromium::start(drop, &add).await;
        Browser {
            driver,
            _chromedriver: chromedriver,
        }
    }

    /// `result`'s value, or a panic saying what failed, with the browser console so far.
    async fn ok<T>(&self, what: &str, result: WebDriverResult<T>) -> T {
        match result {
            Ok(value) => value,
            Err(e) => panic!("{what}: {e}{}", self.console().await),
        }
    }

    /// The browser console since the last call, for failure messages.
    async fn console(&self) -> String {
        let lines = self.driver.browser_log().await.unwrap_or_default();
        lines
            .iter()
            .map(|l| format!("\n  console: {}", l.message))
            .collect()
    }

    /// Runs `js` (a function body) in the page and gives what it returns.
    async fn script(&self, js: &str) -> Value {
        let ret = self.ok(js, self.driver.execute(js, vec![]).await).await;
        ret.json().clone()
    }

    /// Runs `js` in the page until it calls its callback, `arguments[0]`, and gives the value.
    async fn script_async(&self, js: &str) -> Value {
        let ret = self
            .ok(js, self.driver.execute_async(js, vec![]).await)
            .await;
        ret.json().clone()
    }

    /// Runs `js` in every page opened from now on, before the page's own scripts (the
    /// DevTools protocol's `Page.addScriptToEvaluateOnNewDocument`).
    async fn before_page_scripts(&self, js: &str) {
        let cdp = self.driver.cdp();
        self.ok(
            js,
            cdp.page().add_script_to_evaluate_on_new_document(js).await,
        )
        .await;
    }

    /// Polls `js` (an expression) until it is true.
    async fn wait_for(&self, js: &str, what: &str, limit: Duration) {
        let start = Instant::now();
        while self.script(&format!("return !!({js});")).await != json!(true) {
            if start.elapsed() > limit {
                let (_, status) = self.status().await;
                panic!(
                    "{what}: not within {limit:?}; the page says {status}{}",
                    self.console().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Opens `url` and waits until the page has loaded its model or failed.
    async fn open(&self, url: &str) {
        self.ok(url, self.driver.goto(url).await).await;
        self.wait_settled("loading the digits classifier").await;
    }

    /// Waits until `<body data-state>` is "ready" or "failed".
    async fn wait_settled(&self, what: &str) {
        self.wait_for(
            "document.body.dataset.state === 'ready' || document.body.dataset.state === 'failed'",
            what,
            Duration::from_secs(300),
        )
        .await;
    }

    /// `<body data-state>` and the status line's text.
    async fn status(&self) -> (String, String) {
        let v = self
            .script(
                "return [document.body.dataset.state, \
                 document.getElementById('status').textContent];",
            )
            .await;
        let text = |i: usize| v[i].as_str().unwrap_or_default().to_string();
        (text(0), text(1))
    }

    /// Types `text` into the element `css` selects (for a file input: one path per line, as a
    /// visitor picks them).
    async fn send_keys(&self, css: &str, text: &str) {
        let element = self.ok(css, self.driver.find(By::Css(css)).await).await;
        self.ok(css, element.send_keys(text).await).await;
    }

    async fn send_files(&self, css: &str, files: &[PathBuf]) {
        let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        self.send_keys(css, &paths.join("\n")).await;
    }

    async fn click(&self, css: &str) {
        let element = self.ok(css, self.driver.find(By::Css(css)).await).await;
        self.ok(css, element.click().await).await;
    }
}

/// `resnet classify --json` on `files`, as the README documents it for the digits (`labels`:
/// the labels file).
fn cli_reference(files: &[PathBuf], labels: &Path) -> Vec<Value> {
    let digits = root().join("assets/digits");
    let out = Command::new(env_or("CARGO", "cargo"))
        .current_dir(root())
        .args(["run", "--release", "--locked", "-q", "-p", "resnet-wgpu"])
        .args(["--bin", "resnet", "--", "classify"])
        .arg("--weights")
        .arg(digits.join("digits.safetensors"))
        .arg("--labels")
        .arg(labels)
        .args(["--size", "32", "--resize", "32", "--json"])
        .args(files)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<Value>(&stdout) {
        Ok(Value::Array(results)) => results,
        _ => panic!(
            "resnet classify printed no JSON list (exit {:?}):\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn base_name(v: &Value) -> String {
    let file = v["file"].as_str().expect("file");
    Path::new(file)
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// The built page (`web/dist`), or a failure saying how to build it.
fn dist() -> PathBuf {
    let dist = root().join("web/dist");
    assert!(
        dist.join("index.html").is_file() && dist.join("pkg/resnet_web_bg.wasm").is_file(),
        "{} holds no built page: run web/build.sh first",
        dist.display()
    );
    dist
}

/// An empty scratch folder of this test process.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-web-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies the held-out digit `name` into `dir`.
fn digit_file(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(root().join("assets/digits/heldout").join(name), &to).unwrap();
    to
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_classifies_like_the_cli() {
    let dist = dist();
    let digits = heldout_digits();
    // The visitor's files: held-out digits with a non-image among them.
    let dir = scratch("page");
    let mut files: Vec<PathBuf> = digits.iter().map(|name| digit_file(&dir, name)).collect();
    let bad = dir.join(BAD_FILE);
    std::fs::write(&bad, b"this is text, not a PNG\n").unwrap();
    files.insert(3, bad);

    let reference = cli_reference(&files, &root().join("assets/digits/labels.txt"));
    assert_eq!(reference.len(), files.len(), "the CLI's answers");

    let server = Server::start(&dist, "127.0.0.1:0").expect("the static server starts");
    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    let (state, status) = browser.status().await;
    assert_eq!(
        state,
        "ready",
        "the page did not load the model: {status}{}",
        browser.console().await
    );
    eprintln!("page: {status}");

    browser.send_files("#images", &files).await;
    browser
        .wait_for(
            &format!(
                "document.querySelectorAll('.result[data-json]').length === {}",
                files.len()
            ),
            "classifying the files",
            Duration::from_secs(300),
        )
        .await;

    let rows = browser
        .script(
            "return [...document.querySelectorAll('.result')].map(li => ({
            json: li.dataset.json, state: li.dataset.state, text: li.innerText }));",
        )
        .await;
    let rows = rows.as_array().expect("a list of rows");
    assert_eq!(rows.len(), files.len(), "one row per file");

    let mut worst = 0.0f64;
    let mut compared = 0;
    for (row, (want, path)) in rows.iter().zip(reference.iter().zip(&files)) {
        let got: Value = serde_json::from_str(row["json"].as_str().expect("json")).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            got["file"],
            json!(name),
            "rows in the order the files were given"
        );
        assert_eq!(base_name(want), name, "the CLI's order");
        if name == BAD_FILE {
            let error = got["error"].as_str().expect("the bad file has an error");
            assert!(want["error"].is_string(), "the CLI accepted {name}: {want}");
            assert!(error.contains("cannot decode"), "{error}");
            assert_eq!(row["state"], json!("error"));
            assert!(
                row["text"].as_str().unwrap().contains(error),
                "the error is shown on the page: {}",
                row["text"]
            );
            continue;
        }
        assert_eq!(row["state"], json!("ok"), "{name}: {got}");
        assert!(got["ms"].as_f64().unwrap() > 0.0, "{name}: time per image");
        let (g, w) = (
            got["top"].as_array().expect("top"),
            want["top"].as_array().expect("the CLI's top"),
        );
        assert_eq!(g.len(), 5, "{name}: top 5");
        assert_eq!(w.len(), 5, "{name}: the CLI's top 5");
        for (rank, (g, w)) in g.iter().zip(w).enumerate() {
            assert_eq!(g["index"], w["index"], "{name}: class at rank {rank}");
            assert_eq!(g["label"], w["label"], "{name}: label at rank {rank}");
            let (pg, pw) = (
                g["probability"].as_f64().unwrap(),
                w["probability"].as_f64().unwrap(),
            );
            assert!(pg.is_finite() && pw.is_finite(), "{name}: {pg} vs {pw}");
            let d = (pg - pw).abs();
            assert!(d <= PROB_TOL, "{name}, rank {rank}: {pg} vs the CLI's {pw}");
            worst = worst.max(d);
            compared += 1;
        }
        // The held-out digit's own label is the top-1 (the classifier is that good on these).
        let label = name.split("label").nth(1).unwrap().trim_end_matches(".png");
        assert_eq!(g[0]["label"], json!(label), "{name}: top-1");
    }
    assert_eq!(compared, 5 * digits.len(), "probabilities compared");
    eprintln!(
        "{} files ({} digits, 1 bad), {compared} probabilities; worst probability difference \
         page vs CLI: {worst:.2e}",
        files.len(),
        digits.len()
    );

    let png = browser
        .driver
        .screenshot_as_png()
        .await
        .expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    let out = std::env::var_os("RESNET_WEB_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/web-page.png"));
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot: {}", out.display());
    drop(browser);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Copies the built page `from` into `to`, leaving out `skip` (a path relative to `from`).
fn copy_site(from: &Path, to: &Path, skip: &Path) {
    let mut left_out = false;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        std::fs::create_dir_all(to.join(&rel)).unwrap();
        for entry in std::fs::read_dir(from.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            if rel == skip {
                left_out = true;
            } else if entry.file_type().unwrap().is_dir() {
                stack.push(rel);
            } else {
                std::fs::copy(entry.path(), to.join(&rel)).unwrap();
            }
        }
    }
    assert!(left_out, "{} has no {}", from.display(), skip.display());
}

/// What the page says without WebGPU: the library's `Error::NoAdapter` (its wasm32 text) after
/// the page's "Cannot load the digits classifier: ".
const NO_WEBGPU: &str = "Cannot load the digits classifier: this browser gives no WebGPU \
    adapter. Open the page in a browser with WebGPU (e.g. Chrome or Edge 113 or later) over \
    https or localhost, with hardware acceleration on; Chromium on Linux needs \
    --enable-unsafe-webgpu --enable-features=Vulkan";

/// Without WebGPU the page says how to get it instead of loading for ever: Chromium with its
/// WebGPU service off (web/webdriver.json's flags less `--enable-unsafe-webgpu`, plus
/// `--disable-features=WebGPUService`: `navigator.gpu` is there but gives no adapter), and a
/// browser without `navigator.gpu` at all (removed before the page's scripts run, through the
/// DevTools protocol: Chromium 156 keeps it under every flag tried).
#[tokio::test(flavor = "multi_thread")]
async fn without_webgpu_the_page_says_how_to_get_it() {
    let server = Server::start(&dist(), "127.0.0.1:0").expect("the static server starts");
    let browser = Browser::start_with(
        &["--enable-unsafe-webgpu"],
        &["--disable-features=WebGPUService"],
    )
    .await;
    browser.open(&server.url()).await;
    let adapter = browser
        .script_async(
            "const done = arguments[0]; \
             navigator.gpu.requestAdapter().then((a) => done(a === null), (e) => done(String(e)));",
        )
        .await;
    assert_eq!(
        adapter,
        json!(true),
        "this browser still gives a WebGPU adapter"
    );
    assert_eq!(
        browser.status().await,
        ("failed".to_string(), NO_WEBGPU.to_string()),
        "{}",
        browser.console().await
    );

    browser
        .before_page_scripts("delete Navigator.prototype.gpu;")
        .await;
    browser.open(&server.url()).await;
    assert_eq!(
        browser.script("return typeof navigator.gpu;").await,
        json!("undefined")
    );
    assert_eq!(
        browser.status().await,
        ("failed".to_string(), NO_WEBGPU.to_string()),
        "{}",
        browser.console().await
    );
}

/// A site missing the model's weights or its labels: the page names the file and the HTTP
/// status (a 404 page's text is never taken for labels).
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_model_file_fails_the_page_naming_it() {
    let dist = dist();
    let browser = Browser::start().await;
    for (tag, missing) in [
        ("weights", "digits/digits.safetensors"),
        ("labels", "digits/labels.txt"),
    ] {
        let site = scratch(&format!("missing-{tag}"));
        copy_site(&dist, &site, Path::new(missing));
        let server = Server::start(&site, "127.0.0.1:0").expect("the static server starts");
        browser.open(&server.url()).await;
        assert_eq!(
            browser.status().await,
            (
                "failed".to_string(),
                format!("Cannot load the digits classifier: {missing}: HTTP 404")
            ),
            "{}",
            browser.console().await
        );
        drop(server);
        std::fs::remove_dir_all(&site).unwrap();
    }
}

/// "Use another checkpoint": Load without a file says to pick one; the digits checkpoint
/// picked with a labels file of names answers with those names (as the CLI does with the same
/// file); a labels file with one name too few is refused, counting both.
#[tokio::test(flavor = "multi_thread")]
async fn another_checkpoint_with_its_labels_file_and_a_wrong_label_count() {
    let dist = dist();
    let dir = scratch("checkpoint");
    let weights = dir.join("digits.safetensors");
    std::fs::copy(root().join("assets/digits/digits.safetensors"), &weights).unwrap();
    let names = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let labels = dir.join("names.txt");
    std::fs::write(&labels, names.join("\n") + "\n").unwrap();
    let short = dir.join("nine-names.txt");
    std::fs::write(&short, names[..9].join("\n") + "\n").unwrap();
    let image = digit_file(&dir, "001_label3.png");
    let want = cli_reference(std::slice::from_ref(&image), &labels);

    let server = Server::start(&dist, "127.0.0.1:0").expect("the static server starts");
    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    let (state, digits_status) = browser.status().await;
    assert_eq!(state, "ready", "{digits_status}{}", browser.console().await);

    browser.click("details summary").await;
    browser.click("#load").await;
    browser
        .wait_for(
            "document.body.dataset.state === 'failed'",
            "Load without a checkpoint",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        browser.status().await.1,
        "Pick a checkpoint file first.",
        "{}",
        browser.console().await
    );

    browser
        .send_files("#weights", std::slice::from_ref(&weights))
        .await;
    browser
        .send_files("#labels", std::slice::from_ref(&labels))
        .await;
    browser.send_keys("#size", "32").await;
    browser.send_keys("#resize", "32").await;
    browser.click("#load").await;
    browser
        .wait_for(
            "document.body.dataset.state === 'ready'",
            "loading the picked checkpoint",
            Duration::from_secs(300),
        )
        .await;
    // The same checkpoint and input size as the digits the page loads itself, on the same
    // adapter: the same line.
    assert_eq!(
        browser.status().await.1,
        digits_status,
        "{}",
        browser.console().await
    );
    browser
        .send_files("#images", std::slice::from_ref(&image))
        .await;
    browser
        .wait_for(
            "document.querySelectorAll('.result[data-json]').length === 1",
            "classifying with the picked checkpoint",
            Duration::from_secs(300),
        )
        .await;
    let json = browser
        .script("return document.querySelector('.result').dataset.json;")
        .await;
    let got: Value = serde_json::from_str(json.as_str().expect("json")).unwrap();
    let (g, w) = (
        got["top"].as_array().expect("top"),
        want[0]["top"].as_array().expect("the CLI's top"),
    );
    assert_eq!(g.len(), 5, "top 5: {got}");
    assert_eq!(
        g[0]["label"],
        json!("three"),
        "the labels file's name: {got}"
    );
    for (rank, (g, w)) in g.iter().zip(w).enumerate() {
        assert_eq!(
            (&g["index"], &g["label"]),
            (&w["index"], &w["label"]),
            "rank {rank}"
        );
        let (pg, pw) = (
            g["probability"].as_f64().unwrap(),
            w["probability"].as_f64().unwrap(),
        );
        assert!(
            (pg - pw).abs() <= PROB_TOL,
            "rank {rank}: {pg} vs the CLI's {pw}"
        );
    }

    browser
        .send_files("#labels", std::slice::from_ref(&short))
        .await;
    browser.click("#load").await;
    browser
        .wait_for(
            "document.body.dataset.state === 'failed'",
            "loading with a labels file one name short",
            Duration::from_secs(300),
        )
        .await;
    assert_eq!(
        browser.status().await.1,
        "Cannot load digits.safetensors: invalid input: the labels file has 9 labels but the \
         model has 10 classes",
        "{}",
        browser.console().await
    );
    drop(browser);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A panic in the module (a bug: here wgpu's, on a `createBuffer` that throws, made to throw
/// through the DevTools protocol before the page's scripts run) leaves its promises pending;
/// the page must say what panicked instead of "Loading…" for ever.
#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_the_module_fails_the_page_visibly() {
    const REFUSED: &str = "createBuffer refused by the test";
    let server = Server::start(&dist(), "127.0.0.1:0").expect("the static server starts");
    let browser = Browser::start().await;
    browser
        .before_page_scripts(&format!(
            "GPUDevice.prototype.createBuffer = function () {{ throw new Error('{REFUSED}'); }};"
        ))
        .await;
    browser.open(&server.url()).await;
    let (state, status) = browser.status().await;
    let console = browser.console().await;
    assert_eq!(state, "failed", "{status}{console}");
    // resnet-web: {the panic's location and message} Reload the page.
    assert!(
        status.starts_with("resnet-web: panicked at ")
            && status.contains("called `Result::unwrap()` on an `Err` value")
            && status.contains(REFUSED)
            && status.ends_with(" Reload the page."),
        "{status}{console}"
    );
    assert!(console.contains("resnet-web: panicked at "), "{console}");
}
