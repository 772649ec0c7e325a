//! Volunteering storage managers: `lode mirror volunteer` and adoption. A storage manager
//! offers a registry to mirror the datasets of some subjects (or all) within a quota, in an
//! offer signed by its device key ([`Volunteer`]); it keeps what it volunteered for under
//! `$LODE_HOME/mirrors/volunteered/REGISTRY-ID` and obeys that registry's taint notices. At
//! each follow round ([`follow`]: what `lode serve --mirrors --follow` and `lode mirror sync`
//! run) it asks each such registry for the entries of its subjects, adopts each public one
//! not yet mirrored that fits its per-dataset limit and what is left of its quota (a
//! `mirror add` with that limit as the mirror's quota), and sends the registry a signed
//! holding record ([`Holding`]) for each head it holds that it has not reported yet.
//! Restricted datasets are not adopted: that needs a relay ticket from their owner.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::catalog::{Holding, HoldingBody, Volunteer, VolunteerBody};
use crate::error::{Error, Result};
use crate::keys::Home;
use crate::net::endpoint::NetOptions;
use crate::net::fetch::{self, Client};
use crate::net::mirror::{self, Adopted, Round};
use crate::net::registry;
use crate::object::EntryKind;
use crate::repo::{Repo, RepoOptions};
use crate::ticket::{Provider, RegistryTicket, Ticket};

/// What this storage manager volunteered for at one registry (`mirror volunteer`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volunteering {
    /// The registry's ticket.
    pub registry: String,
    pub subjects: Vec<String>,
    pub all: bool,
    /// Total bytes offered, if bounded.
    pub quota: Option<u64>,
    /// Largest dataset adopted, if bounded.
    pub max_dataset: Option<u64>,
    /// Device id (hex) that signed the offer.
    pub device: String,
    /// Whether the registry had not seen this offer before.
    #[serde(default)]
    pub new: bool,
}

fn dir(home: &Home) -> PathBuf {
    mirror::mirrors_dir(home).join("volunteered")
}

/// Where this storage manager serves, as the ticket of a mirror its `lode serve` wrote says
/// (none when it does not serve yet).
fn own_provider(home: &Home, device: &[u8; 32]) -> Option<Provider> {
    let paths = mirror::paths(home).ok()?;
    paths.iter().find_map(|p| {
        let text = std::fs::read_to_string(p.join(".lode").join("serve.ticket")).ok()?;
        let t: Ticket = text.trim().parse().ok()?;
        t.providers.into_iter().find(|q| &q.id == device)
    })
}

/// Offers `reg` to mirror datasets of `subjects` (or `all`) within `quota` bytes, none
/// larger than `max_dataset`: signs the offer with the device key, sends it, records it here
/// and follows the registry's taint notices. A new offer to the same registry replaces the
/// old one.
pub async fn volunteer(
    home: &Home,
    reg: &RegistryTicket,
    subjects: Vec<String>,
    all: bool,
    quota: Option<u64>,
    max_dataset: Option<u64>,
    opts: &NetOptions,
) -> Result<Volunteering> {
    let subjects: Vec<String> = (subjects.iter())
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if subjects.is_empty() && !all {
        return Err(Error::Other(
            "volunteer for something: --subject WORD (repeatable) or --all".into(),
        ));
    }
    let key = home.device_key()?;
    let device = key.verifying_key().to_bytes();
    let body = VolunteerBody {
        version: 0,
        device,
        subjects: subjects.clone(),
        all,
        quota,
        max_dataset,
        provider: own_provider(home, &device),
        time: crate::ops::access::now(),
    };
    let offer = Volunteer::sign(body, &key)?;
    let new = registry::volunteer_raw(reg, offer.encode(), opts).await?;
    let v = Volunteering {
        registry: reg.to_string(),
        subjects,
        all,
        quota,
        max_dataset,
        device: hex::encode(device),
        new,
    };
    let json = serde_json::to_vec_pretty(&v).expect("in-memory values encode");
    registry::write_atomic(&dir(home).join(hex::encode(reg.key())), &json)?;
    mirror::follow_registry(home, reg)?;
    registry::remember(home, reg);
    Ok(v)
}

