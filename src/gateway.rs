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

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::repo::Repo;
use crate::text::url_decode;

type Body = BoxBody<Bytes, std::io::Error>;

/// The datasets a gateway serves, by id (hex).
pub struct Gateway {
    repos: Vec<(String, Repo)>,
    /// The published commits of each dataset, by dataset id, for the refs they were
    /// computed from.
    reach: std::sync::Mutex<HashMap<String, Arc<Reach>>>,
    /// Bounds the requests that read a repository at once (each holds at most one tree or
    /// commit in memory, and 256 KiB frames of a file).
    readers: tokio::sync::Semaphore,
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
        })
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

/// The commits a dataset publishes: every commit reachable from its published refs, each
/// with its first parent. Only these resolve in `?rev=`: an object that is in the store but
/// not published (a refused push, a commit reset away, objects written there directly) is
/// never found, by id or by prefix.
pub struct Reach {
    /// The published refs' commits, sorted: what the set was computed from.
    roots: Vec<ObjectId>,
    main: Option<ObjectId>,
    tags: Vec<(String, ObjectId)>,
    first_parent: HashMap<ObjectId, Option<ObjectId>>,
}

/// A `main` and named commits (tags).
type Refs = (Option<ObjectId>, Vec<(String, ObjectId)>);

/// The refs a dataset publishes: its `main` (see [`main_of`]) and tags, and those of the
/// signed head it publishes (for a mirror, the only ones).
fn published_refs(repo: &Repo) -> Result<Refs> {
    let main = main_of(repo)?;
    let mut tags: Vec<(String, ObjectId)> = repo
        .refs("tags/")?
        .into_iter()
        .map(|(n, c)| (n.trim_start_matches("tags/").to_string(), c))
        .collect();
    let head = crate::ops::access::stored_head(repo)?;
    repo.release_db();
    let mut extra = Vec::new();
    if let Some(h) = head.filter(|h| !h.body.private) {
        for (n, c) in h.body.tags {
            if !tags.iter().any(|(t, _)| *t == n) {
                tags.push((n, ObjectId(c)));
            }
        }
        // The head's main, when the branch has moved past it, is published too.
        extra.extend(h.body.main.map(ObjectId).filter(|m| Some(*m) != main));
    }
    tags.sort();
    // Extra roots travel as unnamed tags: reachable, but not resolvable by name.
    tags.extend(extra.into_iter().map(|c| (String::new(), c)));
    Ok((main, tags))
}

/// Walks the history of `roots` (first parent of each commit). With the previous set `old`,
/// the walk stops at commits already known and keeps the old set when every old root is
/// still reached; otherwise it starts over. A commit that cannot be read is kept with no
/// parent (a request for it then fails on reading it).
fn walk_commits(
    repo: &Repo,
    roots: &[ObjectId],
    old: Option<&Reach>,
) -> HashMap<ObjectId, Option<ObjectId>> {
    if let Some(old) = old {
        let mut out = HashMap::new();
        let mut hits = HashSet::new();
        walk_from(repo, roots, &old.first_parent, &mut out, &mut hits);
        if old.roots.iter().all(|r| hits.contains(r)) {
            let mut all = old.first_parent.clone();
            all.extend(out);
            return all;
        }
    }
    let mut out = HashMap::new();
    walk_from(repo, roots, &HashMap::new(), &mut out, &mut HashSet::new());
    out
}

fn walk_from(
    repo: &Repo,
    roots: &[ObjectId],
    known: &HashMap<ObjectId, Option<ObjectId>>,
    out: &mut HashMap<ObjectId, Option<ObjectId>>,
    hits: &mut HashSet<ObjectId>,
) {
    let mut stack: Vec<ObjectId> = roots.to_vec();
    while let Some(c) = stack.pop() {
        if known.contains_key(&c) {
            hits.insert(c);
            continue;
        }
        if out.contains_key(&c) {
            continue;
        }
        match repo.read_commit(&c) {
            Ok(commit) => {
                out.insert(c, commit.body.parents.first().copied());
                stack.extend(commit.body.parents);
            }
            Err(_) => {
                out.insert(c, None);
            }
        }
    }
}

