//! What a source argument names: a `lode://` URI (through its hints, the providers seen
//! before, or the registries), an address ticket or a capability ticket, turned into the
//! dataset's providers, the capability to present, and the URI's paths and revision. Used by
//! `lode get` and the Python package. Sits above `uri`, `fetch` and `registry`, which it
//! combines (none of them imports it).

use crate::error::Result;
use crate::keys::Home;
use crate::net::endpoint::NetOptions;
use crate::net::uri::{is_referral, known, parse, resolve, Named};
use crate::ticket::Ticket;
use crate::trust::Bundle;

/// Where a source names: the dataset's providers as a ticket, the capability to present,
/// the paths and revision the source names (a URI's), if any.
pub struct Source {
    pub ticket: Ticket,
    pub cap: Option<Bundle>,
    pub paths: Vec<String>,
    pub rev: Option<String>,
}

/// Resolves a source: a `lode://` URI (through its hints, the providers seen before, or
/// the registries), an address ticket (`lode1…`) or a capability ticket (`lodecap1…`).
/// `cap` is a separately given capability ticket.
pub async fn resolve_source(
    home: &Home,
    source: &str,
    cap: Option<&str>,
    opts: &NetOptions,
) -> Result<Source> {
    if !is_referral(source) {
        let (ticket, cap) = crate::net::fetch::resolve_ticket(source, cap)?;
        return Ok(Source {
            ticket,
            cap,
            paths: vec![],
            rev: None,
        });
    }
    let r = parse(source)?;
    let ticket = match &r.dataset {
        Named::Id(id) => {
            let mut t = Ticket {
                dataset: *id,
                providers: r.providers.clone(),
            };
            if let Some(known) = known(home, id)? {
                for p in known.providers {
                    if !t.providers.iter().any(|q| q.id == p.id) {
                        t.providers.push(p);
                    }
                }
            }
            if t.providers.is_empty() {
                resolve(home, id)?
            } else {
                t
            }
        }
        Named::Name(name) if !r.registries.is_empty() => {
            let mut last = None;
            let mut found = None;
            for reg in &r.registries {
                match crate::net::registry::resolve(reg, name, opts).await {
                    Ok(t) => {
                        found = Some(t);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            match (found, last) {
                (Some(t), _) => t,
                (None, Some(e)) => return Err(e),
                (None, None) => unreachable!("at least one registry hint"),
            }
        }
        Named::Name(name) => crate::net::registry::resolve_known(home, name, opts).await?,
    };
    Ok(Source {
        ticket,
        cap: cap.map(str::parse).transpose()?,
        paths: r.path.into_iter().collect(),
        rev: r.rev,
    })
}
