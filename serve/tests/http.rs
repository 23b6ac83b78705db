//! The `resnet-serve` binary over HTTP on 127.0.0.1 (ephemeral ports), serving the digits
//! classifier: logits against the library and the framework, the image model against
//! classify, the classification extension, concurrency and batching, bad requests, a full
//! queue, and shutdown with requests in flight. Every server is killed when its test ends.

mod common;

use common::digits;
use resnet_wgpu::classifier::{Classifier, ClassifierOptions, Model};
use resnet_wgpu::labels::Labels;
use resnet_wgpu::preprocess::Preprocess;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// f32 logits, relative to max(1, max|logit|) (as tests/golden.rs).
const TOL: f32 = 1e-5;

/// The server, with its HTTP address.
struct Server {
    process: common::Process,
    addr: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Self::start_with_env(extra, &[])
    }

    fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let process = common::Process::start(extra, env);
        let addr = process.http.clone();
        Server { process, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, path: &str) -> (u16, String) {
        match agent().get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// POSTs `body`; returns the status, the headers we look at and the body.
    fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
        let mut req = agent().post(&self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let r = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("POST {path}: {e}"),
        };
        reply(r)
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with([' ', '{']))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }
}

struct Reply {
    status: u16,
    retry_after: Option<String>,
    header_len: Option<usize>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        let end = self.header_len.unwrap_or(self.body.len());
        serde_json::from_slice(&self.body[..end])
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn reply(r: ureq::Response) -> Reply {
    let status = r.status();
    let retry_after = r.header("retry-after").map(str::to_string);
    let header_len = r
        .header("inference-header-content-length")
        .map(|h| h.parse().unwrap());
    let mut body = Vec::new();
    r.into_reader().read_to_end(&mut body).unwrap();
    Reply {
        status,
        retry_after,
        header_len,
        body,
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build()
}

/// The first `n` held-out digits (file order) with the framework's answers.
fn heldout(n: usize) -> Vec<(PathBuf, Value)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(digits().join("expected.json")).unwrap())
            .unwrap();
    let mut all: Vec<Value> = v["images"].as_array().unwrap().clone();
    all.sort_by(|a, b| a["file"].as_str().cmp(&b["file"].as_str()));
    all.into_iter()
        .take(n)
        .map(|w| (digits().join(w["file"].as_str().unwrap()), w))
        .collect()
}

fn preprocess() -> Preprocess {
    Model::load(digits().join("digits.safetensors"))
        .unwrap()
        .preprocess()
        .with_overrides(Some(32), Some(32), false)
}

/// The library's classifier, as the server builds it.
fn library() -> Classifier {
    let model = Model::load(digits().join("digits.safetensors")).unwrap();
    let labels = Labels::from_file(&digits().join("labels.txt"), 10).unwrap();
    Classifier::new(
        &model,
        &ClassifierOptions {
            max_batch: 8,
            preprocess: Some(preprocess()),
            labels: Some(labels),
            ..Default::default()
        },
    )
    .unwrap()
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.chunks(10).zip(want.chunks(10)) {
        let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() <= TOL * scale, "{what}: {g:?} vs {w:?}");
        }
    }
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn le_floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// A binary request: JSON header, then `binary`.
fn binary_request(header: &Value, binary: &[u8]) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let mut body = serde_json::to_vec(header).unwrap();
    let len = body.len();
    body.extend_from_slice(binary);
    (
        vec![("Inference-Header-Content-Length", len.to_string())],
        body,
    )
}

/// Triton's BYTES serialization.
fn bytes_elements(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        out.extend((i.len() as u32).to_le_bytes());
        out.extend(i);
    }
    out
}

fn image_request(files: &[PathBuf], k: Option<usize>) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let images: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let raw = bytes_elements(&images);
    let mut out = json!({"name": "logits", "parameters": {"binary_data": false}});
    if let Some(k) = k {
        out["parameters"]["classification"] = json!(k);
    }
    binary_request(
        &json!({
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [files.len()],
                        "parameters": {"binary_data_size": raw.len()}}],
            "outputs": [out],
        }),
        &raw,
    )
}

