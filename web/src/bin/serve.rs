//! `cargo run --release -p resnet-web --bin serve [DIR] [ADDR]`: serves the built page (default
//! `web/dist` on `127.0.0.1:8000`); build it first with `web/build.sh`.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist"),
        std::path::PathBuf::from,
    );
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());
    if !dir.join("index.html").is_file() {
        eprintln!(
            "error: {} has no index.html; build the page first with web/build.sh",
            dir.display()
        );
        std::process::exit(1);
    }
    let server = resnet_web::serve::Server::start(&dir, &addr).unwrap_or_else(|e| {
        eprintln!("error: cannot listen on {addr}: {e}; pass another address, e.g. 127.0.0.1:8001");
        std::process::exit(1);
    });
    println!("serving {} at {}", dir.display(), server.url());
    if let Err(e) = server.wait() {
        eprintln!("error: serving {}: {e}", dir.display());
        std::process::exit(1);
    }
}

// The server is native; the wasm32 build of this package is the page's module.
#[cfg(target_arch = "wasm32")]
fn main() {}
