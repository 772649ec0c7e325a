//! Talking to registries: publish, search, resolve a name, taint and approve; the registries this user knows.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::catalog::{self, Approval, Entry, EntryBody, Holding, Notice, Tainted};
use crate::error::{Error, Result};
use crate::keys::Home;
use crate::net::endpoint::{bind, exchange, peer_name, Net, NetOptions};
use crate::net::proto::{decode, encode};
use crate::repo::Repo;
use crate::ticket::{Provider, RegistryTicket, Ticket};

use super::store::*;
use super::wire::*;

/// Sends one request to a registry, trying its providers in turn.
pub(super) async fn call(
    reg: &RegistryTicket,
    req: &Request,
    opts: &NetOptions,
) -> Result<Response> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let net = bind(&key, opts).await?;
    let r = call_on(&net, reg, req).await;
    net.endpoint.close().await;
    r
}

/// Sends one request to a registry from endpoint `net`, trying its providers in turn.
pub(super) async fn call_on(net: &Net, reg: &RegistryTicket, req: &Request) -> Result<Response> {
    let bytes = encode(req);
    let mut last = None;
    for p in &reg.0.providers {
        let id = net.learn(p)?;
        match exchange(net, id, ALPN, &bytes, MAX_MESSAGE, WAIT).await {
            Ok(answer) => {
                let peer = peer_name(&p.id);
                return match decode::<Response>(&answer) {
                    Ok(Response::Error(msg)) => Err(Error::Peer {
                        peer: format!("registry {peer}"),
                        msg,
                    }),
                    Ok(r) => Ok(r),
                    Err(e) => Err(Error::LyingPeer {
                        peer: format!("registry {peer}"),
                        msg: format!("malformed answer: {e}"),
                    }),
                };
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Other("the registry ticket names no provider".into())))
}

pub(super) fn unexpected(reg: &RegistryTicket) -> Error {
    Error::LyingPeer {
        peer: format!("registry {}", peer_name(&reg.key())),
        msg: "unexpected answer".into(),
    }
}

/// Decodes entries a registry sent, keeping only those their owners signed (a registry can
/// withhold entries but not forge them).
pub(super) fn verified(entries: Vec<Vec<u8>>) -> Vec<Entry> {
    entries
        .iter()
        .filter_map(|b| Entry::decode(b).ok())
        .collect()
}

/// What `lode publish` registered.
#[derive(Debug, Serialize)]
pub struct Published {
    pub name: String,
    /// Whether the title, description, license and keywords were listed.
    pub metadata: bool,
    pub dataset: String,
    pub seq: u64,
    pub providers: usize,
    /// The publisher's device key (hex): the id a curated registry approves.
    pub publisher: String,
    /// False when the registry already had this entry.
    pub new: bool,
    /// When copies are asked for (`--copies N`, or kept from the listing before): how many
    /// can be had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copies: Option<CopiesAsked>,
}

/// Whether the copies a publisher asks for can be had at a registry: who holds the current
/// head, and who volunteers for a dataset of this subject and size.
#[derive(Debug, Serialize)]
pub struct CopiesAsked {
    /// Copies asked for.
    pub wanted: u32,
    /// Bytes of the current version (its `main` tree).
    pub bytes: u64,
    /// Storage managers whose holding records name the current `main` commit.
    pub holding: usize,
    /// Storage managers that hold it or whose offer takes it (its subject, its size within
    /// their per-dataset limit and quota).
    pub volunteers: usize,
    /// Storage managers whose subjects match but whose limits are below its size.
    pub too_small: usize,
    /// A restricted dataset: volunteers do not adopt it (that needs a relay ticket).
    pub restricted: bool,
}

impl CopiesAsked {
    /// Whether `wanted` copies can be had from the volunteers there are.
    pub fn reachable(&self) -> bool {
        self.volunteers >= self.wanted as usize
    }
}

/// Lists `repo`'s dataset at `reg` under `name`, with the metadata of its `main` commit (for
/// a restricted dataset only with `with_metadata`) and the providers of its running
/// `lode serve` plus `extra` tickets of the same dataset, asking for `copies` storage
/// managers to hold it (`None`: as many as its listing there asked before). Only the
/// dataset's owner (who holds its key) can publish. When copies are asked for, says how
/// many can be had there ([`CopiesAsked`]).
pub async fn publish(
    repo: &Repo,
    reg: &RegistryTicket,
    name: &str,
    extra: &[Ticket],
    with_metadata: bool,
    copies: Option<u32>,
    opts: &NetOptions,
) -> Result<Published> {
    if copies.is_some_and(|n| n > catalog::MAX_COPIES) {
        return Err(Error::Other(format!(
            "--copies takes at most {}",
            catalog::MAX_COPIES
        )));
    }
    if !catalog::valid_name(name) {
        return Err(Error::Other(format!(
            "invalid name {name:?}: use 1-63 characters of a-z 0-9 . _ -, starting with a letter or digit"
        )));
    }
    let dataset = repo.dataset_id()?;
    let key = repo.home().dataset_key(&dataset)?.ok_or_else(|| {
        Error::Other(format!(
            "only the owner of dataset {} (who holds its key) can publish it",
            hex::encode(dataset.to_bytes())
        ))
    })?;
    // A restricted dataset's metadata is encrypted like its files: it is listed only when
    // the owner says so.
    let private = crate::config::is_private(repo)?;
    let meta = match repo.main()? {
        Some(c) if with_metadata || !private => repo.read_commit(&c)?.body.metadata,
        _ => Default::default(),
    };
    let mut providers: Vec<Provider> = Vec::new();
    let served = crate::net::fetch::served_ticket(repo)?;
    let main = repo.main()?;
    let bytes: u64 = (repo.flatten_commit(main.as_ref())?.values())
        .filter(|e| e.kind != crate::object::EntryKind::Dir)
        .map(|e| e.size)
        .sum();
    repo.release_db();
    for t in served.iter().chain(extra) {
        if t.dataset != dataset.to_bytes() {
            return Err(Error::Other(
                "--provider takes tickets of this dataset".into(),
            ));
        }
        for p in &t.providers {
            if !providers.iter().any(|q| q.id == p.id) {
                providers.push(p.clone());
            }
        }
    }
    if providers.is_empty() {
        return Err(Error::Other(
            "no provider to list: run `lode serve` for this repository first, or give --provider TICKET".into(),
        ));
    }
    providers.truncate(catalog::MAX_PROVIDERS);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let publisher = repo.home().device_key()?;
    let key_net = SigningKey::generate(&mut rand::rngs::OsRng);
    let net = bind(&key_net, opts).await?;
    let r = async {
        // Without --copies, the number asked before stays.
        let copies = match copies {
            Some(n) => n,
            None => match call_on(&net, reg, &Request::Lookup { name: name.into() }).await {
                Ok(Response::Entries(e)) => (verified(e).iter())
                    .find(|e| e.body.dataset == dataset.to_bytes())
                    .map_or(0, |e| e.body.copies),
                _ => 0,
            },
        };
        let body = EntryBody {
            version: catalog::ENTRY_VERSION,
            dataset: dataset.to_bytes(),
            seq: now.as_millis() as u64,
            name: name.to_string(),
            title: meta.title.unwrap_or_default(),
            description: meta.description.unwrap_or_default(),
            license: meta.license.unwrap_or_default(),
            keywords: meta.keywords,
            providers,
            time: now.as_secs(),
            copies,
            publisher: [0; 32],
            publisher_sig: vec![],
        };
        let entry = Entry::sign(body, &key, &publisher)?;
        let req = Request::Publish {
            entry: entry.encode(),
        };
        let new = match call_on(&net, reg, &req).await? {
            Response::Published { new } => new,
            _ => return Err(unexpected(reg)),
        };
        let asked = match (copies, main) {
            (0, _) => None,
            (wanted, main) => {
                let held = match call_on(
                    &net,
                    reg,
                    &Request::Holdings {
                        dataset: Some(entry.body.dataset),
                    },
                )
                .await?
                {
                    Response::Holdings(h) => h,
                    _ => return Err(unexpected(reg)),
                };
                let offers = match call_on(&net, reg, &Request::Volunteers).await? {
                    Response::Volunteers(v) => v,
                    _ => return Err(unexpected(reg)),
                };
                Some(copies_asked(
                    &entry, main, bytes, private, wanted, &held, &offers,
                ))
            }
        };
        Ok(Published {
            name: name.to_string(),
            metadata: with_metadata || !private,
            dataset: hex::encode(dataset.to_bytes()),
            seq: entry.body.seq,
            providers: entry.body.providers.len(),
            publisher: hex::encode(entry.body.publisher),
            new,
            copies: asked,
        })
    }
    .await;
    net.endpoint.close().await;
    if r.is_ok() {
        remember(repo.home(), reg);
    }
    r
}

/// How many of the copies asked for `entry` (whose current `main` is `main`, `bytes` big)
/// can be had, from the holding records and storage offers a registry sent (each checked).
fn copies_asked(
    entry: &Entry,
    main: Option<crate::id::ObjectId>,
    bytes: u64,
    restricted: bool,
    wanted: u32,
    held: &[Vec<u8>],
    offers: &[Vec<u8>],
) -> CopiesAsked {
    let dataset = entry.body.dataset;
    let holders: std::collections::BTreeSet<[u8; 32]> = (held.iter())
        .filter_map(|b| Holding::decode(b).ok())
        .filter(|h| h.body.dataset == dataset && main.is_some_and(|m| m.0 == h.body.commit))
        .map(|h| h.body.device)
        .collect();
    let mut volunteers = holders.clone();
    let mut too_small = 0;
    for v in offers
        .iter()
        .filter_map(|b| catalog::Volunteer::decode(b).ok())
    {
        if holders.contains(&v.body.device) || restricted || !v.body.wants(&entry.body) {
            continue;
        }
        let fits = v.body.max_dataset.is_none_or(|m| bytes <= m)
            && v.body.quota.is_none_or(|q| bytes <= q);
        if fits {
            volunteers.insert(v.body.device);
        } else {
            too_small += 1;
        }
    }
    CopiesAsked {
        wanted,
        bytes,
        holding: holders.len(),
        volunteers: volunteers.len(),
        too_small,
        restricted,
    }
}

/// Sends entries already signed (by whatever keys) to `reg` over one endpoint, one request
/// each; returns each one's answer (`Ok(new)` or the registry's refusal). What a tool that
/// lists many datasets does, and what the crowding tests use as the attacker.
pub async fn publish_signed(
    reg: &RegistryTicket,
    entries: &[Entry],
    opts: &NetOptions,
) -> Result<Vec<Result<bool>>> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let net = bind(&key, opts).await?;
    let mut out = Vec::with_capacity(entries.len());
    // A few requests in flight at a time, answers in order.
    for batch in entries.chunks(8) {
        let asks = batch.iter().map(|e| {
            let net = &net;
            async move {
                let req = Request::Publish { entry: e.encode() };
                match call_on(net, reg, &req).await {
                    Ok(Response::Published { new }) => Ok(new),
                    Ok(_) => Err(unexpected(reg)),
                    Err(e) => Err(e),
                }
            }
        });
        out.extend(n0_future::join_all(asks).await);
    }
    net.endpoint.close().await;
    Ok(out)
}