#[test]
fn health_metadata_and_config() {
    let s = Server::start(&["--max-batch", "4", "--max-queue-delay-us", "250"]);
    for p in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/digits/ready",
        "/v2/models/digits_image/ready",
        "/v2/models/digits/versions/1/ready",
    ] {
        assert_eq!(s.get(p).0, 200, "{p}");
    }
    let (status, body) = s.get("/v2");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["extensions"].to_string().contains("binary_tensor_data"));
    let m: Value = serde_json::from_str(&s.get("/v2/models/digits").1).unwrap();
    assert_eq!(
        m["inputs"][0],
        json!({"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]})
    );
    assert_eq!(
        m["outputs"][0],
        json!({"name": "logits", "datatype": "FP32", "shape": [-1, 10]})
    );
    let m: Value = serde_json::from_str(&s.get("/v2/models/digits_image").1).unwrap();
    assert_eq!(
        m["inputs"][0],
        json!({"name": "image", "datatype": "BYTES", "shape": [-1, 1]})
    );
    let c: Value = serde_json::from_str(&s.get("/v2/models/digits/config").1).unwrap();
    assert_eq!(c["max_batch_size"], 4);
    assert_eq!(c["input"][0]["dims"], json!([3, 32, 32]));
    assert_eq!(c["output"][0]["dims"], json!([10]));
    assert_eq!(c["dynamic_batching"]["max_queue_delay_microseconds"], 250);
    let (status, body) = s.get("/v2/models/nope/config");
    assert_eq!(status, 404);
    assert!(body.contains("unknown model `nope`"), "{body}");
    assert_eq!(s.get("/v2/models/digits/versions/2/ready").0, 404);
}

#[test]
fn logits_over_json_and_binary_equal_the_library_and_the_framework() {
    let s = Server::start(&[]);
    let pre = preprocess();
    let lib = library();
    let pipelines = s.metric("resnet_pipelines");
    for n in [1usize, 3, 8] {
        let images = heldout(n);
        let mut input = Vec::new();
        for (f, _) in &images {
            input.extend(pre.apply(&pre.load(f).unwrap()).unwrap());
        }
        let want = lib.logits(&input, n).unwrap();
        let framework: Vec<f32> = images
            .iter()
            .flat_map(|(_, w)| floats(&w["logits"]))
            .collect();
        assert_close(&want, &framework, "library vs framework");
        // JSON.
        let body = json!({"id": "r1", "inputs": [{"name": "input", "datatype": "FP32",
            "shape": [n, 3, 32, 32], "data": input}]});
        let r = s.post("/v2/models/digits/infer", &[], body.to_string().as_bytes());
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["id"], "r1");
        assert_eq!(v["outputs"][0]["shape"], json!([n, 10]));
        let got = floats(&v["outputs"][0]["data"]);
        assert_close(&got, &want, "JSON vs library");
        assert_close(&got, &framework, "JSON vs framework");
        // Binary in and out.
        let raw: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (headers, body) = binary_request(
            &json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [n, 3, 32, 32],
                "parameters": {"binary_data_size": raw.len()}}],
                "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]}),
            &raw,
        );
        let r = s.post("/v2/models/digits/infer", &headers, &body);
        assert_eq!(r.status, 200);
        let h = r.header_len.expect("Inference-Header-Content-Length");
        let v = r.json();
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], n * 40);
        let got = le_floats(&r.body[h..]);
        assert_close(&got, &want, "binary vs library");
        assert_close(&got, &framework, "binary vs framework");
    }
    // Batches of 1, 3 and 8 ran on the plans made at start-up.
    assert!(pipelines > 0.0);
    assert_eq!(s.metric("resnet_pipelines"), pipelines);
    assert_eq!(s.metric("nv_inference_request_success"), 6.0);
    assert_eq!(s.metric("nv_inference_count"), 24.0);
}

