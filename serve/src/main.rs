//! `resnet-serve`: a checkpoint behind the KServe v2 / Open Inference Protocol as Triton
//! implements it over HTTP, with dynamic batching on one GPU thread.

mod batcher;
mod metrics;
mod protocol;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use batcher::{Batcher, Failure, Job, Kind};
use clap::Parser;
use http_body_util::BodyExt;
use metrics::Metrics;
use protocol::Spec;
use resnet_wgpu::classifier::{Classifier, ClassifierOptions, Model, softmax};
use resnet_wgpu::labels::Labels;
use resnet_wgpu::model::load::{LoadOptions, load};
use resnet_wgpu::plan::Precision;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serve a ResNet checkpoint over the KServe v2 HTTP protocol (Triton's clients work unchanged).
#[derive(Parser, Debug)]
#[command(name = "resnet-serve", version)]
struct Args {
    /// Checkpoint: safetensors (F32/F16/BF16), a transformers hub folder or an ONNX file.
    #[arg(long)]
    weights: PathBuf,
    /// Model name (default: the file's stem); the image model is NAME_image.
    #[arg(long)]
    name: Option<String>,
    /// One label per line (default: the checkpoint's own, as `resnet classify`).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Network input side (default: the flavour's).
    #[arg(long)]
    size: Option<usize>,
    /// Resize the shorter side to this, then centre-crop --size.
    #[arg(long)]
    resize: Option<usize>,
    /// Storage precision: f32 or f16.
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// HTTP address (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8000")]
    http: SocketAddr,
    /// gRPC address. gRPC is not implemented yet: the flag is accepted and ignored.
    #[arg(long, default_value = "127.0.0.1:8001")]
    grpc: SocketAddr,
    /// Most images per forward pass (and per request).
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// How long the first request of a batch waits for others, in microseconds.
    #[arg(long, default_value_t = 500)]
    max_queue_delay_us: u64,
    /// Requests waiting for the GPU at most; more get 503 (0: no limit).
    #[arg(long, default_value_t = 1024)]
    max_queue: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_body: usize,
    /// Seconds a client may take to send its body.
    #[arg(long, default_value_t = 30)]
    body_timeout_s: u64,
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse().map_err(|e: resnet_wgpu::Error| e.to_string())
}

struct App {
    spec: Spec,
    classifier: Arc<Classifier>,
    batcher: Batcher,
    metrics: Arc<Metrics>,
    delay_us: u64,
    max_queue: usize,
    max_body: usize,
    body_timeout: Duration,
    /// Requests whose body is being read or parsed at once: each may hold a body of up to
    /// `max_body` and its parsed form, before `--max-queue` counts it.
    reading: Arc<tokio::sync::Semaphore>,
}

/// Bodies read and parsed at once, at most: four batches' worth, within 16..=256.
fn reading_permits(max_batch: usize) -> usize {
    (4 * max_batch).clamp(16, 256)
}

type Shared = Arc<App>;

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": msg.into()}).to_string(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn json_ok(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// A 404's message.
struct NotFound(String);

impl IntoResponse for NotFound {
    fn into_response(self) -> Response {
        error(StatusCode::NOT_FOUND, self.0)
    }
}

impl App {
    /// How many bodies may be read and parsed at once.
    fn reading_limit(&self) -> usize {
        reading_permits(self.spec.max_batch)
    }

    /// Which model `model` names; else the 404 to answer.
    fn kind(&self, model: &str) -> Result<Kind, NotFound> {
        if model == self.spec.name {
            Ok(Kind::Tensor)
        } else if model == self.spec.image_name {
            Ok(Kind::Image)
        } else {
            Err(NotFound(format!(
                "unknown model `{model}`; this server serves `{}` and `{}`",
                self.spec.name, self.spec.image_name
            )))
        }
    }

    fn version(&self, version: &str) -> Result<(), NotFound> {
        if version == "1" {
            Ok(())
        } else {
            Err(NotFound(format!(
                "unknown model version `{version}`; the only version is `1`"
            )))
        }
    }
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn server_metadata() -> Response {
    json_ok(json!({
        "name": "resnet-wgpu",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["classification", "binary_tensor_data", "model_configuration"],
    }))
}

async fn ready(State(app): State<Shared>) -> StatusCode {
    if app.batcher.lost() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn model_ready(State(app): State<Shared>, Path(model): Path<String>) -> Response {
    match app.kind(&model) {
        Ok(_) => ready(State(app)).await.into_response(),
        Err(r) => r.into_response(),
    }
}

async fn model_ready_v(
    State(app): State<Shared>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    if let Err(r) = app.version(&v) {
        return r.into_response();
    }
    model_ready(State(app), Path(m)).await
}

async fn model_metadata(State(app): State<Shared>, Path(model): Path<String>) -> Response {
    match app.kind(&model) {
        Ok(k) => json_ok(app.spec.metadata(k)),
        Err(r) => r.into_response(),
    }
}

async fn model_metadata_v(
    State(app): State<Shared>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    if let Err(r) = app.version(&v) {
        return r.into_response();
    }
    model_metadata(State(app), Path(m)).await
}

async fn model_config(State(app): State<Shared>, Path(model): Path<String>) -> Response {
    match app.kind(&model) {
        Ok(k) => json_ok(app.spec.config(k, app.delay_us, app.max_queue)),
        Err(r) => r.into_response(),
    }
}

async fn model_config_v(
    State(app): State<Shared>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    if let Err(r) = app.version(&v) {
        return r.into_response();
    }
    model_config(State(app), Path(m)).await
}

async fn metrics_text(State(app): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics
            .render(app.classifier.session().pipeline_count()),
    )
        .into_response()
}

async fn infer_v(
    State(app): State<Shared>,
    Path((m, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = app.version(&v) {
        return r.into_response();
    }
    infer(State(app), Path(m), headers, body).await
}

async fn infer(
    State(app): State<Shared>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let kind = match app.kind(&model) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let started = Instant::now();
    let result = infer_inner(&app, kind, headers, body, started).await;
    match result {
        Ok(r) => r,
        Err(r) => {
            app.metrics.failure(kind);
            r
        }
    }
}

async fn infer_inner(
    app: &Shared,
    kind: Kind,
    headers: HeaderMap,
    body: Body,
    started: Instant,
) -> Result<Response, Response> {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let header_len = match headers.get("inference-header-content-length") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(
                    || bad("Inference-Header-Content-Length must be a byte count".into()),
                )?,
        ),
    };
    // Admission: a bounded number of bodies in memory at once; the rest are told to retry.
    let Ok(reading) = app.reading.clone().try_acquire_owned() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} requests are being read already; retry later",
                app.reading_limit()
            ),
        ));
    };
    let bytes = match tokio::time::timeout(app.body_timeout, read_body(body, app.max_body)).await {
        Err(_) => {
            return Err(bad(format!(
                "the request body did not arrive within {} s",
                app.body_timeout.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(bad(e)),
        Ok(Ok(b)) => b,
    };
    // Parsing, decoding and preprocessing on the blocking pool, never on the GPU's thread.
    let a = app.clone();
    let mut req =
        tokio::task::spawn_blocking(move || protocol::parse(&a.spec, kind, &bytes, header_len))
            .await
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(bad)?;
    // The body is parsed: from here `--max-queue` bounds what waits.
    drop(reading);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        kind,
        input: std::mem::take(&mut req.input),
        n: req.n,
        enqueued: Instant::now(),
        reply: tx,
    };
    let unavailable = |f: Failure| match f {
        Failure::QueueFull(q) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the queue is full ({q} requests waiting); retry later"),
        ),
        Failure::DeviceLost(m) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the GPU device was lost ({m}); restart the server"),
        ),
        Failure::Stopped => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ),
        Failure::Failed(m) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the forward pass failed: {m}"),
        ),
    };
    app.batcher.submit(job).map_err(unavailable)?;
    let done = rx
        .await
        .map_err(|_| unavailable(Failure::Stopped))?
        .map_err(unavailable)?;
    let classifier = app.classifier.clone();
    let (body, header) = protocol::respond(&app.spec, kind, &req, &done.logits, |row, k| {
        let mut p = row.to_vec();
        softmax(&mut p);
        classifier
            .top_k(&p, k)
            .into_iter()
            .map(|p| (p.index, p.probability))
            .collect()
    });
    app.metrics.success(
        kind,
        req.n,
        started.elapsed().as_micros() as u64,
        done.queue_us,
        done.compute_us,
    );
    Ok(match header {
        None => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Some(h) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::HeaderName::from_static("inference-header-content-length"),
                    h.to_string(),
                ),
            ],
            body,
        )
            .into_response(),
    })
}

