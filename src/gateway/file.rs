//! A dataset's files: content type, single byte ranges, the BLAKE3 id in the headers, and a
//! whole-file body that is hashed while it streams and cut if the stored bytes do not match.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::answer::{internal_error, text, Body, FILE_CSP};
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::repo::Repo;

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
pub(super) fn file(
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
    let f = match repo.store().reader(&id) {
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
fn stream_file(
    mut f: crate::store::chunks::ObjectReader,
    start: u64,
    len: u64,
    verify: Option<ObjectId>,
) -> Body {
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
    }
}
