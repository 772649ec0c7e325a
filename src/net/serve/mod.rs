//! `lode serve`: one iroh endpoint serving datasets over two protocols: iroh-blobs (verified
//! BLAKE3 streaming of objects) and `lode/2` (ref listing).
//!
//! Blobs are sent straight from the repositories' object files (`blobs`: nothing is imported,
//! start-up does no work per object). Every blob request is intercepted: a hash is served only
//! if a served dataset's published heads reach it (`reach`, an index on disk brought up to each
//! new head incrementally), only as a raw blob (no hash sequences, whose children would bypass
//! the check); a `get_many` request (many whole blobs on one stream, how clients fetch small
//! objects) only if every hash in it is allowed. Refs are re-read on every ref listing, so
//! commits made while the server runs are served without a restart.

pub mod authz;
pub mod blobs;
mod handler;
mod push;
pub mod reach;
mod state;

pub use authz::{blobs_protocol, blobs_protocol_metered, Policy};

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use iroh::protocol::Router;

use crate::error::{Error, Result};
use crate::net::endpoint::{bind, Net, NetOptions};
use crate::net::limit::{Limiter, Limits};
use crate::net::proto;
use crate::net::swarm::announce::PeerBook;
use crate::net::swarm::membership;
use crate::repo::Repo;
use crate::ticket::Ticket;

use state::*;

/// Optional settings of [`serve`].
#[derive(Default)]
pub struct ServeSetup {
    /// Reports the walk of a repository whose reachability index is new or behind (the first
    /// start, or after a reload); a start with the index up to date walks nothing.
    pub progress: Option<Arc<dyn crate::progress::Progress>>,
    /// Each message makes every dataset be re-read from scratch (after a mirror deleted
    /// objects or was removed).
    pub reload: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

/// Binds the endpoint. Without address lookup (LAN, air-gapped: peers know this one only by
/// the addresses in its tickets), a port left to chance is the one this repository last served
/// on (`.lode/serve.port`), so that collaborators' remotes and tickets keep working across a
/// restart; when that port is taken, a new one is used and `notes` says so.
async fn bind_remembered(
    key: &ed25519_dalek::SigningKey,
    opts: &NetOptions,
    port_file: &std::path::Path,
    notes: &mut Vec<String>,
) -> Result<Net> {
    let chance = opts.bind.is_none_or(|a| a.port() == 0);
    let remembered = std::fs::read_to_string(port_file)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|p| *p != 0);
    let net = match remembered {
        Some(port) if chance && !opts.discovery => {
            let ip = opts
                .bind
                .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| {
                    a.ip()
                });
            let again = NetOptions {
                bind: Some(std::net::SocketAddr::new(ip, port)),
                ..opts.clone()
            };
            match bind(key, &again).await {
                Ok(net) => net,
                Err(e) => {
                    notes.push(format!(
                        "port {port}, where this repository was served before, is taken ({e}); \
                         serving on a new port: collaborators refresh their remote with \
                         `lode remote add origin NEW-TICKET`"
                    ));
                    bind(key, opts).await?
                }
            }
        }
        _ => bind(key, opts).await?,
    };
    if let Some(port) = net.endpoint.bound_sockets().first().map(|a| a.port()) {
        let _ = std::fs::write(port_file, format!("{port}\n"));
    }
    Ok(net)
}

/// Takes `.lode/serve.lock` of each repository for as long as it is served (the kernel
/// releases it when the process ends, however it ends), so that a second `lode serve` of the
/// same repository is told which process already serves it.
fn serve_locks(repos: &[Repo]) -> Result<Vec<crate::db::WriteLock>> {
    repos
        .iter()
        .map(|r| {
            let path = r.root().join(".lode").join("serve.lock");
            crate::db::WriteLock::acquire(&path, Duration::ZERO).map_err(|e| match e {
                Error::Locked { holder, .. } => Error::AlreadyServed {
                    repo: r.root().to_path_buf(),
                    pid: holder.trim_start_matches("pid ").to_string(),
                },
                e => e,
            })
        })
        .collect()
}

