//! The gateway's own answers (pages, messages, errors) and the policy they carry.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

pub(super) type Body = BoxBody<Bytes, std::io::Error>;

/// The policy of the gateway's own pages (index, listings, messages): nothing is loaded or
/// run, only their inline style applies.
pub(super) const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The policy of a dataset's files: whatever an author put there (HTML, SVG, scripts) is
/// shown in a sandbox with an opaque origin, where no script runs.
pub(super) const FILE_CSP: &str = "sandbox";

pub(super) fn full(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
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
pub(super) fn internal_error() -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error reading the dataset (its operator can run `lode verify`)",
    )
}

pub(super) fn text(status: StatusCode, msg: &str) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", format!("{msg}\n"))
}
