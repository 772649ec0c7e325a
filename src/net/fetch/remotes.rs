//! Remotes kept in the database, capabilities used, and ticket arguments.

use crate::db::{CONFIG, REFS};
use crate::error::{Error, Result};
use crate::ops::access;
use crate::repo::Repo;
use crate::ticket::Ticket;
use crate::trust::{self, Bundle};

/// Saves or replaces a remote.
pub fn set_remote(repo: &Repo, name: &str, ticket: &Ticket) -> Result<()> {
    let _lock = repo.lock()?;
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    tx.open_table(CONFIG)?.insert(
        format!("remote/{name}").as_str(),
        ticket.to_string().as_bytes(),
    )?;
    tx.commit()?;
    Ok(())
}

/// Removes a remote and its tracking refs.
pub fn remove_remote(repo: &Repo, name: &str) -> Result<()> {
    let _lock = repo.lock()?;
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    let existed = tx
        .open_table(CONFIG)?
        .remove(format!("remote/{name}").as_str())?
        .is_some();
    if !existed {
        return Err(Error::UnknownRemote(name.to_string()));
    }
    tx.open_table(REFS)?
        .remove(format!("remotes/{name}/main").as_str())?;
    tx.commit()?;
    Ok(())
}

/// Lists remotes and their tickets.
pub fn remotes(repo: &Repo) -> Result<Vec<(String, Ticket)>> {
    let db = repo.db()?;
    let tx = db.db.begin_read()?;
    let t = tx.open_table(CONFIG)?;
    let mut out = Vec::new();
    for item in t.range("remote/"..)? {
        let (k, v) = item?;
        let Some(name) = k.value().strip_prefix("remote/") else {
            break;
        };
        let text = String::from_utf8_lossy(v.value()).to_string();
        out.push((name.to_string(), text.parse()?));
    }
    Ok(out)
}

/// Looks up a remote's ticket.
pub fn remote(repo: &Repo, name: &str) -> Result<Ticket> {
    remotes(repo)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::UnknownRemote(name.to_string()))
}

/// Stores `cap` as the capability this device presents for the repository's dataset, after
/// checking that it is for this dataset and held by this device.
pub fn use_capability(repo: &Repo, cap: &Bundle) -> Result<()> {
    let dataset = repo.dataset_id()?.to_bytes();
    if cap.dataset() != dataset {
        return Err(trust::TrustError::WrongDataset {
            got: hex::encode(cap.dataset()),
            want: hex::encode(dataset),
        }
        .into());
    }
    let me = repo.device_key()?.verifying_key().to_bytes();
    if cap.leaf().body.audience != me {
        return Err(trust::TrustError::WrongAudience {
            holder: hex::encode(cap.leaf().body.audience),
            peer: hex::encode(me),
        }
        .into());
    }
    let _lock = repo.lock()?;
    access::store_capability(repo, cap)
}

/// Reads a ticket argument: an address ticket (`lode1…`) or a capability ticket
/// (`lodecap1…`, whose hints give the addresses). `cap` is a separately given capability.
pub fn resolve_ticket(arg: &str, cap: Option<&str>) -> Result<(Ticket, Option<Bundle>)> {
    let cap: Option<Bundle> = cap.map(str::parse).transpose()?;
    if trust::is_capability(arg) {
        if cap.is_some() {
            return Err(Error::Other(
                "give one capability ticket: either as the ticket argument or with --ticket".into(),
            ));
        }
        let bundle: Bundle = arg.parse()?;
        if bundle.hints.is_empty() {
            return Err(Error::Other(
                "this capability ticket carries no provider address; give the dataset's address ticket (lode1…) and pass this one with --ticket".into(),
            ));
        }
        let ticket = Ticket {
            dataset: bundle.dataset(),
            providers: bundle.hints.clone(),
        };
        return Ok((ticket, Some(bundle)));
    }
    let ticket: Ticket = arg.parse()?;
    if let Some(c) = &cap {
        if c.dataset() != ticket.dataset {
            return Err(Error::Other(format!(
                "the capability ticket is for dataset {}, the address ticket for {}",
                hex::encode(c.dataset()),
                hex::encode(ticket.dataset)
            )));
        }
    }
    Ok((ticket, cap))
}

/// Reads the ticket a running `lode serve` wrote for this repository.
pub fn served_ticket(repo: &Repo) -> Result<Option<Ticket>> {
    let path = repo.root().join(".lode").join("serve.ticket");
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t.parse()?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}
