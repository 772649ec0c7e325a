//! The gateway's state: the repositories it serves, the published commits of each (cached
//! for `?rev=`), and the tickets its pages show.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::reach::{published_refs, walk_commits, Reach};
use crate::error::Result;
use crate::id::ObjectId;
use crate::net::endpoint::NetOptions;
use crate::repo::Repo;

/// The datasets a gateway serves, by id (hex).
pub struct Gateway {
    pub(super) repos: Vec<(String, Repo)>,
    /// The published commits of each dataset, by dataset id, for the refs they were
    /// computed from.
    reach: std::sync::Mutex<HashMap<String, Arc<Reach>>>,
    /// Bounds the requests that read a repository at once (each holds at most one tree or
    /// commit in memory, and 256 KiB frames of a file).
    pub(super) readers: tokio::sync::Semaphore,
    /// The serving peer's ticket of each dataset, by dataset id (hex), once it is known.
    tickets: std::sync::RwLock<HashMap<String, String>>,
    /// What the registries this user knows said of the datasets' copies, and when.
    copies: std::sync::RwLock<Option<(std::time::Instant, Holders)>>,
    /// Woken when a page finds the copies stale.
    stale: tokio::sync::Notify,
}

/// Per dataset id (hex), the (`main` commit, device) of each holding record.
type Holders = HashMap<String, Vec<([u8; 32], [u8; 32])>>;

/// How many storage managers hold a dataset, as the registries this user knows say.
#[derive(Clone, Debug, serde::Serialize)]
pub(super) struct CopiesView {
    /// Those whose holding record names the published `main`.
    pub current: usize,
    /// Those holding another version only.
    pub older: usize,
}

/// How long the copies shown stay fresh: a page after that asks for them again.
const COPIES_FRESH: Duration = Duration::from_secs(10);

/// How many requests read repositories at once; the others wait their turn.
const MAX_READERS: usize = 16;

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
        Ok(Gateway {
            repos: out,
            reach: std::sync::Mutex::new(HashMap::new()),
            readers: tokio::sync::Semaphore::new(MAX_READERS),
            tickets: std::sync::RwLock::new(HashMap::new()),
            copies: std::sync::RwLock::new(None),
            stale: tokio::sync::Notify::new(),
        })
    }

    /// Keeps the copies of the served datasets that the registries this user knows (`lode
    /// publish`, `lode mirror volunteer`, … used them) hold records of: asked at once, then
    /// every `every` or when a page finds them stale. Runs until dropped.
    pub async fn follow_copies(&self, opts: &NetOptions, every: Duration) {
        let Some(home) = self.repos.first().map(|(_, r)| r.home().clone()) else {
            return;
        };
        let ids: Vec<[u8; 32]> = (self.repos.iter())
            .filter_map(|(id, _)| {
                let mut d = [0u8; 32];
                hex::decode_to_slice(id, &mut d).ok().map(|_| d)
            })
            .collect();
        loop {
            let mut by: Holders = HashMap::new();
            let mut answered = false;
            for reg in crate::net::registry::known(&home).iter().take(4) {
                let Ok(held) = crate::net::registry::holdings_of(reg, &ids, opts).await else {
                    continue;
                };
                answered = true;
                for h in held {
                    let devices = by.entry(hex::encode(h.body.dataset)).or_default();
                    if !devices.iter().any(|(_, d)| *d == h.body.device) {
                        devices.push((h.body.commit, h.body.device));
                    }
                }
            }
            if answered {
                *self.copies.write().unwrap_or_else(|e| e.into_inner()) =
                    Some((std::time::Instant::now(), by));
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.stale.notified() => {}
            }
        }
    }

    /// The copies of dataset `id` whose published `main` is `main`, once a registry told
    /// them; asks for them again when they are stale.
    pub(super) fn copies_of(&self, id: &str, main: Option<ObjectId>) -> Option<CopiesView> {
        let known = self.copies.read().unwrap_or_else(|e| e.into_inner());
        if known
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > COPIES_FRESH)
        {
            self.stale.notify_one();
        }
        let (_, by) = known.as_ref()?;
        let held = by.get(id).map(Vec::as_slice).unwrap_or_default();
        let current = (held.iter())
            .filter(|(c, _)| main.is_some_and(|m| m.0 == *c))
            .count();
        Some(CopiesView {
            current,
            older: held.len() - current,
        })
    }

    /// Records the tickets (`lode1…`) under which the datasets are served, shown on their
    /// pages ("get this dataset"). Strings that are not tickets are ignored.
    pub fn set_tickets<T: std::fmt::Display>(&self, tickets: &[T]) {
        let mut map = self.tickets.write().unwrap_or_else(|e| e.into_inner());
        for t in tickets {
            let t = t.to_string();
            if let Ok(parsed) = t.parse::<crate::ticket::Ticket>() {
                map.insert(hex::encode(parsed.dataset), t);
            }
        }
    }

    pub(super) fn ticket(&self, id: &str) -> Option<String> {
        let map = self.tickets.read().unwrap_or_else(|e| e.into_inner());
        map.get(id).cloned()
    }

    pub(super) fn public(&self, id: &str) -> Option<&Repo> {
        let (_, repo) = self.repos.iter().find(|(d, _)| d == id)?;
        let private = crate::config::is_private(repo).unwrap_or(true);
        repo.release_db();
        (!private).then_some(repo)
    }

    /// The commits dataset `id` publishes now: cached while its refs stay the same, and
    /// extended (not recomputed) when they only move forward.
    pub(super) fn reach(&self, id: &str, repo: &Repo) -> Result<Arc<Reach>> {
        let (main, tags) = published_refs(repo)?;
        let mut roots: Vec<ObjectId> = main
            .iter()
            .copied()
            .chain(tags.iter().map(|(_, c)| *c))
            .collect();
        roots.sort();
        roots.dedup();
        // One computation at a time: parallel requests for a new head wait for the first.
        let mut cache = self.reach.lock().unwrap_or_else(|e| e.into_inner());
        let old = cache.get(id).cloned();
        if let Some(o) = &old {
            if o.roots == roots && o.main == main && o.tags == tags {
                return Ok(o.clone());
            }
        }
        let parents = walk_commits(repo, &roots, old.as_deref());
        let r = Arc::new(Reach {
            roots,
            main,
            tags,
            first_parent: parents,
        });
        cache.insert(id.to_string(), r.clone());
        Ok(r)
    }
}