/// Bytes of an over-the-limit body still read (and dropped) so that the client sees the 400
/// rather than a reset connection; a larger body's connection is closed unread.
const DRAIN: usize = 16 << 20;

/// The request body, at most `limit` bytes.
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut over = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the request body could not be read: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if over > 0 || out.len() + data.len() > limit {
            over += data.len();
            out = Vec::new();
            if over > DRAIN {
                break;
            }
        } else {
            out.extend_from_slice(&data);
        }
    }
    if over > 0 {
        return Err(format!(
            "the request body is over the limit of {limit} bytes (--max-body)"
        ));
    }
    Ok(out)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    eprintln!("shutting down: no new connections; answering what is queued");
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    if args.max_batch == 0 {
        return Err("--max-batch must be at least 1".into());
    }
    let loaded = load(&args.weights, &LoadOptions::default()).map_err(|e| e.to_string())?;
    eprintln!("weights: {} ({})", loaded.file.display(), loaded.format);
    let model = Model::from(loaded);
    let preprocess = model
        .preprocess()
        .with_overrides(args.size, args.resize, false);
    let labels = match &args.labels {
        Some(p) => Labels::from_file(p, model.classes()).map_err(|e| e.to_string())?,
        None => model.default_labels(),
    };
    let name = match args.name {
        Some(n) => n,
        None => args
            .weights
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or("cannot name the model after --weights; give --name")?,
    };
    // The plans for 1, 2, 4, ... and max_batch images are all made here, at start-up.
    let classifier = Arc::new(
        Classifier::new(
            &model,
            &ClassifierOptions {
                max_batch: args.max_batch,
                preprocess: Some(preprocess),
                labels: Some(labels.clone()),
                precision: args.precision,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?,
    );
    let [_, h, w] = classifier.session().input_shape();
    let (oh, ow) = preprocess.output_size();
    debug_assert_eq!((h, w), (oh, ow));
    let spec = Spec {
        image_name: format!("{name}_image"),
        name,
        chw: [3, oh, ow],
        classes: model.classes(),
        max_batch: args.max_batch,
        labels: (0..labels.len())
            .map(|i| labels.get(i).to_string())
            .collect(),
        preprocess,
    };
    let metrics = Arc::new(Metrics::new([spec.name.clone(), spec.image_name.clone()]));
    let batcher = Batcher::start(
        classifier.clone(),
        args.max_batch,
        Duration::from_micros(args.max_queue_delay_us),
        args.max_queue,
        metrics.clone(),
    );
    let app = Arc::new(App {
        spec,
        classifier,
        batcher,
        metrics,
        delay_us: args.max_queue_delay_us,
        max_queue: args.max_queue,
        max_body: args.max_body,
        body_timeout: Duration::from_secs(args.body_timeout_s),
        reading: Arc::new(tokio::sync::Semaphore::new(reading_permits(args.max_batch))),
    });
    let router = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{m}", get(model_metadata))
        .route("/v2/models/{m}/ready", get(model_ready))
        .route("/v2/models/{m}/config", get(model_config))
        .route("/v2/models/{m}/infer", post(infer))
        .route("/v2/models/{m}/versions/{v}", get(model_metadata_v))
        .route("/v2/models/{m}/versions/{v}/ready", get(model_ready_v))
        .route("/v2/models/{m}/versions/{v}/config", get(model_config_v))
        .route("/v2/models/{m}/versions/{v}/infer", post(infer_v))
        .route("/metrics", get(metrics_text))
        .fallback(|uri: axum::http::Uri| async move {
            error(StatusCode::NOT_FOUND, format!("no such endpoint: {uri}"))
        })
        .with_state(app.clone());
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.http)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.http))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "gRPC is not implemented yet; --grpc {} is ignored",
            args.grpc
        );
        eprintln!(
            "serving `{}` and `{}` over HTTP on {addr}",
            app.spec.name, app.spec.image_name
        );
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })?;
    // Every connection is closed: answer what is still queued, then stop the GPU thread.
    app.batcher.stop();
    eprintln!("stopped");
    Ok(())
}
