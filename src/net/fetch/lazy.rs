//! Lazy clones over the network: `lode get PATH…` inside a clone fetches the content of
//! those files (verified, through the same walk as a fetch) and checks them out; `lode drop
//! PATH…` deletes content only after a provider of `origin` proved it holds it (as
//! git-annex checks numcopies before dropping). The local side is `ops::lazy`.

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::endpoint::NetOptions;
use crate::net::pieces;
use crate::ops::access;
use crate::ops::checkout::CheckoutReport;
use crate::ops::lazy::{self, DropReport};
use crate::progress::Progress;
use crate::repo::Repo;
use crate::trust::Bundle;

use super::client::Client;
use super::remotes::remote;
use super::share::{join_repo_swarm, Seeder};
use super::store::{close_store, fetch_store_dir, open_store};
use super::walk::{Sink, Walk};

/// The error for a restricted dataset: its files arrive encrypted as one sealed whole.
pub(super) fn restricted() -> Error {
    Error::Other(
        "a restricted dataset cannot be cloned lazily: its files come as one sealed, encrypted whole (clone it without --lazy)".into(),
    )
}

/// What `lode get PATH…` inside a lazy clone did: the checkout, and what its swarm session
/// moved (when it took part in one).
#[derive(Debug, serde::Serialize)]
pub struct GotHere {
    #[serde(flatten)]
    pub checkout: CheckoutReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<crate::net::swarm::SwarmReport>,
}

/// `lode get PATH…` inside a lazy clone: fetches the content of the files under `paths` that
/// this clone lacks from `origin` (and, for a public dataset with `opts.share`, from the
/// dataset's swarm, which it serves like a clone), then checks them out (refusing to
/// overwrite a changed file unless `force`), then seeds.
pub async fn get_here(
    repo: &Repo,
    paths: &[String],
    cap: Option<Bundle>,
    force: bool,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<GotHere> {
    let mut seeder = None;
    {
        let _lock = repo.lock()?;
        let wanted = lazy::missing_content(repo, paths)?;
        if !wanted.is_empty() {
            let ticket = remote(repo, "origin")?;
            let cap = match cap {
                Some(c) => Some(c),
                None => access::own_capability(repo)?,
            };
            repo.release_db();
            let mut client = Client::new(repo.home(), &ticket, cap, opts).await?;
            let got = fetch_content(&mut client, repo, &wanted, opts, progress).await;
            if got.is_ok() {
                seeder = Seeder::take(&mut client, opts);
            }
            client.close().await;
            got?;
        }
    }
    let checkout = crate::ops::checkout::checkout(repo, "HEAD", paths, force, progress);
    let swarm = match seeder {
        Some(s) => Some(s.finish(progress).await),
        None => None,
    };
    Ok(GotHere {
        checkout: checkout?,
        swarm,
    })
}

/// Fetches `wanted` (content ids with sizes) into the store through a transfer store.
async fn fetch_content(
    client: &mut Client,
    repo: &Repo,
    wanted: &[(ObjectId, u64)],
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<()> {
    // The head is listed (and checked) first: the provider serves what it publishes.
    let published = client.list_refs().await?;
    join_repo_swarm(client, repo, published.head.body.private, &opts.share, true).await?;
    let dir = fetch_store_dir(repo);
    let store = open_store(&dir).await?;
    let mut walk = Walk::new(client, dir.clone(), &store, Sink::Repo(repo), progress);
    walk.lazy = true;
    let got = walk.fetch_missing_as(wanted, Some("receiving")).await;
    match got {
        Ok(()) => {
            close_store(store, &dir).await;
            repo.store().sync()?;
            Ok(())
        }
        Err(e) => {
            let _ = store.shutdown().await;
            Err(e)
        }
    }
}

/// `lode drop PATH…`: frees the content of the files under `paths` once a provider of
/// `origin` has answered, for each content, with its first verified bytes; nothing is
/// deleted when any content has no such provider (it could be the only copy).
pub async fn drop_here(repo: &Repo, paths: &[String], opts: &NetOptions) -> Result<DropReport> {
    let _lock = repo.lock()?;
    let plan = lazy::plan_drop(repo, paths)?;
    if !plan.files.is_empty() {
        let ticket = remote(repo, "origin")?;
        let cap = access::own_capability(repo)?;
        repo.release_db();
        let client = Client::new(repo.home(), &ticket, cap, opts).await?;
        let mut wanted: Vec<(ObjectId, u64)> =
            plan.files.values().map(|e| (e.id, e.size)).collect();
        wanted.sort();
        wanted.dedup();
        let held = held_by_a_provider(&client, &wanted).await;
        client.close().await;
        let unheld: Vec<&String> = plan
            .files
            .iter()
            .filter(|(_, e)| !held.contains(&e.id))
            .map(|(p, _)| p)
            .collect();
        if let Some(first) = unheld.first() {
            return Err(Error::Other(format!(
                "refusing to drop {} file(s) ({first}…): no provider of origin holds their content, so this may be the only copy; nothing was deleted",
                unheld.len()
            )));
        }
    }
    lazy::apply_drop(repo, plan)
}

/// The contents of `wanted` that some provider proved to hold (its first bytes, verified
/// against the id by iroh-blobs).
async fn held_by_a_provider(
    client: &Client,
    wanted: &[(ObjectId, u64)],
) -> std::collections::HashSet<ObjectId> {
    let mut held = std::collections::HashSet::new();
    for provider in client.providers() {
        if held.len() == wanted.len() {
            break;
        }
        let Ok(conn) = pieces::connect(&client.net, *provider).await else {
            continue;
        };
        for (id, size) in wanted {
            if held.contains(id) {
                continue;
            }
            let end = (*size).min(16 << 10);
            let got = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                pieces::stream_range(&conn, *id, 0, Some(end), &|_, _| Ok(()), &|_| {}),
            )
            .await;
            if matches!(got, Ok(Ok(()))) && *size > 0 {
                held.insert(*id);
            }
        }
    }
    held
}
