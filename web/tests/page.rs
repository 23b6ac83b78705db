//! The page in a real browser, driven through WebDriver: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) with WebGPU, on the page that `web/build.sh` built into
//! `web/dist`. A visitor's files go through the page's file input; every answer must be what
//! `resnet classify --json` (native, Vulkan) says for the same files: the same top 5 classes
//! in the same order, probabilities within [`PROB_TOL`]; a file that is not an image shows its
//! error on the page and the files after it are still classified.
//!
//! Also writes a screenshot of the page after classifying (`target/web-page.png`, or
//! `RESNET_WEB_SCREENSHOT`), the README's picture.
//!
//! Nothing here skips: without the built page, a browser or a driver the test fails saying
//! what to install. `.ci/run` builds the page and runs this test.

#![cfg(not(target_arch = "wasm32"))]

use resnet_web::serve::Server;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Largest |probability difference| allowed between the page (WebGPU, one image per
/// submission) and the CLI (Vulkan, all images in one batch): both are f32 through the same
/// kernels' arithmetic in different summation orders. Measured worst: see the test's output
/// (`worst probability difference`), 7e-11 on SwiftShader against lavapipe.
const PROB_TOL: f64 = 1e-5;

/// The held-out digits the page classifies (one of each label 0..9 where the set has it).
const DIGITS: &[&str] = &[
    "000_label0.png",
    "004_label1.png",
    "001_label3.png",
    "002_label4.png",
    "005_label5.png",
    "006_label6.png",
    "009_label7.png",
    "008_label8.png",
    "015_label9.png",
];

/// Not an image: must show an error on the page, and not stop the files after it.
const BAD_FILE: &str = "not-an-image.png";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("web/ is inside the repository")
        .to_path_buf()
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A child process that dies with the test, panicking or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One WebDriver session on a chromedriver of our own.
struct Driver {
    port: u16,
    session: String,
    _chromedriver: Killed,
}

/// A blocking HTTP/1.1 exchange with JSON bodies (chromedriver on localhost).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(600)))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // Read by Content-Length, not to the end: chromedriver answers `Connection:close` but
    // keeps the connection open.
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let (split, head) = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                split,
                String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(),
            );
        }
        let got = s.read(&mut buf).map_err(|e| e.to_string())?;
        if got == 0 {
            return Err("the driver closed the connection before its answer's header".into());
        }
        raw.extend_from_slice(&buf[..got]);
    };
    let length = head.lines().find_map(|l| {
        let value = l.strip_prefix("content-length:")?;
        value.trim().parse::<usize>().ok()
    });
    let chunked =
        head.contains("transfer-encoding: chunked") || head.contains("transfer-encoding:chunked");
    let complete = |body: &[u8]| match length {
        Some(n) => body.len() >= n,
        // Chunked: the last chunk is empty.
        None if chunked => body.ends_with(b"0\r\n\r\n"),
        None => false,
    };
    while !complete(&raw[split + 4..]) {
        let got = s.read(&mut buf).map_err(|e| e.to_string())?;
        if got == 0 {
            break; // closed: whatever came is the answer
        }
        raw.extend_from_slice(&buf[..got]);
    }
    let mut payload = raw[split + 4..].to_vec();
    if let Some(n) = length {
        payload.truncate(n);
    } else if chunked {
        payload = dechunk(&payload)?;
    }
    let v: Value = serde_json::from_slice(&payload)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&payload)))?;
    match v["value"].get("error") {
        Some(err) => Err(format!("{err}: {}", v["value"]["message"])),
        None => Ok(v["value"].clone()),
    }
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16)
            .map_err(|e| e.to_string())?;
        if size == 0 {
            return Ok(out);
        }
        let start = eol + 2;
        out.extend_from_slice(data.get(start..start + size).ok_or("short chunk")?);
        data = &data[(start + size + 2).min(data.len())..];
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    sextets
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().fold(0u32, |acc, &v| acc << 6 | u32::from(v)) << (6 * (4 - c.len()));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(c.len().saturating_sub(1))
        })
        .collect()
}