/// Resolves `?rev=` among the published commits only: `main`, `HEAD` or `@` (the published
/// `main`), a published tag, or a commit id or unique prefix (4+ hex digits) of a published
/// commit, each optionally followed by `~N` or `^`. Nothing outside the set is read.
fn resolve_published(reach: &Reach, rev: &str) -> Result<ObjectId> {
    let (base, back) = crate::ops::history::split_ancestry(rev)?;
    let unknown = || Error::UnknownRev(rev.to_string());
    let mut id = if ["HEAD", "@", "main"].contains(&base) {
        reach.main.ok_or(Error::NoCommits)?
    } else if let Some((_, c)) = reach.tags.iter().find(|(n, _)| !n.is_empty() && n == base) {
        *c
    } else if (4..=64).contains(&base.len()) && base.bytes().all(|b| b.is_ascii_hexdigit()) {
        let prefix = base.to_ascii_lowercase();
        let mut found = reach
            .first_parent
            .keys()
            .filter(|c| c.to_hex().starts_with(&prefix));
        match (found.next(), found.count()) {
            (Some(c), 0) => *c,
            (None, _) => return Err(unknown()),
            (Some(_), more) => {
                return Err(Error::AmbiguousRev {
                    rev: rev.to_string(),
                    count: more + 1,
                })
            }
        }
    } else {
        return Err(unknown());
    };
    for _ in 0..back {
        id = reach
            .first_parent
            .get(&id)
            .copied()
            .flatten()
            .ok_or(Error::RevTooFarBack {
                rev: rev.to_string(),
                n: back,
            })?;
    }
    Ok(id)
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
                async move { Ok::<_, Infallible>(handle(&gw, req).await) }
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

/// A connection whose writes fail once they have made no progress for `timeout`: a client
/// that stops reading a response does not hold its connection (and the file being sent)
/// for ever. Reads are bounded by hyper's header timeout (a request's body is never read).
struct Stalling {
    inner: tokio::net::TcpStream,
    timeout: Duration,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Stalling {
    fn new(inner: tokio::net::TcpStream, timeout: Duration) -> Stalling {
        Stalling {
            inner,
            timeout,
            deadline: None,
        }
    }

    /// After a write that made no progress: fails once the deadline passed.
    fn stalled(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Error> {
        use std::future::Future;
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing for too long",
            )),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl tokio::io::AsyncRead for Stalling {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Stalling {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, buf) {
            std::task::Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.deadline = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            std::task::Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.deadline = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.inner).poll_flush(cx) {
            std::task::Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.deadline = None;
                done
            }
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.inner).poll_shutdown(cx) {
            std::task::Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.deadline = None;
                done
            }
        }
    }
}

/// Binds the gateway's listener (so that the address can be printed before serving).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Net(format!("cannot listen for HTTP on {addr}: {e}")))
}

fn full(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(ctype).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    r
}

/// A 500 answer that tells nothing about the server's files (paths, object ids).
fn internal_error() -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error reading the dataset (its operator can run `lode verify`)",
    )
}

/// The policy of the gateway's own pages (index, listings, messages): nothing is loaded or
/// run, only their inline style applies.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The policy of a dataset's files: whatever an author put there (HTML, SVG, scripts) is
/// shown in a sandbox with an opaque origin, where no script runs.
const FILE_CSP: &str = "sandbox";

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", format!("{msg}\n"))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Percent-encodes one path component for a link.
fn url_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query_rev(req: &Request<hyper::body::Incoming>) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "rev").then(|| url_decode(v)).flatten()
    })
}