/// Serves `repos` until `shutdown` completes. `ready` receives one ticket per dataset as soon
/// as the endpoint listens, and notes for the user (a remembered port that was taken).
pub async fn serve(
    repos: Vec<Repo>,
    opts: &NetOptions,
    setup: ServeSetup,
    ready: impl FnOnce(&[Ticket], &[String]),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let first = repos
        .first()
        .ok_or_else(|| Error::Other("nothing to serve".into()))?;
    let _serving = serve_locks(&repos)?;
    let store = blobs::ObjectBlobs::spawn(repos.iter().map(blobs::Source::of).collect());
    // The blob store of earlier versions (a copy of every small object): no longer used.
    for repo in &repos {
        let _ = std::fs::remove_dir_all(repo.root().join(".lode").join("serve-store"));
    }
    let key = first.device_key()?;
    let port_file = first.root().join(".lode").join("serve.port");
    let mut datasets = HashMap::new();
    let mut order = Vec::new();
    for repo in repos {
        let dataset = repo.dataset_id()?.to_bytes();
        order.push(dataset);
        let reach = reach::Reach::open(&repo.serve_index_path())?;
        let served = Served {
            reach,
            repo,
            dataset,
            state: Mutex::new(ServedState::default()),
            push: tokio::sync::Mutex::new(()),
            seq: tokio::sync::watch::Sender::new(0),
            update: tokio::sync::Mutex::new(()),
            revoke: tokio::sync::Mutex::new(()),
            book: Arc::new(PeerBook::new(dataset, key.verifying_key().to_bytes())),
        };
        datasets.insert(dataset, Arc::new(served));
    }
    let shared = Arc::new(Shared {
        datasets,
        authorized: RwLock::new(HashMap::new()),
        store,
        progress: setup
            .progress
            .unwrap_or_else(|| Arc::new(crate::progress::NoProgress)),
        net: OnceLock::new(),
        limiter: Limiter::new(Limits::LODE2),
    });
    for served in shared.datasets.values() {
        shared.refresh(served).await?;
    }
    shared.progress.finish();
    let policy: Policy = {
        let shared = shared.clone();
        Arc::new(move |peer, hash| shared.may_serve(peer, hash))
    };
    let blobs = blobs_protocol(shared.store.api(), policy);
    // While a subscriber waits, each dataset is re-read every second, so that a commit made
    // meanwhile (by `lode commit` in the served repository) wakes it.
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                for served in shared.datasets.values() {
                    if served.seq.receiver_count() > 0 {
                        let _ = shared.refresh(served).await;
                    }
                }
            }
        });
    }
    if let Some(mut rx) = setup.reload {
        let shared = shared.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                for served in shared.datasets.values() {
                    // A failure leaves the previous state; the next round tries again.
                    let _ = shared.reload(served).await;
                }
            }
        });
    }
    let mut notes = Vec::new();
    let net = bind_remembered(&key, opts, &port_file, &mut notes).await?;
    let _ = shared.net.set(net.clone());
    // A member of the swarm topic of every public dataset served: it hears the downloaders'
    // announcements (handed out on `Peers`, as a tracker does) and announces itself, so that
    // downloaders learn mirrors too. Restricted datasets have no swarm (docs/SECURITY.md).
    let gossip = membership::spawn_gossip(&net);
    let mut memberships = Vec::new();
    for served in shared.datasets.values() {
        if served.state.lock().expect("not poisoned").private {
            continue;
        }
        // A mirror joins through its origin, whose tracker then hands it to the dataset's
        // downloaders and other mirrors (an origin is found through its tickets).
        let bootstrap = mirror_origins(&served.repo, &net);
        let joined =
            membership::join(&gossip, &net, &key, served.book.clone(), bootstrap, true).await;
        match joined {
            Ok(m) => memberships.push(m),
            Err(e) => notes.push(format!("not announcing in the swarm: {e}")),
        }
    }
    let router = Router::builder(net.endpoint.clone())
        .accept(proto::ALPN, LodeProtocol(shared.clone()))
        .accept(iroh_blobs::ALPN, blobs)
        .accept(iroh_gossip::ALPN, gossip.clone())
        .spawn();
    let provider = net.provider();
    // One ticket per dataset, in the order the repositories were given.
    let tickets: Vec<Ticket> = order
        .iter()
        .map(|d| Ticket {
            dataset: *d,
            providers: vec![provider.clone()],
        })
        .collect();
    for ticket in &tickets {
        let served = &shared.datasets[&ticket.dataset];
        let path = served.repo.root().join(".lode").join("serve.ticket");
        let _ = std::fs::write(path, format!("{ticket}\n"));
    }
    ready(&tickets, &notes);
    shutdown.await;
    for served in shared.datasets.values() {
        let _ = std::fs::remove_file(served.repo.root().join(".lode").join("serve.ticket"));
    }
    drop(memberships);
    router
        .shutdown()
        .await
        .map_err(|e| Error::Net(format!("shutdown: {e}")))?;
    Ok(())
}

/// The providers of a mirror's origin (learnt by `net`); none for a repository that is not
/// a mirror.
fn mirror_origins(repo: &Repo, net: &Net) -> Vec<iroh::EndpointId> {
    let origins = match crate::config::is_mirror(repo) {
        Ok(true) => crate::net::fetch::remote(repo, "origin")
            .map(|t| {
                t.providers
                    .iter()
                    .filter_map(|p| net.learn(p).ok())
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    repo.release_db();
    origins
}