impl Driver {
    /// Starts chromedriver (`CHROMEDRIVER`, default `chromedriver` on the PATH) and a session
    /// with the browser options of `web/webdriver.json` (the wasm tests' too).
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let exe = env_or("CHROMEDRIVER", "chromedriver");
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
        while http(port, "GET", "/status", None).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{exe} did not answer on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let config: Value = serde_json::from_str(
            &std::fs::read_to_string(root().join("web/webdriver.json")).expect("webdriver.json"),
        )
        .expect("webdriver.json is JSON");
        let mut chrome = config["goog:chromeOptions"].clone();
        if let Ok(binary) = std::env::var("CHROME") {
            chrome["binary"] = json!(binary);
        }
        chrome["args"]
            .as_array_mut()
            .expect("args")
            .push(json!("--window-size=900,1400"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = http(port, "POST", "/session", Some(&caps)).unwrap_or_else(|e| {
            panic!(
                "{exe} cannot start Chromium ({e}); install it with `apt-get install chromium` \
                 or point CHROME at its binary"
            )
        });
        Driver {
            port,
            session: session["sessionId"]
                .as_str()
                .expect("sessionId")
                .to_string(),
            _chromedriver: chromedriver,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("/session/{}{path}", self.session);
        http(self.port, method, &url, body.as_ref())
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}{}", self.console()))
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// The browser console so far, for failure messages.
    fn console(&self) -> String {
        let url = format!("/session/{}/se/log", self.session);
        match http(self.port, "POST", &url, Some(&json!({"type": "browser"}))) {
            Ok(Value::Array(lines)) => lines
                .iter()
                .map(|l| format!("\n  console: {}", l["message"].as_str().unwrap_or("")))
                .collect(),
            _ => String::new(),
        }
    }

    /// Polls `js` (an expression) until it is true.
    fn wait_for(&self, js: &str, what: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            if self.script(&format!("return !!({js});")) == json!(true) {
                return;
            }
            if start.elapsed() > limit {
                let status = self.script("return document.getElementById('status').textContent;");
                panic!(
                    "{what}: not within {limit:?}; the page says {status}{}",
                    self.console()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

/// `resnet classify --json` on `files`, as the README documents it for the digits.
fn cli_reference(files: &[PathBuf]) -> Vec<Value> {
    let digits = root().join("assets/digits");
    let out = Command::new(env_or("CARGO", "cargo"))
        .current_dir(root())
        .args(["run", "--release", "--locked", "-q", "-p", "resnet-wgpu"])
        .args(["--bin", "resnet", "--", "classify"])
        .arg("--weights")
        .arg(digits.join("digits.safetensors"))
        .arg("--labels")
        .arg(digits.join("labels.txt"))
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

#[test]
fn the_page_classifies_like_the_cli() {
    let dist = root().join("web/dist");
    assert!(
        dist.join("index.html").is_file() && dist.join("pkg/resnet_web_bg.wasm").is_file(),
        "{} holds no built page: run web/build.sh first",
        dist.display()
    );
    // The visitor's files: held-out digits with a non-image among them.
    let dir = std::env::temp_dir().join(format!("resnet-web-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<PathBuf> = DIGITS
        .iter()
        .map(|name| {
            let to = dir.join(name);
            std::fs::copy(root().join("assets/digits/heldout").join(name), &to).unwrap();
            to
        })
        .collect();
    let bad = dir.join(BAD_FILE);
    std::fs::write(&bad, b"this is text, not a PNG\n").unwrap();
    files.insert(3, bad);

    let reference = cli_reference(&files);
    assert_eq!(reference.len(), files.len(), "the CLI's answers");

    let server = Server::start(&dist, "127.0.0.1:0").expect("the static server starts");
    let driver = Driver::start();
    driver.call("POST", "/url", Some(json!({"url": server.url()})));
    driver.wait_for(
        "document.body.dataset.state === 'ready' || document.body.dataset.state === 'failed'",
        "loading the digits classifier",
        Duration::from_secs(300),
    );
    let status = driver.script("return document.getElementById('status').textContent;");
    assert_eq!(
        driver.script("return document.body.dataset.state;"),
        json!("ready"),
        "the page did not load the model: {status}{}",
        driver.console()
    );
    eprintln!("page: {}", status.as_str().unwrap_or(""));

    let input = driver.call(
        "POST",
        "/element",
        Some(json!({"using": "css selector", "value": "#images"})),
    );
    let element = input
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .expect("an element reference")
        .to_string();
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    driver.call(
        "POST",
        &format!("/element/{element}/value"),
        Some(json!({"text": paths.join("\n")})),
    );
    driver.wait_for(
        &format!(
            "document.querySelectorAll('.result[data-json]').length === {}",
            files.len()
        ),
        "classifying the files",
        Duration::from_secs(300),
    );

    let rows = driver.script(
        "return [...document.querySelectorAll('.result')].map(li => ({
            json: li.dataset.json, state: li.dataset.state, text: li.innerText }));",
    );
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
    assert_eq!(compared, 5 * DIGITS.len(), "probabilities compared");
    eprintln!(
        "{} files ({} digits, 1 bad), {compared} probabilities; worst probability difference \
         page vs CLI: {worst:.2e}",
        files.len(),
        DIGITS.len()
    );

    let shot = driver.call("GET", "/screenshot", None);
    let png = base64_decode(shot.as_str().expect("a base64 screenshot"));
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    let out = std::env::var_os("RESNET_WEB_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/web-page.png"));
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot: {}", out.display());
    drop(driver);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
