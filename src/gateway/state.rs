//! The gateway's state: the repositories it serves, the published commits of each (cached
//! for `?rev=`), and the tickets its pages show.

use std::collections::HashMap;
use std::sync::Arc;

use super::reach::{published_refs, walk_commits, Reach};
use crate::error::Result;
use crate::id::ObjectId;
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
}

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
