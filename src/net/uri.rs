//! Referral URIs: `lode://DATASET-ID[/PATH][?rev=REV]` names a dataset, or one file or
//! directory of it, without naming who serves it. lode resolves it through the providers it
//! has seen for that dataset (every ticket used by `clone`, `fetch`, `pull`, `get` and
//! `mirror add` is remembered under `$LODE_HOME/providers/DATASET-ID`). The name form
//! `lode://NAME[/PATH][?rev=REV]` is resolved through the registries this user has used
//! (`net::registry`). See docs/FORMAT.md.
//!
//! A URI may carry hints, so that it resolves on a machine that has never seen a ticket:
//! `provider=lode1…` (an address ticket of the same dataset; by-id URIs only, repeatable)
//! and `registry=lodereg1…` (a registry to ask; name URIs only, repeatable). Hints add to
//! what this user already knows; they never replace a dataset's id, and every object is
//! still verified against the dataset's signed head.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::keys::Home;
use crate::ticket::{RegistryTicket, Ticket};

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
    /// Providers named by `provider=` hints (same dataset), in order.
    pub providers: Vec<crate::ticket::Provider>,
    /// Registries named by `registry=` hints, in order.
    pub registries: Vec<RegistryTicket>,
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
    let mut providers: Vec<crate::ticket::Provider> = Vec::new();
    let mut registries: Vec<RegistryTicket> = Vec::new();
    if let Some(q) = query {
        for kv in q.split('&').filter(|kv| !kv.is_empty()) {
            match kv.split_once('=') {
                Some(("rev", v)) if !v.is_empty() && rev.is_none() => {
                    rev = Some(crate::text::url_decode(v).ok_or_else(|| bad("malformed escape"))?)
                }
                Some(("provider", v)) => {
                    let Named::Id(id) = &dataset else {
                        return Err(bad("provider hints go with a dataset id, not a name"));
                    };
                    let t: Ticket = v.parse().map_err(|e| bad(&format!("provider hint: {e}")))?;
                    if t.dataset != *id {
                        return Err(bad("a provider hint is a ticket for another dataset"));
                    }
                    for p in t.providers {
                        if !providers.iter().any(|q| q.id == p.id) {
                            providers.push(p);
                        }
                    }
                }
                Some(("registry", v)) => {
                    if matches!(dataset, Named::Id(_)) {
                        return Err(bad("registry hints go with a dataset name, not an id"));
                    }
                    registries.push(v.parse().map_err(|e| bad(&format!("registry hint: {e}")))?);
                }
                _ => return Err(bad("the query keys are rev (once), provider and registry")),
            }
        }
    }
    if providers.len() > MAX_REMEMBERED || registries.len() > MAX_REMEMBERED {
        return Err(bad("more than 16 hints"));
    }
    Ok(Referral {
        dataset,
        path: (!path.is_empty()).then_some(path),
        rev,
        providers,
        registries,
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

/// Writes `lode://DATASET-ID[/PATH][?rev=REV][&provider=TICKET]`: a referral that carries
/// its providers, for a data source that must resolve on a machine with no prior ticket.
pub fn format(ticket: &Ticket, path: Option<&str>, rev: Option<&str>) -> String {
    let enc = |s: &str| crate::text::url_encode(s);
    let mut uri = format!("{SCHEME}{}", hex::encode(ticket.dataset));
    if let Some(p) = path.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) {
        uri.push('/');
        uri.push_str(&p.split('/').map(enc).collect::<Vec<_>>().join("/"));
    }
    let mut sep = '?';
    if let Some(r) = rev {
        uri.push_str(&format!("{sep}rev={}", enc(r)));
        sep = '&';
    }
    if !ticket.providers.is_empty() {
        uri.push_str(&format!("{sep}provider={ticket}"));
    }
    uri
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
        // Provider hints: tickets of the same dataset, by-id URIs only; registry hints for
        // names only; written back by `format`.
        let key = ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key();
        let t = Ticket {
            dataset: ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                .verifying_key()
                .to_bytes(),
            providers: vec![crate::ticket::Provider {
                id: key.to_bytes(),
                addrs: vec!["127.0.0.1:4444".parse().unwrap()],
                relay: None,
            }],
        };
        let uri = format(&t, Some("tables/my file.csv"), Some("v1"));
        assert_eq!(
            uri,
            format!("lode://{id}/tables/my%20file.csv?rev=v1&provider={t}")
        );
        let r = parse(&uri).unwrap();
        assert_eq!(r.providers, t.providers);
        assert_eq!(r.path.as_deref(), Some("tables/my file.csv"));
        assert_eq!(r.rev.as_deref(), Some("v1"));
        let twice = parse(&format!("{uri}&provider={t}")).unwrap();
        assert_eq!(twice.providers.len(), 1);
        let mut other = t.clone();
        other.dataset = key.to_bytes();
        let reg = crate::ticket::RegistryTicket(t.clone());
        assert_eq!(
            parse(&format!("lode://worm/x?registry={reg}"))
                .unwrap()
                .registries
                .len(),
            1
        );
        for bad in [
            format!("lode://{id}/x?provider={other}"),
            format!("lode://{id}/x?provider=lode1zzz"),
            format!("lode://{id}/x?provider={reg}"),
            format!("lode://worm/x?provider={t}"),
            format!("lode://{id}/x?registry={reg}"),
            format!("lode://{id}/x?rev=a&rev=b"),
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