/// Entries at `reg` matching `term` (verified), best match first (see [`EntryBody::rank`];
/// among equals, in the registry's order).
pub async fn search(reg: &RegistryTicket, term: &str, opts: &NetOptions) -> Result<Vec<Entry>> {
    match call(
        reg,
        &Request::Search {
            term: term.to_string(),
        },
        opts,
    )
    .await?
    {
        Response::Entries(e) => {
            let mut found: Vec<(u8, Entry)> = (verified(e).into_iter())
                .filter_map(|e| e.body.rank(term).map(|r| (r, e)))
                .collect();
            found.sort_by_key(|(r, _)| *r);
            Ok(found.into_iter().map(|(_, e)| e).collect())
        }
        _ => Err(unexpected(reg)),
    }
}

/// Resolves a dataset name at `reg` to a ticket of its listed providers. Two datasets under
/// one name are an error that lists both: lode never picks one for the user.
pub async fn resolve(reg: &RegistryTicket, name: &str, opts: &NetOptions) -> Result<Ticket> {
    let found = match call(
        reg,
        &Request::Lookup {
            name: name.to_string(),
        },
        opts,
    )
    .await?
    {
        Response::Entries(e) => verified(e),
        _ => return Err(unexpected(reg)),
    };
    let found: Vec<Entry> = found.into_iter().filter(|e| e.body.name == name).collect();
    match found.as_slice() {
        [] => Err(Error::Other(format!(
            "no dataset named {name:?} at registry {}",
            peer_name(&reg.key())
        ))),
        [e] => Ok(Ticket {
            dataset: e.body.dataset,
            providers: e.body.providers.clone(),
        }),
        many => Err(Error::Other(format!(
            "the name {name:?} is claimed by {} datasets: {}; clone one by its ticket or lode:// id",
            many.len(),
            many.iter()
                .map(|e| hex::encode(e.body.dataset))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Every notice `reg` holds, verified (each signed by the registry it names).
pub async fn notices(reg: &RegistryTicket, opts: &NetOptions) -> Result<Vec<Notice>> {
    Ok(notices_raw(reg, opts)
        .await?
        .iter()
        .filter_map(|b| Notice::decode(b).ok())
        .collect())
}

/// The notices `reg` sends, as bytes (unchecked: the caller decides what to trust).
pub async fn notices_raw(reg: &RegistryTicket, opts: &NetOptions) -> Result<Vec<Vec<u8>>> {
    match call(reg, &Request::Notices, opts).await? {
        Response::Notices(n) => Ok(n),
        _ => Err(unexpected(reg)),
    }
}

/// Signs a taint notice with the registry key kept in `dir` and hands it to the running
/// registry `reg`, which publishes it and forwards it to its peers.
pub async fn taint(
    dir: &Path,
    reg: &RegistryTicket,
    target: Tainted,
    reason: &str,
    opts: &NetOptions,
) -> Result<Notice> {
    let key = operator_key(dir, reg, "taint")?;
    let notice = Notice::sign(target, reason, crate::ops::access::now(), &key)?;
    match call(
        reg,
        &Request::Notice {
            notice: notice.encode(),
        },
        opts,
    )
    .await?
    {
        Response::Published { .. } => Ok(notice),
        _ => Err(unexpected(reg)),
    }
}

/// The registry key kept in `dir`, which must be the key of `reg` (only its operator signs
/// for it); `what` names the act in the error.
pub(super) fn operator_key(dir: &Path, reg: &RegistryTicket, what: &str) -> Result<SigningKey> {
    let key = Home::new(dir)
        .existing_key_at("registry.key")?
        .ok_or_else(|| {
            Error::Other(format!(
                "no registry key in {}: run this where the registry runs, or give --dir",
                dir.display()
            ))
        })?;
    if key.verifying_key().to_bytes() != reg.key() {
        return Err(Error::Other(format!(
            "the registry key in {} is not the key of registry {}: only its operator can {what}",
            dir.display(),
            peer_name(&reg.key())
        )));
    }
    Ok(key)
}

/// Signs an approval of `publisher` (or with `approved` false, its withdrawal) with the
/// registry key kept in `dir` and hands it to the running registry `reg`, which keeps it
/// and forwards it to its peers.
pub async fn approve(
    dir: &Path,
    reg: &RegistryTicket,
    publisher: [u8; 32],
    approved: bool,
    note: &str,
    opts: &NetOptions,
) -> Result<Approval> {
    let key = operator_key(dir, reg, "approve")?;
    let approval = Approval::sign(publisher, approved, note, crate::ops::access::now(), &key)?;
    match call(
        reg,
        &Request::Approve {
            approval: approval.encode(),
        },
        opts,
    )
    .await?
    {
        Response::Published { .. } => Ok(approval),
        _ => Err(unexpected(reg)),
    }
}

/// Every approval `reg` holds, verified (each signed by the registry it names).
pub async fn approvals(reg: &RegistryTicket, opts: &NetOptions) -> Result<Vec<Approval>> {
    match call(reg, &Request::Approvals, opts).await? {
        Response::Approvals(a) => Ok(a.iter().filter_map(|b| Approval::decode(b).ok()).collect()),
        _ => Err(unexpected(reg)),
    }
}

pub(super) fn registries_file(home: &Home) -> PathBuf {
    home.dir().join("registries")
}

/// The registries this user has used (for `lode://NAME` referrals), newest first.
pub fn known(home: &Home) -> Vec<RegistryTicket> {
    read_tickets(&registries_file(home))
}

/// Remembers a registry (best effort).
pub fn remember(home: &Home, reg: &RegistryTicket) {
    let mut all = vec![reg.clone()];
    all.extend(known(home).into_iter().filter(|r| r.key() != reg.key()));
    all.truncate(16);
    let _ = write_tickets(&registries_file(home), &all);
}

/// Resolves `name` through the registries this user has used, in turn.
pub async fn resolve_known(home: &Home, name: &str, opts: &NetOptions) -> Result<Ticket> {
    let regs = known(home);
    if regs.is_empty() {
        return Err(Error::Other(format!(
            "no known registry to resolve {name:?}: use one once (lode search TERM --registry TICKET)"
        )));
    }
    let mut last = None;
    for r in &regs {
        match resolve(r, name, opts).await {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one registry"))
}

/// Hands a storage offer (encoded, signed by the device it names) to `reg`; returns whether
/// it was new there.
pub async fn volunteer_raw(
    reg: &RegistryTicket,
    offer: Vec<u8>,
    opts: &NetOptions,
) -> Result<bool> {
    let req = Request::Volunteer { offer };
    match call(reg, &req, opts).await? {
        Response::Published { new } => Ok(new),
        _ => Err(unexpected(reg)),
    }
}

/// Hands holding records (encoded, signed by a device that volunteered at `reg`) to `reg`;
/// returns how many were new there. One refused record refuses the batch, naming why.
pub async fn hold_raw(
    reg: &RegistryTicket,
    records: Vec<Vec<u8>>,
    opts: &NetOptions,
) -> Result<u64> {
    match call(reg, &Request::Hold { records }, opts).await? {
        Response::Offered { new } => Ok(new),
        _ => Err(unexpected(reg)),
    }
}

/// The holding records `reg` keeps for `dataset` (all when `None`), verified (each signed by
/// the device it names).
pub async fn holdings(
    reg: &RegistryTicket,
    dataset: Option<[u8; 32]>,
    opts: &NetOptions,
) -> Result<Vec<Holding>> {
    match call(reg, &Request::Holdings { dataset }, opts).await? {
        Response::Holdings(h) => Ok(checked_holdings(&h, dataset)),
        _ => Err(unexpected(reg)),
    }
}

/// The holding records a registry sent that verify (and are of `dataset`, when given).
fn checked_holdings(h: &[Vec<u8>], dataset: Option<[u8; 32]>) -> Vec<Holding> {
    h.iter()
        .filter_map(|b| Holding::decode(b).ok())
        .filter(|h| dataset.is_none_or(|d| h.body.dataset == d))
        .collect()
}

/// The holding records `reg` keeps for each of `datasets`, verified, asked over one
/// endpoint (one request each).
pub async fn holdings_of(
    reg: &RegistryTicket,
    datasets: &[[u8; 32]],
    opts: &NetOptions,
) -> Result<Vec<Holding>> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let net = bind(&key, opts).await?;
    let mut out = Vec::new();
    let mut r = Ok(());
    for d in datasets {
        match call_on(&net, reg, &Request::Holdings { dataset: Some(*d) }).await {
            Ok(Response::Holdings(h)) => out.extend(checked_holdings(&h, Some(*d))),
            Ok(_) => r = Err(unexpected(reg)),
            Err(e) => r = Err(e),
        }
        if r.is_err() {
            break;
        }
    }
    net.endpoint.close().await;
    r.map(|()| out)
}

/// How many storage managers hold one head of a dataset.
#[derive(Debug, Serialize)]
pub struct HeadCopies {
    pub seq: u64,
    /// The head's `main` commit (hex).
    pub commit: String,
    /// The device ids (hex) of the storage managers that claim it.
    pub holders: Vec<String>,
}

/// The copies of one dataset a registry knows of, as `lode copies` shows them.
#[derive(Debug, Serialize)]
pub struct Copies {
    pub dataset: String,
    /// Its name at the registry.
    pub name: String,
    /// The seq of its newest entry there.
    pub seq: u64,
    /// How many storage managers claim a copy (of any head).
    pub copies: usize,
    /// How many copies its publisher asks for (0: no minimum asked).
    pub wanted: u32,
    /// A ticket naming the entry's providers, then the storage managers that said where
    /// they serve it (at most 16).
    pub ticket: String,
    /// Per head held, newest first.
    pub heads: Vec<HeadCopies>,
    /// With `--check`: the challenge of each holding record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::net::challenge::Verdict>,
}

/// The copies of the datasets listed at `reg`: the one named `which` (a name, or a dataset
/// id in hex), or all of them (at most a search's worth) when `None`. Counts what storage
/// managers claim in signed holding records: a claim, not a proof (docs/SECURITY.md); with
/// `check`, each record is challenged too (`net::challenge`), all at once.
pub async fn copies(
    reg: &RegistryTicket,
    which: Option<&str>,
    check: bool,
    opts: &NetOptions,
) -> Result<Vec<Copies>> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let net = bind(&key, opts).await?;
    let r = async {
        let id = which.and_then(|w| {
            let mut d = [0u8; 32];
            hex::decode_to_slice(w.trim(), &mut d).ok().map(|_| d)
        });
        let req = match (which, id) {
            (Some(name), None) => Request::Lookup {
                name: name.to_string(),
            },
            _ => Request::Search {
                term: String::new(),
            },
        };
        let entries = match call_on(&net, reg, &req).await? {
            Response::Entries(e) => verified(e),
            _ => return Err(unexpected(reg)),
        };
        let entries: Vec<Entry> = (entries.into_iter())
            .filter(|e| match (which, id) {
                (_, Some(d)) => e.body.dataset == d,
                (Some(name), None) => e.body.name == name,
                (None, None) => true,
            })
            .collect();
        if entries.is_empty() {
            if let Some(w) = which {
                return Err(Error::Other(format!(
                    "no dataset {w:?} listed at registry {}",
                    peer_name(&reg.key())
                )));
            }
        }
        let held = match call_on(&net, reg, &Request::Holdings { dataset: id }).await? {
            Response::Holdings(h) => h,
            _ => return Err(unexpected(reg)),
        };
        let held: Vec<Holding> = held
            .iter()
            .filter_map(|b| Holding::decode(b).ok())
            .collect();
        let mut found: Vec<Copies> = entries.iter().map(|e| count_copies(e, &held)).collect();
        if check {
            let listed: std::collections::BTreeSet<[u8; 32]> =
                entries.iter().map(|e| e.body.dataset).collect();
            let asks = (held.iter())
                .filter(|h| listed.contains(&h.body.dataset))
                .map(|h| async {
                    let v = crate::net::challenge::challenge(&net, h, crate::net::challenge::LIMIT);
                    (hex::encode(h.body.dataset), v.await)
                });
            for (dataset, v) in n0_future::join_all(asks).await {
                if let Some(c) = found.iter_mut().find(|c| c.dataset == dataset) {
                    c.checks.push(v);
                }
            }
        }
        Ok(found)
    }
    .await;
    net.endpoint.close().await;
    r
}

/// Groups the holding records of `entry`'s dataset by head, newest first.
fn count_copies(entry: &Entry, held: &[Holding]) -> Copies {
    let mut heads: Vec<HeadCopies> = Vec::new();
    let mut devices = std::collections::BTreeSet::new();
    let mut providers = entry.body.providers.clone();
    for h in held.iter().filter(|h| h.body.dataset == entry.body.dataset) {
        devices.insert(h.body.device);
        if let Some(p) = &h.body.provider {
            if p.id == h.body.device && !providers.iter().any(|q| q.id == p.id) {
                providers.push(p.clone());
            }
        }
        let commit = hex::encode(h.body.commit);
        let device = hex::encode(h.body.device);
        match heads
            .iter_mut()
            .find(|c| c.seq == h.body.seq && c.commit == commit)
        {
            Some(c) => c.holders.push(device),
            None => heads.push(HeadCopies {
                seq: h.body.seq,
                commit,
                holders: vec![device],
            }),
        }
    }
    heads.sort_by(|a, b| b.seq.cmp(&a.seq).then(a.commit.cmp(&b.commit)));
    Copies {
        dataset: hex::encode(entry.body.dataset),
        name: entry.body.name.clone(),
        seq: entry.body.seq,
        copies: devices.len(),
        wanted: entry.body.copies,
        ticket: Ticket {
            dataset: entry.body.dataset,
            providers: providers.into_iter().take(catalog::MAX_PROVIDERS).collect(),
        }
        .to_string(),
        heads,
        checks: vec![],
    }
}