/// What this storage manager volunteered for, per registry.
pub fn volunteered(home: &Home) -> Vec<Volunteering> {
    let Ok(rd) = std::fs::read_dir(dir(home)) else {
        return vec![];
    };
    let mut out: Vec<Volunteering> = rd
        .flatten()
        .filter(|e| e.path().extension().is_none())
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.registry.cmp(&b.registry));
    out
}

/// One follow round of a storage manager: [`mirror::follow_once`] (taint notices, then
/// every mirror fetched and kept within its quota), then adoption of what it volunteered
/// for, then its holding records sent to the registries it volunteered at.
pub async fn follow(
    home: &Home,
    opts: &NetOptions,
    after_notices: &(dyn Fn() + Send + Sync),
) -> Round {
    let mut round = mirror::follow_once(home, opts, after_notices).await;
    for v in volunteered(home) {
        let Ok(reg) = v.registry.parse::<RegistryTicket>() else {
            continue;
        };
        round.adopted.extend(adopt(home, &reg, &v, opts).await);
        if let Err(e) = report(home, &reg, opts).await {
            round.adopted.push(Adopted {
                dataset: String::new(),
                name: String::new(),
                bytes: 0,
                result: Err(format!("holding records not sent: {e}")),
            });
        }
    }
    round
}

/// Bytes of the current version of a public dataset (its `main` tree) and its `main`
/// commit, or why it is not adopted (restricted, unreachable).
async fn size_of(home: &Home, ticket: &Ticket, opts: &NetOptions) -> Result<(u64, [u8; 32])> {
    let mut client = Client::new(home, ticket, None, opts).await?;
    let got = async {
        let published = client.list_refs().await?;
        if published.head.body.private {
            return Err(Error::Other(
                "restricted: adopting it needs a relay ticket from its owner".into(),
            ));
        }
        let listing = fetch::list(&mut client, None).await?;
        let bytes = (listing.entries.iter())
            .filter(|e| e.kind != EntryKind::Dir)
            .map(|e| e.size)
            .sum();
        Ok((bytes, listing.commit.0))
    }
    .await;
    client.close().await;
    got
}

/// Adopts the datasets of `reg` that `v` wants and that fit. Reports adoptions and failures;
/// a dataset that does not fit is skipped silently (it is looked at again next round).
async fn adopt(
    home: &Home,
    reg: &RegistryTicket,
    v: &Volunteering,
    opts: &NetOptions,
) -> Vec<Adopted> {
    let mut out = Vec::new();
    let terms: Vec<String> = if v.all {
        vec![String::new()]
    } else {
        v.subjects.clone()
    };
    let mut wanted = BTreeMap::new();
    for t in &terms {
        match registry::search(reg, t, opts).await {
            Ok(found) => {
                for e in found {
                    wanted.entry(e.body.dataset).or_insert(e);
                }
            }
            Err(e) => out.push(Adopted {
                dataset: String::new(),
                name: String::new(),
                bytes: 0,
                result: Err(format!("cannot search the registry for {t:?}: {e}")),
            }),
        }
    }
    let Ok(me) = home.device_key().map(|k| k.verifying_key().to_bytes()) else {
        return out;
    };
    let mut used: u64 = mirror::list(home)
        .map(|l| l.iter().map(|m| m.bytes).sum())
        .unwrap_or(0);
    for (dataset, entry) in wanted {
        let held = mirror::mirrors_dir(home).join(hex::encode(dataset));
        if held.join(".lode").is_dir() {
            continue;
        }
        let providers: Vec<Provider> = (entry.body.providers.iter())
            .filter(|p| p.id != me)
            .cloned()
            .collect();
        if providers.is_empty() {
            continue;
        }
        let ticket = Ticket { dataset, providers };
        let Ok((bytes, main)) = size_of(home, &ticket, opts).await else {
            continue;
        };
        let over_limit = v.max_dataset.is_some_and(|m| bytes > m);
        let over_quota = v.quota.is_some_and(|q| used.saturating_add(bytes) > q);
        if over_limit || over_quota {
            continue;
        }
        // Its publisher asked for N copies: none is taken once N others hold this head.
        if entry.body.copies > 0 {
            let Ok(held) = registry::holdings(reg, Some(dataset), opts).await else {
                continue;
            };
            let others: std::collections::BTreeSet<[u8; 32]> = (held.iter())
                .filter(|h| h.body.device != me && h.body.commit == main)
                .map(|h| h.body.device)
                .collect();
            if others.len() >= entry.body.copies as usize {
                continue;
            }
        }
        let res = mirror::add(home, &ticket, None, opts, &crate::progress::NoProgress).await;
        let result = res.and_then(|(repo, _)| {
            if let Some(m) = v.max_dataset {
                crate::config::set_quota(&repo, m)?;
            }
            repo.release_db();
            Ok(())
        });
        if result.is_ok() {
            used = used.saturating_add(bytes);
        }
        out.push(Adopted {
            dataset: hex::encode(dataset),
            name: entry.body.name.clone(),
            bytes,
            result: result.map_err(|e| e.to_string()),
        });
    }
    out
}