#[test]
fn image_model_equals_classify_with_the_classification_extension() {
    let s = Server::start(&[]);
    let lib = library();
    let pre = preprocess();
    let images = heldout(5);
    let files: Vec<PathBuf> = images.iter().map(|(f, _)| f.clone()).collect();
    let decoded: Vec<_> = files.iter().map(|f| pre.load(f).unwrap()).collect();
    let want = lib.classify(&decoded, 3).unwrap();
    // Logits of the image model equal the tensor path's.
    let (headers, body) = image_request(&files, None);
    let r = s.post("/v2/models/digits_image/infer", &headers, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = floats(&r.json()["outputs"][0]["data"]);
    let framework: Vec<f32> = images
        .iter()
        .flat_map(|(_, w)| floats(&w["logits"]))
        .collect();
    assert_close(&got, &framework, "image model vs framework");
    // Top 3 as "probability:index:label", in JSON and in binary.
    let (headers, body) = image_request(&files, Some(3));
    let r = s.post("/v2/models/digits_image/infer", &headers, &body);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["outputs"][0]["datatype"], "BYTES");
    assert_eq!(v["outputs"][0]["shape"], json!([5, 3]));
    let strings: Vec<String> = v["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = want
        .iter()
        .flatten()
        .map(|p| format!("{:.6}:{}:{}", p.probability, p.index, p.label))
        .collect();
    assert_eq!(strings, expected);
    for ((_, w), row) in images.iter().zip(strings.chunks(3)) {
        let top1 = w["top1"].as_u64().unwrap();
        assert!(
            row[0].ends_with(&format!(":{top1}:{top1}")),
            "{row:?} vs {w}"
        );
    }
    let raw = bytes_elements(
        &files
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect::<Vec<_>>(),
    );
    let (headers, body) = binary_request(
        &json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [5],
            "parameters": {"binary_data_size": raw.len()}}],
            "parameters": {"binary_data_output": true},
            "outputs": [{"name": "logits", "parameters": {"classification": 3}}]}),
        &raw,
    );
    let r = s.post("/v2/models/digits_image/infer", &headers, &body);
    assert_eq!(r.status, 200);
    let h = r.header_len.unwrap();
    let mut rest = &r.body[h..];
    let mut binary = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        binary.push(String::from_utf8(rest[4..4 + len].to_vec()).unwrap());
        rest = &rest[4 + len..];
    }
    assert_eq!(binary, expected);
}

