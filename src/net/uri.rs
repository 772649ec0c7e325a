//! Referral URIs: `lode://DATASET-ID[/PATH][?rev=REV]` names a dataset, or one file or
//! directory of it, without naming who serves it. lode resolves it through the providers it
//! has seen for that dataset (every ticket used by `clone`, `fetch`, `pull`, `get` and
//! `mirror add` is remembered under `$LODE_HOME/providers/DATASET-ID`). The name form
//! `lode://NAME[/PATH][?rev=REV]` is resolved through the registries this user has used
//! (`net::registry`). See docs/FORMAT.md.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::keys::Home;
use crate::ticket::Ticket;

const SCHEME: &str = "lode://";
/// Most providers remembered per dataset (newest first).
const MAX_REMEMBERED: usize = 16;

/// How a referral names its dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// By id (64 hex digits).
    Id([u8; 32]),
    /// By a registry name.
    Name(String),
}

/// A parsed referral URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    pub dataset: Named,
    /// A `/`-separated path inside the dataset (decoded), if any.
    pub path: Option<String>,
    /// A tag or commit id, if any (default: the dataset's `main`).
    pub rev: Option<String>,
}

/// True when `s` is a referral URI.
pub fn is_referral(s: &str) -> bool {
    s.starts_with(SCHEME)
}

/// Parses `lode://DATASET-ID[/PATH][?rev=REV]` strictly: a 64-hex dataset id, path
/// components that are valid tree names (percent-escapes decoded), only the `rev` query key.
pub fn parse(s: &str) -> Result<Referral> {
    let bad = |why: &str| Error::Other(format!("invalid lode:// URI {s:?}: {why}"));
    let rest = s
        .strip_prefix(SCHEME)
        .ok_or_else(|| bad("it starts with lode://"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (id, path) = match rest.split_once('/') {
        Some((id, p)) => (id, p),
        None => (rest, ""),
    };
    let dataset = if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut dataset = [0u8; 32];
        hex::decode_to_slice(id, &mut dataset).map_err(|_| bad("malformed dataset id"))?;
        ed25519_dalek::VerifyingKey::from_bytes(&dataset).map_err(|_| bad("not a dataset id"))?;
        Named::Id(dataset)
    } else if crate::catalog::valid_name(id) {
        Named::Name(id.to_string())
    } else {
        return Err(bad(
            "it names a dataset id (64 hex digits) or a registry name (a-z 0-9 . _ -)",
        ));
    };
    let path = crate::text::url_decode(path).ok_or_else(|| bad("malformed escape"))?;
    let path = path.trim_matches('/').to_string();
    if !path.is_empty() && !path.split('/').all(crate::object::valid_name) {
        return Err(bad("invalid path"));
    }
    let mut rev = None;
    if let Some(q) = query {
        for kv in q.split('&').filter(|kv| !kv.is_empty()) {
            match kv.split_once('=') {
                Some(("rev", v)) if !v.is_empty() => {
                    rev = Some(crate::text::url_decode(v).ok_or_else(|| bad("malformed escape"))?)
                }
                _ => return Err(bad("the only query key is rev")),
            }
        }
    }
    Ok(Referral {
        dataset,
        path: (!path.is_empty()).then_some(path),
        rev,
    })
}

fn providers_file(home: &Home, dataset: &[u8; 32]) -> PathBuf {
    home.dir().join("providers").join(hex::encode(dataset))
}

/// The providers this user has seen for `dataset`, as one ticket.
pub fn known(home: &Home, dataset: &[u8; 32]) -> Result<Option<Ticket>> {
    let path = providers_file(home, dataset);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t.trim().parse()?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// Remembers the providers of `ticket` (newest first, at most 16). Best effort: a failure
/// to write only means a referral cannot be resolved later.
pub fn remember(home: &Home, ticket: &Ticket) {
    let mut merged = ticket.clone();
    if let Ok(Some(old)) = known(home, &ticket.dataset) {
        for p in old.providers {
            if !merged.providers.iter().any(|q| q.id == p.id) {
                merged.providers.push(p);
            }
        }
    }
    merged.providers.truncate(MAX_REMEMBERED);
    let path = providers_file(home, &ticket.dataset);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, format!("{merged}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// Resolves a referral by dataset id to a ticket through the known providers.
pub fn resolve(home: &Home, dataset: &[u8; 32]) -> Result<Ticket> {
    known(home, dataset)?.ok_or_else(|| {
        Error::Other(format!(
            "no known provider for dataset {}: use a ticket once (lode get TICKET …, lode clone TICKET, lode remote add) so that lode learns where it is served",
            hex::encode(dataset)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        let id = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                .verifying_key()
                .to_bytes(),
        );
        let r = parse(&format!("lode://{id}/tables/my%20file.csv?rev=v1")).unwrap();
        assert_eq!(r.path.as_deref(), Some("tables/my file.csv"));
        assert_eq!(r.rev.as_deref(), Some("v1"));
        assert_eq!(parse(&format!("lode://{id}")).unwrap().path, None);
        let named = parse("lode://worm-tracks/t.csv").unwrap();
        assert_eq!(named.dataset, Named::Name("worm-tracks".into()));
        for bad in [
            format!("lode://{id}/../x"),
            format!("lode://{id}/a/%2e%2e/b"),
            format!("lode://{id}?x=1"),
            "lode://Abc/x".to_string(),
            "lode://a%2Fb/x".to_string(),
            format!("http://{id}"),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