/// Seconds after which an unchanged holding record is signed and sent again.
const RESEND: u64 = 24 * 3600;

/// Sends `reg` a holding record for each mirrored public dataset whose head (or where it is
/// served) changed since the last report there, or was last reported a day ago or more (kept in `volunteered/REGISTRY-ID.held`).
async fn report(home: &Home, reg: &RegistryTicket, opts: &NetOptions) -> Result<()> {
    let key = home.device_key()?;
    let device = key.verifying_key().to_bytes();
    let held_path = dir(home).join(format!("{}.held", hex::encode(reg.key())));
    let sent: BTreeMap<String, (String, u64)> = std::fs::read(&held_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut now_held = BTreeMap::new();
    let mut records = Vec::new();
    for p in mirror::paths(home)? {
        let Ok(repo) = Repo::discover(&p, home.clone(), RepoOptions::default()) else {
            continue;
        };
        let head = crate::ops::access::stored_head(&repo);
        let dataset = repo.dataset_id().map(|d| d.to_bytes());
        repo.release_db();
        let (Ok(Some(head)), Ok(dataset)) = (head, dataset) else {
            continue;
        };
        // A restricted copy cannot be challenged without a ticket: it is not claimed.
        let Some(commit) = head.body.main.filter(|_| !head.body.private) else {
            continue;
        };
        let provider = std::fs::read_to_string(p.join(".lode").join("serve.ticket"))
            .ok()
            .and_then(|t| t.trim().parse::<Ticket>().ok())
            .and_then(|t| t.providers.into_iter().find(|q| q.id == device));
        let name = hex::encode(dataset);
        let what = format!(
            "{} {:?}",
            head.body.seq,
            provider.as_ref().map(|p| &p.addrs)
        );
        let now = crate::ops::access::now();
        // Unchanged and recent: not sent again (a record a registry dropped after a failed
        // challenge is replaced by a newer one at most a day later).
        if let Some((was, at)) = sent.get(&name) {
            if *was == what && now.saturating_sub(*at) < RESEND {
                now_held.insert(name, (what, *at));
                continue;
            }
        }
        now_held.insert(name, (what, now));
        let body = HoldingBody {
            version: 0,
            device,
            dataset,
            seq: head.body.seq,
            commit,
            provider,
            time: now,
        };
        records.push(Holding::sign(body, &key)?.encode());
    }
    if !records.is_empty() {
        registry::hold_raw(reg, records, opts).await?;
    }
    let json = serde_json::to_vec(&now_held).expect("in-memory values encode");
    registry::write_atomic(&held_path, &json)
}
