//! The static server of the built page (`resnet_web::serve`, the `serve` binary) on a small
//! site of its own: the page at `/`, `.wasm` as `application/wasm`, 404 for a missing file and
//! for every way of climbing out of the root (a file beside the root must never come back),
//! 405 for other methods; and the binary's refusals (an address in use, a folder without a
//! page) as a message and exit status 1, not a panic.

#![cfg(not(target_arch = "wasm32"))]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use resnet_web::serve::{Server, router};
use std::path::{Path, PathBuf};
use std::process::Command;
use tower::ServiceExt;

const PAGE: &str = "<p>the page</p>";
const WASM: &[u8] = b"\0asm\x01\0\0\0";
const SECRET: &str = "beside the root, never served";

/// `site/` (index.html, pkg/page.wasm) and `secret.txt` beside it, in a fresh folder per tag.
fn site(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-web-serve-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("site/pkg")).unwrap();
    std::fs::write(dir.join("site/index.html"), PAGE).unwrap();
    std::fs::write(dir.join("site/pkg/page.wasm"), WASM).unwrap();
    std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
    dir.join("site")
}

/// What the router answers to `method path` exactly as written (an HTTP client would resolve
/// the dot segments before sending): status, content type and body.
async fn ask(root: &Path, method: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = router(root).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, content_type, body.to_vec())
}

#[tokio::test]
async fn serves_the_page_and_nothing_outside_it() {
    let root = site("router");
    let (status, content_type, body) = ask(&root, "GET", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(body, PAGE.as_bytes());

    let (status, content_type, body) = ask(&root, "GET", "/pkg/page.wasm").await;
    assert_eq!(
        (status, content_type.as_str(), body.as_slice()),
        (StatusCode::OK, "application/wasm", WASM)
    );

    for path in [
        "/missing.js",
        "/pkg/",
        "/../secret.txt",
        "/pkg/../../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/pkg/..%2F..%2Fsecret.txt",
        "//secret.txt",
    ] {
        let (status, _, body) = ask(&root, "GET", path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
        assert!(!body.starts_with(SECRET.as_bytes()), "GET {path}");
    }
    assert_eq!(
        ask(&root, "POST", "/").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
}

/// The same over a socket, through [`Server`]: as a browser gets it, `no-store` included.
#[tokio::test]
async fn the_server_answers_over_http() {
    let root = site("socket");
    let server = Server::start(&root, "127.0.0.1:0").expect("the server starts");
    let get = |path: &str| reqwest::get(format!("{}{path}", server.url()));

    let page = get("").await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.text().await.unwrap(), PAGE);
    let wasm = get("pkg/page.wasm").await.unwrap();
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert_eq!(wasm.bytes().await.unwrap(), WASM);
    assert_eq!(get("missing.js").await.unwrap().status(), 404);
    assert_eq!(get("..%2fsecret.txt").await.unwrap().status(), 404);

    // The address is taken: a second server on it is refused, not started.
    let taken = Server::start(&root, &server.addr().to_string());
    assert_eq!(
        taken.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::AddrInUse)
    );
    drop(server);
    std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
}

/// `serve DIR ADDR`, which must fail by itself: stderr and the exit status.
fn serve_fails(dir: &Path, addr: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_serve"))
        .arg(dir)
        .arg(addr)
        .output()
        .expect("the serve binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn the_binary_refuses_a_taken_address_and_a_missing_page() {
    let root = site("binary");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = serve_fails(&root, &addr);
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}:"))
            && stderr.contains("pass another address"),
        "{stderr}"
    );
    let stderr = serve_fails(&root.join("pkg"), "127.0.0.1:0");
    assert!(
        stderr.contains("has no index.html; build the page first with web/build.sh"),
        "{stderr}"
    );
    std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
}