async fn handle(gw: &Gateway, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let mut r = respond(gw, req).await;
    // No answer is ever sniffed into another type (a CSV served as HTML).
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn respond(gw: &Gateway, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only gateway: GET or HEAD",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path().to_string();
    let head_only = req.method() == Method::HEAD;
    if path == "/" {
        return index(gw);
    }
    let Some(rest) = path.strip_prefix("/d/") else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(repo) = gw.public(id) else {
        return text(StatusCode::NOT_FOUND, "no public dataset with that id here");
    };
    let Some(sub) = url_decode(sub) else {
        return text(StatusCode::BAD_REQUEST, "malformed path");
    };
    let dir_wanted = sub.is_empty() || sub.ends_with('/');
    let rel = sub.trim_end_matches('/');
    if !rel.is_empty() && !rel.split('/').all(crate::object::valid_name) {
        return text(StatusCode::BAD_REQUEST, "invalid path");
    }
    let rev = query_rev(&req);
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let repo_id = id.to_string();
    let Ok(_permit) = gw.readers.acquire().await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is shutting down",
        );
    };
    let result = tokio::task::block_in_place(|| {
        let r = match rev.as_deref() {
            None => lookup(repo, None, rel),
            Some(rv) => gw
                .reach(&repo_id, repo)
                .and_then(|reach| resolve_published(&reach, rv))
                .and_then(|c| lookup(repo, Some(c), rel)),
        };
        repo.release_db();
        r
    });
    match result {
        Err(Error::UnknownRev(_))
        | Err(Error::AmbiguousRev { .. })
        | Err(Error::RevTooFarBack { .. }) => text(StatusCode::NOT_FOUND, "unknown revision"),
        Err(Error::NoCommits) => text(StatusCode::NOT_FOUND, "the dataset has no commits yet"),
        Err(Error::PathNotInRev { .. }) => text(StatusCode::NOT_FOUND, "no such path"),
        Err(_) => internal_error(),
        Ok(Found::Dir(commit, entries)) => {
            if !dir_wanted {
                // A directory is addressed with a trailing slash, so relative links work.
                let mut r = text(StatusCode::MOVED_PERMANENTLY, "see the directory");
                let loc = format!(
                    "{path}/{}",
                    req.uri()
                        .query()
                        .map(|q| format!("?{q}"))
                        .unwrap_or_default()
                );
                if let Ok(v) = HeaderValue::from_str(&loc) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return r;
            }
            listing(repo, &repo_id, rel, commit, &entries, rev.as_deref())
        }
        Ok(Found::File(commit, kind, id, size)) => {
            if dir_wanted && !rel.is_empty() {
                return text(StatusCode::NOT_FOUND, "not a directory");
            }
            file(
                repo,
                rel,
                commit,
                kind,
                id,
                size,
                range.as_deref(),
                head_only,
            )
        }
    }
}

enum Found {
    Dir(ObjectId, Vec<crate::object::TreeEntry>),
    File(ObjectId, EntryKind, ObjectId, u64),
}

/// Finds `rel` in `commit` (a published commit resolved by the caller), or in `main`.
fn lookup(repo: &Repo, commit: Option<ObjectId>, rel: &str) -> Result<Found> {
    let commit = match commit {
        Some(c) => c,
        None => main_of(repo)?.ok_or(Error::NoCommits)?,
    };
    let c = repo.read_commit(&commit)?;
    let mut tree = c.body.tree;
    let mut parts = rel.split('/').filter(|p| !p.is_empty()).peekable();
    while let Some(name) = parts.next() {
        let t = repo.read_tree(&tree)?;
        let not_found = || Error::PathNotInRev {
            path: rel.to_string(),
            rev: commit.short(),
        };
        let e = t
            .entries
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(not_found)?;
        if e.kind == EntryKind::Dir {
            tree = e.id;
        } else if parts.peek().is_none() {
            return Ok(Found::File(commit, e.kind, e.id, e.size));
        } else {
            return Err(not_found());
        }
    }
    Ok(Found::Dir(commit, repo.read_tree(&tree)?.entries))
}