#[test]
fn concurrent_clients_get_their_own_answers_in_shared_batches() {
    let s = Arc::new(Server::start(&[
        "--max-batch",
        "8",
        "--max-queue-delay-us",
        "20000",
    ]));
    let pipelines = s.metric("resnet_pipelines");
    let images = Arc::new(heldout(32));
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (s, images, barrier) = (s.clone(), images.clone(), barrier.clone());
            std::thread::spawn(move || {
                for round in 0..4 {
                    let (file, want) = &images[t * 4 + round];
                    barrier.wait();
                    let (headers, body) = image_request(std::slice::from_ref(file), Some(1));
                    let r = s.post("/v2/models/digits_image/infer", &headers, &body);
                    assert_eq!(r.status, 200);
                    let top = r.json()["outputs"][0]["data"][0]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let top1 = want["top1"].as_u64().unwrap();
                    assert!(top.ends_with(&format!(":{top1}:{top1}")), "{file:?}: {top}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.metric("nv_inference_request_success"), 32.0);
    let batches = s.metric("resnet_batch_size_count");
    assert_eq!(s.metric("resnet_batch_size_sum"), 32.0);
    assert!(
        batches < 32.0,
        "no batch held more than one request ({batches} batches)"
    );
    assert_eq!(s.metric("nv_inference_exec_count"), batches);
    assert_eq!(s.metric("resnet_pipelines"), pipelines);
}

/// A bad request: model, headers, body, the status and a piece of the error it gets.
type Case = (
    &'static str,
    Vec<(&'static str, String)>,
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn bad_requests_get_their_status_and_say_what_was_expected() {
    let s = Server::start(&["--max-body", "200000", "--body-timeout-s", "1"]);
    let ok_input = vec![0.5f32; 3072];
    let hdr = |len: usize| vec![("Inference-Header-Content-Length", len.to_string())];
    let png = std::fs::read(&heldout(1)[0].0).unwrap();
    let cases: Vec<Case> = vec![
        ("digits", vec![], b"{not json".to_vec(), 400, "malformed JSON"),
        ("digits", vec![], b"[1,2]".to_vec(), 400, "JSON object"),
        ("digits", vec![], br#"{"inputs": []}"#.to_vec(), 400, "exactly one input"),
        (
            "digits",
            vec![],
            json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": ok_input}]}).to_string().into_bytes(),
            400,
            "unknown input `x`",
        ),
        (
            "digits",
            vec![],
            json!({"inputs": [{"name": "input", "datatype": "INT32", "shape": [1, 3, 32, 32], "data": ok_input}]}).to_string().into_bytes(),
            400,
            "datatype `INT32`; expected `input` (FP32 [-1,3,32,32])",
        ),
        (
            "digits",
            vec![],
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 28, 28], "data": ok_input}]}).to_string().into_bytes(),
            400,
            "shape [1, 3, 28, 28]; expected",
        ),
        (
            "digits",
            vec![],
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 3, 32, 32], "data": ok_input}]}).to_string().into_bytes(),
            400,
            "has 3072 values; shape [2, 3, 32, 32] needs 6144",
        ),
        (
            "digits",
            vec![],
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [9, 3, 32, 32], "data": ok_input}]}).to_string().into_bytes(),
            400,
            "batch of 9; expected 1 to 8",
        ),
        (
            "digits",
            vec![],
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": ok_input}],
                   "outputs": [{"name": "probs"}]}).to_string().into_bytes(),
            400,
            "unknown output `probs`",
        ),
        ("digits", hdr(10_000), b"{}".to_vec(), 400, "Inference-Header-Content-Length is 10000"),
        (
            "digits",
            hdr(json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 12288}}]}).to_string().len()),
            [json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 12288}}]}).to_string().into_bytes(), vec![0u8; 100]].concat(),
            400,
            "binary_data_size 12288 but only 100 bytes",
        ),
        (
            "digits",
            hdr(json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 100}}]}).to_string().len()),
            [json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 100}}]}).to_string().into_bytes(), vec![0u8; 100]].concat(),
            400,
            "100 bytes of binary data; shape [1, 3, 32, 32] of FP32 needs 12288",
        ),
        (
            "digits",
            hdr(json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 12288}}]}).to_string().len()),
            [json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 12288}}]}).to_string().into_bytes(), f32::NAN.to_le_bytes().repeat(3072)].concat(),
            400,
            "holds NaN at element 0; expected finite",
        ),
        (
            "digits",
            hdr(json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 12288}}]}).to_string().len()),
            [json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 12288}}]}).to_string().into_bytes(), f32::INFINITY.to_le_bytes().repeat(3072)].concat(),
            400,
            "holds inf at element 0",
        ),
        (
            "digits",
            hdr(json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 12288}}]}).to_string().len()),
            [json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "parameters": {"binary_data_size": 12288}}]}).to_string().into_bytes(), 0.5f32.to_le_bytes().repeat(3072), vec![1, 2]].concat(),
            400,
            "2 bytes of binary data follow the header that no input",
        ),
        (
            "digits_image",
            vec![],
            json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["not an image"]}]}).to_string().into_bytes(),
            400,
            "expected an encoded image file",
        ),
        (
            "digits_image",
            hdr(json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": png.len()}}]}).to_string().len()),
            [json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": png.len()}}]}).to_string().into_bytes(), png.clone()].concat(),
            400,
            "claims",
        ),
        (
            "digits_image",
            vec![],
            json!({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}]}).to_string().into_bytes(),
            400,
            "expected `image` (BYTES [-1]",
        ),
        ("digits", vec![], vec![b' '; 300_000], 400, "over the limit of 200000 bytes"),
        ("nope", vec![], b"{}".to_vec(), 404, "unknown model `nope`; this server serves `digits` and `digits_image`"),
    ];
    for (model, headers, body, status, text) in &cases {
        let r = s.post(&format!("/v2/models/{model}/infer"), headers, body);
        let v = r.json();
        let e = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error: {v}"));
        assert_eq!(r.status, *status, "{e}");
        assert!(e.contains(text), "{text:?} not in {e:?}");
    }
    // Over the limit, again and again: each client reads its 400, none a reset connection.
    for _ in 0..20 {
        let r = s.post("/v2/models/digits/infer", &[], &vec![b' '; 300_000]);
        assert_eq!(r.status, 400);
    }
    // A client that stops sending its body gets a 400 after --body-timeout-s, not a hang.
    let mut tcp = std::net::TcpStream::connect(&s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        tcp,
        "POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{\"inp"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    // Garbage instead of HTTP: the connection is closed, the server serves on.
    let mut tcp = std::net::TcpStream::connect(&s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let _ = tcp.read_to_end(&mut Vec::new());
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": ok_input}]});
    let r = s.post("/v2/models/digits/infer", &[], body.to_string().as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(s.metric("nv_inference_request_success"), 1.0);
    assert_eq!(
        s.metric("nv_inference_request_failure"),
        cases.len() as f64 + 20.0
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let s = Arc::new(Server::start(&[
        "--max-batch",
        "1",
        "--max-queue",
        "1",
        "--max-queue-delay-us",
        "0",
    ]));
    let input = vec![0.25f32; 3072];
    let raw: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    let (headers, body) = binary_request(
        &json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32],
            "parameters": {"binary_data_size": raw.len()}}]}),
        &raw,
    );
    let (headers, body) = (Arc::new(headers), Arc::new(body));
    let mut statuses = Vec::new();
    for _round in 0..5 {
        let barrier = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (s, h, b, barrier) =
                    (s.clone(), headers.clone(), body.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let r = s.post("/v2/models/digits/infer", &h, &b);
                    if r.status == 503 {
                        assert_eq!(r.retry_after.as_deref(), Some("1"));
                        let v = r.json();
                        assert!(
                            v["error"].as_str().unwrap().contains("queue is full"),
                            "{v}"
                        );
                    } else {
                        assert_eq!(r.status, 200);
                    }
                    r.status
                })
            })
            .collect();
        statuses.extend(threads.into_iter().map(|t| t.join().unwrap()));
        if statuses.contains(&503) {
            break;
        }
    }
    assert!(
        statuses.contains(&503),
        "no request was turned away: {statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    // It serves on.
    assert_eq!(
        s.post("/v2/models/digits/infer", &headers, &body).status,
        200
    );
}

