//! `resnet-serve`: a checkpoint behind the KServe v2 / Open Inference Protocol as Triton
//! implements it, over HTTP/REST (`http.rs`) and gRPC (`grpc.rs`), with dynamic batching on one
//! GPU thread (`batcher.rs`). Both transports share the models, the checks and the inference
//! (`app.rs`, `protocol.rs`).

mod app;
mod batcher;
mod grpc;
mod grpc_proto;
mod http;
mod metrics;
mod protocol;

use app::{App, reading_permits};
use batcher::Batcher;
use clap::Parser;
use metrics::Metrics;
use protocol::Spec;
use resnet_wgpu::classifier::{Classifier, ClassifierOptions, Model};
use resnet_wgpu::labels::Labels;
use resnet_wgpu::model::load::{LoadOptions, load};
use resnet_wgpu::plan::Precision;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Serve a ResNet checkpoint over the KServe v2 protocol, HTTP/REST and gRPC (Triton's clients
/// work unchanged).
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
    /// gRPC address (port 0: any free port; `off`: no gRPC).
    #[arg(long, default_value = "127.0.0.1:8001", value_parser = parse_grpc)]
    grpc: Grpc,
    /// Most images per forward pass (and per request).
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// How long the first request of a batch waits for others, in microseconds.
    #[arg(long, default_value_t = 500)]
    max_queue_delay_us: u64,
    /// Requests waiting for the GPU at most; more get 503 / UNAVAILABLE (0: no limit).
    #[arg(long, default_value_t = 1024)]
    max_queue: usize,
    /// Largest request body (HTTP) or message (gRPC) in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_body: usize,
    /// Seconds a client may take to send its body.
    #[arg(long, default_value_t = 30)]
    body_timeout_s: u64,
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse().map_err(|e: resnet_wgpu::Error| e.to_string())
}

/// `--grpc`: an address, or `off`.
#[derive(Clone, Copy, Debug)]
enum Grpc {
    Off,
    On(SocketAddr),
}

fn parse_grpc(s: &str) -> Result<Grpc, String> {
    if s == "off" {
        return Ok(Grpc::Off);
    }
    s.parse()
        .map(Grpc::On)
        .map_err(|e| format!("{e}: expected ADDR:PORT (e.g. 127.0.0.1:8001) or `off`"))
}

/// Serves HTTP (and gRPC) until SIGINT or SIGTERM, then waits for every connection's answers.
async fn serve(app: Arc<App>, http_addr: SocketAddr, grpc: Grpc) -> Result<(), String> {
    let bind = |addr: SocketAddr, what: &'static str| async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen for {what} on {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        Ok::<_, String>((listener, bound))
    };
    let (http_listener, http_bound) = bind(http_addr, "HTTP (--http)").await?;
    let grpc_listener = match grpc {
        Grpc::Off => None,
        Grpc::On(addr) => Some(bind(addr, "gRPC (--grpc)").await?),
    };
    // One signal stops both servers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|&s| s).await;
        }
    };
    let models = format!("`{}` and `{}`", app.spec.name, app.spec.image_name);
    if let Some((_, bound)) = &grpc_listener {
        eprintln!("serving {models} over gRPC on {bound}");
    }
    let grpc_server = async {
        let Some((listener, _)) = grpc_listener else {
            return Ok(());
        };
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(grpc::GrpcService(app.clone()), incoming, stopped())
            .await
            .map_err(|e| format!("gRPC server: {e}"))
    };
    // Tests and scripts wait for this line: it comes last, once every listener is bound.
    eprintln!("serving {models} over HTTP on {http_bound}");
    let http_server = async {
        axum::serve(http_listener, http::router(app.clone()))
            .with_graceful_shutdown(stopped())
            .await
            .map_err(|e| format!("HTTP server: {e}"))
    };
    tokio::try_join!(http_server, grpc_server).map(|_| ())
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
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(serve(app.clone(), args.http, args.grpc))?;
    // Every connection is closed: answer what is still queued, then stop the GPU thread.
    app.batcher.stop();
    eprintln!("stopped");
    Ok(())
}
