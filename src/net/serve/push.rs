//! Receiving a push: fetched into a quarantine, checked (scope, fast-forward), then admitted.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::access;
use crate::ops::graph::{closure, nothing_known};
use crate::repo::Repo;
use crate::ticket::Ticket;
use crate::trust::{self, TrustError};

use super::state::*;

impl LodeProtocol {
    /// Fetches a pushed commit's missing objects from the pusher into a quarantine, checks
    /// there that it changes only paths inside the writer's scope and that it is a
    /// fast-forward, then admits the objects and moves `main` (and the working tree) under
    /// the writer lock, and signs a new head. A refused push leaves nothing in the store: its
    /// quarantine is deleted (git's quarantine, since 2.11).
    pub(super) async fn receive_push(
        &self,
        served: &Served,
        push: PushRequest,
    ) -> Result<(u64, u64)> {
        let _one_at_a_time = served.push.lock().await;
        let net = self
            .0
            .net
            .get()
            .ok_or_else(|| Error::Net("endpoint not ready".into()))?
            .clone();
        let ticket = Ticket {
            dataset: served.dataset,
            providers: vec![push.from.clone()],
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let qdir = served
            .repo
            .quarantine_dir()
            .join(format!("push-{}-{n}", std::process::id()));
        let quarantine = served.repo.quarantined(&qdir)?;
        // Chunked files the fetch assembles go straight into the working tree (the guard
        // removes those a refused push leaves).
        let _prepared = served.repo.store().prepare_for_checkout();
        let result = async {
            let mut client = crate::net::fetch::Client::with_net(net, &ticket, None)?;
            let counts = crate::net::fetch::receive(
                &mut client,
                &quarantine,
                push.new,
                &crate::progress::NoProgress,
            )
            .await?;
            let repo = &served.repo;
            let checked = (|| -> Result<()> {
                if !push.scope.is_empty() {
                    check_push_scope(&quarantine, push.new, &push.scope)?;
                }
                let _lock = repo.lock()?;
                crate::ops::checkout::check_update(&quarantine, push.old, push.new, push.force)?;
                // Accepted: from here on the objects are the repository's.
                repo.store().admit(quarantine.store())?;
                Ok(())
            })()
            .and_then(|()| {
                crate::ops::checkout::update_main(
                    repo,
                    push.old,
                    push.new,
                    push.force,
                    &crate::progress::NoProgress,
                )?;
                access::publish_head(repo, push.seq)
            });
            repo.release_db();
            checked.map(|_| counts)
        }
        .await;
        // Accepted or refused, the quarantine goes (what a killed server leaves, `gc` removes).
        let _ = std::fs::remove_dir_all(&qdir);
        let counts = result?;
        self.0.refresh(served).await?;
        Ok(counts)
    }
}

/// Checks that every commit a push brings (each one not already reachable from `main`)
/// differs from `main`'s tree only inside `scope`: a scoped writer cannot slip other paths
/// into history, not even in an intermediate commit.
pub(super) fn check_push_scope(repo: &Repo, new: ObjectId, scope: &[String]) -> Result<()> {
    let main = repo.main()?;
    let known: HashSet<ObjectId> =
        closure(repo, &main.into_iter().collect::<Vec<_>>(), &nothing_known)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
    let base = repo.flatten_commit(main.as_ref())?;
    let mut todo = vec![new];
    let mut seen = HashSet::new();
    while let Some(c) = todo.pop() {
        if known.contains(&c) || !seen.insert(c) {
            continue;
        }
        let commit = repo.read_commit(&c)?;
        let tree = repo.flatten(&commit.body.tree)?;
        let removed = base.iter().filter(|(p, e)| tree.get(*p) != Some(e));
        let added = tree.iter().filter(|(p, e)| base.get(*p) != Some(e));
        for (p, _) in removed.chain(added) {
            if !trust::in_scope(scope, p) {
                return Err(TrustError::OutOfScope(p.clone()).into());
            }
        }
        todo.extend(commit.body.parents.iter().copied());
    }
    Ok(())
}

/// A push, as the serving side handles it.
pub(super) struct PushRequest {
    pub(super) old: Option<ObjectId>,
    pub(super) new: ObjectId,
    pub(super) force: bool,
    pub(super) from: crate::ticket::Provider,
    /// The writer's scope (empty: the whole dataset).
    pub(super) scope: Vec<String>,
    pub(super) seq: u64,
}