/// The commit a dataset's `main` names: the branch, or for a mirror (which has no branch
/// of its own) the `main` of the signed head it holds and serves.
fn main_of(repo: &Repo) -> Result<Option<crate::id::ObjectId>> {
    match repo.main()? {
        Some(c) => Ok(Some(c)),
        None => Ok(crate::ops::access::stored_head(repo)?
            .and_then(|h| h.body.main)
            .map(crate::id::ObjectId)),
    }
}

fn index(gw: &Gateway) -> Response<Body> {
    let mut rows = String::new();
    for (id, repo) in &gw.repos {
        if gw.public(id).is_none() {
            continue;
        }
        let title = main_of(repo)
            .ok()
            .flatten()
            .and_then(|c| repo.read_commit(&c).ok())
            .and_then(|c| c.body.metadata.title)
            .unwrap_or_else(|| "(untitled)".into());
        repo.release_db();
        rows.push_str(&format!(
            "<tr><td><a href=\"/d/{id}/\">{}</a></td><td><code>{id}</code></td></tr>\n",
            html_escape(&title)
        ));
    }
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>lode datasets</title></head>\n<body><h1>Datasets</h1>\n<table>\n<tr><th>title</th><th>dataset id</th></tr>\n{rows}</table>\n</body></html>\n"
    );
    full(StatusCode::OK, "text/html; charset=utf-8", body)
}

fn listing(
    repo: &Repo,
    id: &str,
    rel: &str,
    commit: ObjectId,
    entries: &[crate::object::TreeEntry],
    rev: Option<&str>,
) -> Response<Body> {
    let q = rev
        .map(|r| format!("?rev={}", url_component(r)))
        .unwrap_or_default();
    let mut rows = String::new();
    if !rel.is_empty() {
        rows.push_str(&format!(
            "<tr><td><a href=\"../{q}\">../</a></td><td></td><td></td></tr>\n"
        ));
    }
    for e in entries {
        let (href, shown) = if e.kind == EntryKind::Dir {
            (
                format!("{}/{q}", url_component(&e.name)),
                format!("{}/", e.name),
            )
        } else {
            (format!("{}{q}", url_component(&e.name)), e.name.clone())
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"{href}\">{}</a></td><td>{}</td><td><code>{}</code></td></tr>\n",
            html_escape(&shown),
            e.size,
            if e.kind == EntryKind::Dir {
                String::new()
            } else {
                e.id.to_hex()
            }
        ));
    }
    let title = repo
        .read_commit(&commit)
        .ok()
        .and_then(|c| c.body.metadata.title)
        .unwrap_or_else(|| id.to_string());
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t} /{p}</title></head>\n<body><h1>{t}</h1>\n<p>/{p} at commit <code>{c}</code></p>\n<table>\n<tr><th>name</th><th>bytes</th><th>BLAKE3</th></tr>\n{rows}</table>\n</body></html>\n",
        t = html_escape(&title),
        p = html_escape(rel),
        c = commit.to_hex()
    );
    let mut r = full(StatusCode::OK, "text/html; charset=utf-8", body);
    if let Ok(v) = HeaderValue::from_str(&commit.to_hex()) {
        r.headers_mut().insert("x-lode-commit", v);
    }
    r
}

/// Parses a single `bytes=` range against `len`: `Ok(None)` for no usable range (serve the
/// whole file), `Err(())` for an unsatisfiable one.
#[allow(clippy::result_unit_err)]
pub fn parse_range(h: &str, len: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: the whole file is a valid answer
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len.saturating_sub(1))
    } else {
        let s: u64 = a.parse().map_err(|_| ())?;
        let e: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        (s, e)
    };
    if len == 0 || start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

