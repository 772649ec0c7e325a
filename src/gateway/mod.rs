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
//! Files: `mod.rs` — [`Gateway`], [`Limits`], the accept loop; `conn.rs` — a connection
//! that gives up on a client that stops reading; `routes.rs` — requests, routes, headers,
//! path lookup; `reach.rs` — the published refs and commits `?rev=` resolves among;
//! `page.rs` — what a listing shows (the JSON form); `html.rs` — the HTML pages and their
//! stylesheet; `markdown.rs` — README rendering; `file.rs` — files, ranges, verified
//! streaming.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::Repo;

mod conn;
mod file;
mod html;
mod markdown;
mod page;
mod reach;
mod routes;

pub use file::parse_range;
pub use reach::Reach;

use conn::Stalling;
use reach::{published_refs, walk_commits};

/// The datasets a gateway serves, by id (hex).
pub struct Gateway {
    repos: Vec<(String, Repo)>,
    /// The published commits of each dataset, by dataset id, for the refs they were
    /// computed from.
    reach: std::sync::Mutex<HashMap<String, Arc<Reach>>>,
    /// Bounds the requests that read a repository at once (each holds at most one tree or
    /// commit in memory, and 256 KiB frames of a file).
    readers: tokio::sync::Semaphore,
    /// The serving peer's ticket of each dataset, by dataset id (hex), once it is known.
    tickets: std::sync::RwLock<HashMap<String, String>>,
}

/// How many requests read repositories at once; the others wait their turn.
const MAX_READERS: usize = 16;

impl Gateway {
    /// Serves `repos` (restricted ones are skipped at every request, so a dataset made
    /// private while the gateway runs disappears from it).
    pub fn new(repos: Vec<Repo>) -> Result<Gateway> {
        let mut out = Vec::new();
        for r in repos {
            let id = hex::encode(r.dataset_id()?.to_bytes());
            r.release_db();
            out.push((id, r));
        }
        Ok(Gateway {
            repos: out,
            reach: std::sync::Mutex::new(HashMap::new()),
            readers: tokio::sync::Semaphore::new(MAX_READERS),
            tickets: std::sync::RwLock::new(HashMap::new()),
        })
    }

    /// Records the tickets (`lode1…`) under which the datasets are served, shown on their
    /// pages ("get this dataset"). Strings that are not tickets are ignored.
    pub fn set_tickets<T: std::fmt::Display>(&self, tickets: &[T]) {
        let mut map = self.tickets.write().unwrap_or_else(|e| e.into_inner());
        for t in tickets {
            let t = t.to_string();
            if let Ok(parsed) = t.parse::<crate::ticket::Ticket>() {
                map.insert(hex::encode(parsed.dataset), t);
            }
        }
    }

    fn ticket(&self, id: &str) -> Option<String> {
        let map = self.tickets.read().unwrap_or_else(|e| e.into_inner());
        map.get(id).cloned()
    }

    fn public(&self, id: &str) -> Option<&Repo> {
        let (_, repo) = self.repos.iter().find(|(d, _)| d == id)?;
        let private = crate::config::is_private(repo).unwrap_or(true);
        repo.release_db();
        (!private).then_some(repo)
    }

    /// The commits dataset `id` publishes now: cached while its refs stay the same, and
    /// extended (not recomputed) when they only move forward.
    fn reach(&self, id: &str, repo: &Repo) -> Result<Arc<Reach>> {
        let (main, tags) = published_refs(repo)?;
        let mut roots: Vec<ObjectId> = main
            .iter()
            .copied()
            .chain(tags.iter().map(|(_, c)| *c))
            .collect();
        roots.sort();
        roots.dedup();
        // One computation at a time: parallel requests for a new head wait for the first.
        let mut cache = self.reach.lock().unwrap_or_else(|e| e.into_inner());
        let old = cache.get(id).cloned();
        if let Some(o) = &old {
            if o.roots == roots && o.main == main && o.tags == tags {
                return Ok(o.clone());
            }
        }
        let parents = walk_commits(repo, &roots, old.as_deref());
        let r = Arc::new(Reach {
            roots,
            main,
            tags,
            first_parent: parents,
        });
        cache.insert(id.to_string(), r.clone());
        Ok(r)
    }
}

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
