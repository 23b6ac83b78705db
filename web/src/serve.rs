//! The static file server for the built page (`web/dist`), for local use
//! (`cargo run --release -p resnet-web --bin serve`) and for the browser tests.
//!
//! tower-http's [`ServeDir`] on axum and tokio, the HTTP stack of `resnet-serve` (the same crate
//! versions: one copy in Cargo.lock): it answers GET and HEAD with the file's type (`.wasm` as
//! `application/wasm`, for streaming compilation), 404 for a missing file or a path that would
//! leave the root (`..`, also percent-encoded), 405 for other methods. Every answer has
//! `Cache-Control: no-store`, so a rebuilt page is never served from the browser's cache.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::thread::JoinHandle;
use tokio::sync::oneshot;
use tower_http::services::ServeDir;

/// The files under `root`, `/` being `root/index.html`.
pub fn router(root: &Path) -> Router {
    router_with(root, &[])
}

/// As [`router`], with each `(prefix, folder)` of `mounts` served under `/prefix/` (the
/// browser peer benchmark's page, its engines' packages and its model under one origin).
pub fn router_with(root: &Path, mounts: &[(&str, &Path)]) -> Router {
    let mut app = Router::new();
    for (prefix, dir) in mounts {
        app = app.nest_service(&format!("/{prefix}"), ServeDir::new(dir));
    }
    app.fallback_service(ServeDir::new(root))
        .layer(middleware::from_fn(no_store_and_log_misses))
}

async fn no_store_and_log_misses(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if response.status() == StatusCode::NOT_FOUND {
        eprintln!("serve: 404 {path}");
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// [`router`] on a thread of its own (with its own runtime, so that blocking code and async
/// tests alike can start one) until [`Server::stop`] or drop.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Serves `root` on `addr` (`127.0.0.1:0`: any free port; see [`Server::addr`]). Binding
    /// happens here, so an address in use is this call's error.
    pub fn start(root: &Path, addr: &str) -> io::Result<Server> {
        Server::start_router(router(root), addr)
    }

    /// As [`Server::start`], serving `app` (e.g. several folders under one origin, as the
    /// browser peer benchmark does, `examples/peer_bench.rs`).
    pub fn start_router(app: Router, addr: &str) -> io::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("resnet-web-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    tokio::select! {
                        served = axum::serve(listener, app).into_future() => served,
                        _ = stopped => Ok(()),
                    }
                })
            })?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving (open connections included) and joins the server's thread.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Serves until the process is killed; returns only if serving failed.
    pub fn wait(mut self) -> io::Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(served)) => served,
            Some(Err(_)) => Err(io::Error::other("the server's thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