#[test]
fn sigterm_with_requests_in_flight_answers_them_and_exits_0() {
    let mut s = Server::start(&["--max-batch", "8", "--max-queue-delay-us", "300000"]);
    let addr = s.addr.clone();
    let files: Vec<PathBuf> = heldout(6).into_iter().map(|(f, _)| f).collect();
    let threads: Vec<_> = files
        .into_iter()
        .map(|f| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let (headers, body) = image_request(&[f], Some(1));
                let mut req = agent().post(&format!("http://{addr}/v2/models/digits_image/infer"));
                for (k, v) in &headers {
                    req = req.set(k, v);
                }
                match req.send_bytes(&body) {
                    Ok(r) => reply(r).status,
                    Err(ureq::Error::Status(_, r)) => {
                        let r = reply(r);
                        assert!(r.json()["error"].is_string());
                        r.status
                    }
                    // Sent after the listener closed: refused, a clean error.
                    Err(ureq::Error::Transport(_)) => 0,
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    let pid = s.process.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|&c| c == 200 || c == 503 || c == 0),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = s.process.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn a_lost_device_answers_503_with_retry_after_and_the_server_stays_up() {
    let s = Server::start_with_env(&[], &[("RESNET_FAILPOINT", "device-lost-after-batches:1")]);
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32],
        "data": vec![0.5f32; 3072]}]})
    .to_string();
    // The first batch runs, then the device is destroyed.
    assert_eq!(
        s.post("/v2/models/digits/infer", &[], body.as_bytes())
            .status,
        200
    );
    for _ in 0..3 {
        let r = s.post("/v2/models/digits/infer", &[], body.as_bytes());
        assert_eq!(r.status, 503);
        assert_eq!(r.retry_after.as_deref(), Some("1"));
        let v = r.json();
        assert!(
            v["error"].as_str().unwrap().contains("device was lost"),
            "{v}"
        );
    }
    assert_eq!(s.get("/v2/health/live").0, 200);
    assert_eq!(s.get("/v2/health/ready").0, 503);
    assert_eq!(s.get("/v2/models/digits/ready").0, 503);
    assert_eq!(s.metric("nv_inference_request_failure"), 3.0);
}