#[allow(clippy::too_many_arguments)]
fn file(
    repo: &Repo,
    rel: &str,
    commit: ObjectId,
    kind: EntryKind,
    id: ObjectId,
    size: u64,
    range: Option<&str>,
    head_only: bool,
) -> Response<Body> {
    let ctype = if kind == EntryKind::Symlink {
        "text/plain; charset=utf-8".to_string()
    } else {
        mime_guess::from_path(rel)
            .first_raw()
            .map(|m| {
                if m.starts_with("text/") {
                    format!("{m}; charset=utf-8")
                } else {
                    m.to_string()
                }
            })
            .unwrap_or_else(|| "application/octet-stream".into())
    };
    let span = match range.map(|h| parse_range(h, size)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(s))) => Some(s),
        Some(Err(())) => {
            let mut r = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let (start, len) = span.map_or((0, size), |(s, e)| (s, e - s + 1));
    let f = match repo.store().open(&id) {
        Ok(f) => f,
        Err(_) => {
            // A mirror may no longer hold a file: deleted under a taint notice (451), or
            // dropped to stay within its quota (404: other providers still have it).
            let tainted = crate::config::tainted(repo).is_ok_and(|t| t.contains(&id));
            let dropped = crate::config::dropped(repo).is_ok_and(|d| d.contains(&id));
            repo.release_db();
            return if tainted {
                text(
                    StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
                    "this file was taken down by a registry notice this mirror obeys",
                )
            } else if dropped {
                text(
                    StatusCode::NOT_FOUND,
                    "this mirror no longer holds this file (quota); other providers may",
                )
            } else {
                internal_error()
            };
        }
    };
    let body: Body = if head_only {
        Full::new(Bytes::new())
            .map_err(|never: Infallible| match never {})
            .boxed()
    } else {
        stream_file(f, start, len, span.is_none().then_some(id))
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    let mut set = |k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(header::CONTENT_TYPE, ctype);
    set(header::CONTENT_SECURITY_POLICY, FILE_CSP.into());
    set(header::CONTENT_LENGTH, len.to_string());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, format!("\"{}\"", id.to_hex()));
    set(
        header::HeaderName::from_static("x-lode-blake3"),
        id.to_hex(),
    );
    set(
        header::HeaderName::from_static("x-lode-commit"),
        commit.to_hex(),
    );
    if let Some((s, e)) = span {
        set(header::CONTENT_RANGE, format!("bytes {s}-{e}/{size}"));
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    r
}

/// Streams `len` bytes of `f` from `start` in 256 KiB frames, read on the blocking pool.
/// With `verify`, the whole file is hashed as it goes and a mismatch ends the body with an
/// error, which makes hyper cut the connection.
fn stream_file(mut f: std::fs::File, start: u64, len: u64, verify: Option<ObjectId>) -> Body {
    let (tx, rx) =
        tokio::sync::mpsc::channel::<std::result::Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut hasher = verify.map(|_| blake3::Hasher::new());
        let mut left = len;
        // The last frame is held back until the hash is checked: a client that was sent
        // Content-Length bytes has the whole file, so a mismatch must cut it short.
        let mut pending: Option<Bytes> = None;
        let res = (|| -> std::io::Result<()> {
            f.seek(SeekFrom::Start(start))?;
            while left > 0 {
                let mut buf = vec![0u8; left.min(256 << 10) as usize];
                f.read_exact(&mut buf)?;
                left -= buf.len() as u64;
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf);
                }
                if let Some(prev) = pending.replace(Bytes::from(buf)) {
                    if tx.blocking_send(Ok(Frame::data(prev))).is_err() {
                        return Ok(()); // the client went away
                    }
                }
            }
            if let (Some(h), Some(want)) = (hasher, verify) {
                if h.finalize().as_bytes() != &want.0 {
                    return Err(std::io::Error::other(format!(
                        "stored object {} is damaged; run `lode verify`",
                        want.short()
                    )));
                }
            }
            if let Some(last) = pending.take() {
                let _ = tx.blocking_send(Ok(Frame::data(last)));
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = n0_future::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-500", 100), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=x-3", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(url_decode("a%20b%2Fc"), Some("a b/c".into()));
        assert_eq!(url_decode("%zz"), None);
        assert_eq!(url_component("a b/é"), "a%20b%2F%C3%A9");
    }
}
