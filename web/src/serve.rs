//! A static file server for the built page (`web/dist`), for local use
//! (`cargo run --release -p resnet-web --bin serve`) and for the browser tests.
//!
//! Why not `python3 -m http.server`: the page must be served with `application/wasm` for
//! streaming compilation, and CI has no Python to count on. GET and HEAD only, files under
//! the root only, one thread per connection (browsers open idle connections ahead of use).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A server running on a thread of its own until [`Server::stop`] (or drop).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `root` on `addr` (`127.0.0.1:0`: any free port; see [`Server::addr`]).
    pub fn start(root: &Path, addr: &str) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = conn {
                    let root = root.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = handle(stream, &root) {
                            log(&format!("connection: {e}"));
                        }
                    });
                }
            }
        });
        Ok(Server {
            addr,
            stop,
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

    /// Stops accepting and joins the accept thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocking accept so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Blocks until the process is killed.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log(line: &str) {
    eprintln!("serve: {line}");
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        _ => "application/octet-stream",
    }
}

/// The file a request path names under `root`, or `None` for anything that would leave it.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let mut out = root.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    Some(out)
}

fn handle(stream: TcpStream, root: &Path) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    if reader.read_line(&mut request)? == 0 {
        return Ok(()); // a connection opened ahead of use and closed unused
    }
    // The headers are of no interest, but must be read before answering.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut out = stream;
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut out,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
            true,
        );
    }
    let file = resolve(root, target);
    let body = file.as_deref().map(std::fs::read);
    match (file, body) {
        (Some(path), Some(Ok(bytes))) => respond(
            &mut out,
            "200 OK",
            content_type(&path),
            &bytes,
            method == "GET",
        ),
        _ => {
            log(&format!("404 {target}"));
            respond(
                &mut out,
                "404 Not Found",
                "text/plain",
                b"not found\n",
                true,
            )
        }
    }
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if with_body {
        out.write_all(body)?;
    }
    out.flush()?;
    // Drain what the client still sends so that closing does not reset the connection.
    let _ = out.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = out.read(&mut [0u8; 512]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv/page");
        assert_eq!(
            resolve(root, "/pkg/a.wasm?v=1"),
            Some(root.join("pkg/a.wasm"))
        );
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/../../b"), None);
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
    }

    #[test]
    fn serves_files_and_refuses_the_rest() {
        let dir = std::env::temp_dir().join(format!("resnet-web-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        let server = Server::start(&dir, "127.0.0.1:0").unwrap();
        let get = |path: &str| {
            let mut s = TcpStream::connect(server.addr()).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        };
        let ok = get("/");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(
            ok.contains("text/html") && ok.ends_with("<p>hi</p>"),
            "{ok}"
        );
        assert!(get("/missing.js").starts_with("HTTP/1.1 404"));
        assert!(get("/../index.html").starts_with("HTTP/1.1 404"));
        drop(server);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
