//! `lode push`: offer the commits of `main` to a serving peer, which fetches the objects it
//! lacks back from the pusher (verified, like any fetch) and moves its `main` atomically.
//!
//! The pusher runs a short-lived blob provider that serves only the objects reachable from
//! the pushed commit and not from what it last fetched from that remote. The server accepts a
//! fast-forward only (unless `--force`), and only from the `main` the pusher last saw: of two
//! racing pushes one wins and the other is told to pull first.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iroh::protocol::Router;
use iroh_blobs::Hash;

use crate::db::REFS;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::endpoint::{bind, peer_name, NetOptions};
use crate::net::fetch::{remote, Client};
use crate::net::proto::{Request, Response};
use crate::net::serve::blobs::{ObjectBlobs, Source};
use crate::net::serve::{blobs_protocol, Policy};
use crate::ops::access;
use crate::ops::graph::{closure, nothing_known};
use crate::repo::Repo;

/// How long the pusher waits for the server to fetch and apply a push.
const PUSH_TIMEOUT: Duration = Duration::from_secs(3600);

/// What `push` did.
#[derive(Debug, serde::Serialize)]
pub struct PushReport {
    pub commit: String,
    /// Objects offered to the server (it fetches only those it lacks).
    pub objects_offered: u64,
    /// Bytes of the offered objects.
    pub bytes_offered: u64,
    /// Objects and payload bytes the server actually fetched.
    pub objects_sent: u64,
    pub bytes_sent: u64,
    pub seconds: f64,
    pub peer: String,
}

/// Lists objects reachable from `roots` that are not reachable from `known_roots`, with sizes.
fn missing_closure(
    repo: &Repo,
    roots: &[ObjectId],
    known_roots: &[ObjectId],
) -> Result<Vec<(ObjectId, u64)>> {
    // The remote's last known state may be missing locally after a gc: then offer everything.
    let known: HashSet<ObjectId> = closure(repo, known_roots, &nothing_known)
        .map(|v| v.into_iter().map(|(id, _)| id).collect())
        .unwrap_or_default();
    closure(repo, roots, &|id| known.contains(id))
}

/// Pushes `main` to `remote_name`.
pub async fn push(
    repo: &Repo,
    remote_name: &str,
    force: bool,
    opts: &NetOptions,
) -> Result<PushReport> {
    let start = Instant::now();
    let ticket = remote(repo, remote_name)?;
    let cap = access::own_capability(repo)?;
    let head = repo.main()?.ok_or(Error::NoCommits)?;
    let tracking = format!("remotes/{remote_name}/main");
    let old = repo
        .refs(&tracking)?
        .into_iter()
        .find(|(n, _)| *n == tracking)
        .map(|(_, id)| id);
    let offered = missing_closure(repo, &[head], &old.into_iter().collect::<Vec<_>>())?;
    repo.release_db();

    // The objects are sent from the object files themselves (nothing is copied).
    let store = ObjectBlobs::spawn(vec![Source::of(repo)]);
    let ids: Vec<ObjectId> = offered.iter().map(|(id, _)| *id).collect();
    // Only the remote's providers may fetch, and only the offered objects.
    let allowed: HashSet<Hash> = ids.iter().map(|id| Hash::from_bytes(id.0)).collect();
    let servers: HashSet<[u8; 32]> = ticket.providers.iter().map(|p| p.id).collect();
    let policy: Policy = Arc::new(move |peer: Option<[u8; 32]>, hash: &Hash| {
        peer.is_some_and(|p| servers.contains(&p)) && allowed.contains(hash)
    });
    let key = repo.device_key()?;
    let seq = access::stored_head(repo)?.map_or(0, |h| h.body.seq);
    let net = bind(&key, opts).await?;
    let router = Router::builder(net.endpoint.clone())
        .accept(iroh_blobs::ALPN, blobs_protocol(store.api(), policy))
        .spawn();
    let client = Client::with_net(net.clone(), &ticket, cap.clone())?;
    let req = Request::Push {
        dataset: ticket.dataset,
        old,
        new: head,
        force,
        from: net.provider(),
        ticket: cap.map(|c| c.encode()),
        seq,
    };
    let mut outcome = Err(Error::NoProvider("the remote lists no provider".into()));
    let mut peer = String::new();
    for id in client.providers().to_vec() {
        peer = peer_name(id.as_bytes());
        outcome = client.request(id, &req, PUSH_TIMEOUT).await;
        if outcome.is_ok() {
            break;
        }
    }
    let _ = router.shutdown().await;
    let _ = store.api().shutdown().await;
    net.endpoint.close().await;
    let (received_objects, received_bytes) = match outcome? {
        Response::Pushed {
            head: h,
            objects,
            bytes,
        } if h == head => (objects, bytes),
        Response::Rejected(msg) | Response::Error(msg) => {
            return Err(Error::PushRejected { peer, msg })
        }
        Response::Denied(msg) => return Err(Error::NotAuthorized { peer, msg }),
        other => {
            return Err(Error::LyingPeer {
                peer,
                msg: format!("unexpected answer to a push: {other:?}"),
            })
        }
    };
    {
        let db = repo.db()?;
        let tx = db.db.begin_write()?;
        tx.open_table(REFS)?
            .insert(tracking.as_str(), head.to_hex().as_str())?;
        tx.commit()?;
    }
    Ok(PushReport {
        commit: head.to_hex(),
        objects_offered: offered.len() as u64,
        bytes_offered: offered.iter().map(|(_, n)| n).sum(),
        objects_sent: received_objects,
        bytes_sent: received_bytes,
        seconds: start.elapsed().as_secs_f64(),
        peer,
    })
}

/// What `revoke` told one known peer.
#[derive(Debug, serde::Serialize)]
pub struct RevocationPush {
    pub remote: String,
    pub peer: String,
    /// Revocations the peer did not know before, or `None` when it could not be told.
    pub new: Option<u64>,
    pub error: Option<String>,
}

/// Sends every revocation of `repo` to the providers of each of its remotes (mirrors and
/// other peers that serve the dataset), so that they refuse revoked tickets at once. A peer
/// that cannot be reached learns them with its next fetch.
pub async fn push_revocations(repo: &Repo, opts: &NetOptions) -> Result<Vec<RevocationPush>> {
    let revs: Vec<Vec<u8>> = crate::ops::access::revocations(repo)?
        .iter()
        .map(crate::trust::Revocation::encode)
        .collect();
    let remotes = crate::net::fetch::remotes(repo)?;
    let key = repo.device_key()?;
    repo.release_db();
    let mut out = Vec::new();
    if remotes.is_empty() || revs.is_empty() {
        return Ok(out);
    }
    let net = bind(&key, opts).await?;
    for (name, ticket) in remotes {
        let client = Client::with_net(net.clone(), &ticket, None)?;
        let req = Request::Revoke {
            dataset: ticket.dataset,
            revocations: revs.clone(),
        };
        for id in client.providers().to_vec() {
            let peer = peer_name(id.as_bytes());
            let (new, error) = match client.request(id, &req, Duration::from_secs(20)).await {
                Ok(Response::Revoked { new }) => (Some(new), None),
                Ok(Response::Error(m)) | Ok(Response::Denied(m)) | Ok(Response::Rejected(m)) => {
                    (None, Some(m))
                }
                Ok(other) => (None, Some(format!("unexpected answer: {other:?}"))),
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(RevocationPush {
                remote: name.clone(),
                peer,
                new,
                error,
            });
        }
    }
    net.endpoint.close().await;
    Ok(out)
}
