//! Requests: the routes (`/`, `/d/DATASET/[PATH]`), `?rev=` and `?format=json`, the answers'
//! security headers, and finding a path in a published commit.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::answer::{full, internal_error, text, Body};
use super::reach::{main_of, resolve_published};
use super::state::Gateway;
use super::{file, page};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{EntryKind, TreeEntry};
use crate::repo::Repo;
use crate::text::url_decode;

/// A page in the form the client asked for: `?format=json` gives the JSON of `view`,
/// anything else its HTML.
fn page_answer<T: serde::Serialize>(
    json: bool,
    view: &T,
    html: impl FnOnce() -> String,
) -> Response<Body> {
    if json {
        match serde_json::to_vec_pretty(view) {
            Ok(b) => full(StatusCode::OK, "application/json", b),
            Err(_) => internal_error(),
        }
    } else {
        full(StatusCode::OK, "text/html; charset=utf-8", html())
    }
}

/// The value of query parameter `name`, percent-decoded.
fn query_param(req: &Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| url_decode(v)).flatten()
    })
}

pub(super) async fn handle(gw: &Gateway, req: Request<hyper::body::Incoming>) -> Response<Body> {
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
    let json = query_param(&req, "format").as_deref() == Some("json");
    if path == "/" {
        let view = tokio::task::block_in_place(|| page::index(gw));
        return page_answer(json, &view, || super::html::index(&view));
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
    let rev = query_param(&req, "rev");
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let host = req
        .headers()
        .get(header::HOST)
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
            let at = page::At {
                dataset: &repo_id,
                path: rel,
                commit,
                rev: rev.as_deref(),
                host: host.as_deref(),
            };
            let view = tokio::task::block_in_place(|| {
                let v = page::dataset(gw, repo, &at, entries);
                repo.release_db();
                v
            });
            let view = match view {
                Ok(v) => v,
                Err(_) => return internal_error(),
            };
            let mut r = page_answer(json, &view, || super::html::dataset(&view));
            if let Ok(v) = HeaderValue::from_str(&commit.to_hex()) {
                r.headers_mut().insert("x-lode-commit", v);
            }
            r
        }
        Ok(Found::File(commit, kind, id, size)) => {
            if dir_wanted && !rel.is_empty() {
                return text(StatusCode::NOT_FOUND, "not a directory");
            }
            file::file(
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
    Dir(ObjectId, Vec<TreeEntry>),
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
