//! `lode serve --http ADDR`: a read-only HTTP gateway to the public datasets a peer serves,
//! for people and tools that will never install lode.
//!
//! Routes: `/` lists the datasets; `/d/DATASET/` and `/d/DATASET/PATH/` list a directory of
//! the dataset's `main` (or of `?rev=REV`); `/d/DATASET/PATH` returns a file, with its
//! content type, `Accept-Ranges: bytes` (one range per request: `bytes=A-B`, `A-`, `-N`),
//! and its BLAKE3 id in `X-Lode-Blake3` and the `ETag`, so a `curl` user can check the file
//! with `b3sum`. A whole-file response is hashed while it streams and the connection is cut
//! if the stored bytes do not match (the client then sees a truncated transfer, never a
//! silently wrong file).
//!
//! Invariants: restricted datasets are never served (they answer 404 like unknown ones);
//! path components are checked like tree names, so `..` and friends cannot leave a tree;
//! `?rev=` resolves only among the commits the dataset publishes ([`Reach`]), so nothing
//! that is in the store without being published is served, or even read; dataset files
//! are served under `Content-Security-Policy: sandbox`, every answer with `nosniff`;
//! nothing here writes to a repository.
//!
//! A directory's page is a dataset page: title, description, license and authors from the
//! commit's metadata, the last commit (message, date, author's name), a revision picker
//! (tags, recent commits), a "get this dataset" box (the serving peer's ticket, the
//! `lode://` URI, a `curl` line), the files with human sizes and BLAKE3 ids, and the
//! directory's README rendered from Markdown with raw HTML shown as text. `?format=json`
//! gives the same listing as JSON (the index too).
//!
//! Files: `mod.rs` — [`Limits`], the accept loop; `state.rs` — [`Gateway`]; `conn.rs` — a
//! connection that gives up on a client that stops reading; `routes.rs` — requests, routes,
//! path lookup; `answer.rs` — plain answers and their security headers; `reach.rs` — the published refs and commits `?rev=` resolves among;
//! `page.rs` — what a listing shows (the JSON form); `html.rs` — the HTML pages and their
//! stylesheet; `markdown.rs` — README rendering; `file.rs` — files, ranges, verified
//! streaming.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

mod answer;
mod conn;
mod file;
mod html;
mod markdown;
mod page;
mod reach;
mod routes;
mod state;

pub use file::parse_range;
pub use reach::Reach;
pub use state::Gateway;

use conn::Stalling;

/// Bounds on the gateway's connections.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open; also how long a response may wait for a client
    /// that reads nothing.
    pub timeout: Duration,
    /// Connections open at once; more wait in the listen queue until one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 20 s; a quarter of the process's open-file limit (each connection holds a socket,
    /// and a file while it sends one), from 8 to 1024.
    fn default() -> Limits {
        let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        Limits {
            timeout: Duration::from_secs(20),
            max_connections: usize::try_from(files / 4)
                .unwrap_or(usize::MAX)
                .clamp(8, 1024),
        }
    }
}

/// Accepts HTTP/1.1 connections on `listener` until the task is dropped, within `limits`.
pub async fn run(listener: tokio::net::TcpListener, gateway: Arc<Gateway>, limits: Limits) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut pause = ACCEPT_PAUSE;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                pause = ACCEPT_PAUSE;
                stream
            }
            Err(e) => {
                // Out of file descriptors, the pending connection stays queued and accept
                // fails again at once: wait for some to be closed rather than spin. Other
                // errors concern one connection (reset before it was accepted).
                if crate::error::too_many_files(&e) {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                } else {
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
                continue;
            }
        };
        let gw = gateway.clone();
        let timeout = limits.timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let io = hyper_util::rt::TokioIo::new(Stalling::new(stream, timeout));
            let svc = hyper::service::service_fn(move |req| {
                let gw = gw.clone();
                async move { Ok::<_, Infallible>(routes::handle(&gw, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(io, svc)
                .await;
        });
    }
}

/// The first pause of the accept loop after an error (doubled while descriptors stay
/// exhausted, up to 1 s).
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// Binds the gateway's listener (so that the address can be printed before serving).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Net(format!("cannot listen for HTTP on {addr}: {e}")))
}
