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
//! nothing here writes to a repository.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::sync::Arc;

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
}

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
        Ok(Gateway { repos: out })
    }

    fn public(&self, id: &str) -> Option<&Repo> {
        let (_, repo) = self.repos.iter().find(|(d, _)| d == id)?;
        let private = crate::config::is_private(repo).unwrap_or(true);
        repo.release_db();
        (!private).then_some(repo)
    }
}

/// Accepts HTTP/1.1 connections on `listener` until the task is dropped.
pub async fn run(listener: tokio::net::TcpListener, gateway: Arc<Gateway>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let gw = gateway.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let gw = gw.clone();
                async move { Ok::<_, Infallible>(handle(&gw, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
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
    r
}

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
    let result = tokio::task::block_in_place(|| {
        let r = lookup(repo, rev.as_deref(), rel);
        repo.release_db();
        r
    });
    match result {
        Err(Error::UnknownRev(_)) | Err(Error::AmbiguousRev { .. }) => {
            text(StatusCode::NOT_FOUND, "unknown revision")
        }
        Err(Error::NoCommits) => text(StatusCode::NOT_FOUND, "the dataset has no commits yet"),
        Err(Error::PathNotInRev { .. }) => text(StatusCode::NOT_FOUND, "no such path"),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
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

fn lookup(repo: &Repo, rev: Option<&str>, rel: &str) -> Result<Found> {
    let commit = match rev {
        Some(r) => crate::ops::history::resolve(repo, r)?,
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
        Err(e) => {
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
                text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
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
