//! `lode serve`: one iroh endpoint serving datasets over two protocols: iroh-blobs (verified
//! BLAKE3 streaming of objects) and `lode/1` (ref listing).
//!
//! Objects are imported into an iroh-blobs store (`.lode/serve-store` of the first served
//! repository) *by reference*: the store reads the repository's immutable object files in
//! place and only adds its outboards. Every blob request is intercepted: a hash is served only
//! if it is reachable from the refs of a served dataset (never an arbitrary hash of the
//! store), only as a raw blob (no hash sequences, whose children would bypass the check), and
//! `get_many` is disabled. Refs are re-read on every ref listing, so commits made while the
//! server runs are served without a restart.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh_blobs::api::blobs::{AddPathOptions, ImportMode};
use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ObserveMode, ProviderMessage, RequestMode,
};
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::{BlobFormat, BlobsProtocol, Hash};
use n0_future::{BufferedStreamExt, StreamExt};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::endpoint::{bind, Net, NetOptions};
use crate::net::proto::{self, Refs, Request, Response};
use crate::net::ticket::Ticket;
use crate::object::EntryKind;
use crate::repo::Repo;

/// One served dataset.
struct Served {
    repo: Repo,
    dataset: [u8; 32],
    state: Mutex<ServedState>,
    /// Pushes to one dataset are received one at a time.
    push: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct ServedState {
    refs: Option<Refs>,
    /// Every object reachable from `refs`, already imported into the blob store.
    objects: HashSet<ObjectId>,
}

struct Shared {
    datasets: HashMap<[u8; 32], Arc<Served>>,
    /// Union of the served objects of all datasets: what blob requests may ask for.
    allowed: Allowed,
    store: FsStore,
    /// The endpoint, once bound (pushes are fetched back through it).
    net: OnceLock<Net>,
}

/// The hashes a blob provider may serve.
pub type Allowed = Arc<RwLock<HashSet<Hash>>>;

/// Reads a dataset's published refs: the `main` branch and the tags.
pub fn published_refs(repo: &Repo) -> Result<Refs> {
    let head = repo.main()?;
    let tags = repo
        .refs("tags/")?
        .into_iter()
        .map(|(n, id)| (n.trim_start_matches("tags/").to_string(), id))
        .collect();
    Ok(Refs { head, tags })
}

/// Lists the objects reachable from `roots` that are not in `known`, with blob sizes (0 for
/// commits and trees).
pub fn closure(
    repo: &Repo,
    roots: &[ObjectId],
    known: &HashSet<ObjectId>,
) -> Result<Vec<(ObjectId, u64)>> {
    let mut out = Vec::new();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut commits: Vec<ObjectId> = roots.to_vec();
    let mut trees = Vec::new();
    while let Some(c) = commits.pop() {
        if known.contains(&c) || !seen.insert(c) {
            continue;
        }
        let commit = repo.read_commit(&c)?;
        out.push((c, 0));
        commits.extend(commit.body.parents.iter().copied());
        trees.push(commit.body.tree);
    }
    while let Some(t) = trees.pop() {
        if known.contains(&t) || !seen.insert(t) {
            continue;
        }
        out.push((t, 0));
        // A tree this build cannot decode is served as an opaque object: the receiver checks
        // it (and refuses it) itself.
        let Ok(tree) = repo.read_tree(&t) else {
            continue;
        };
        for e in tree.entries {
            if e.kind == EntryKind::Dir {
                trees.push(e.id);
            } else if !known.contains(&e.id) && seen.insert(e.id) {
                out.push((e.id, e.size));
            }
        }
    }
    Ok(out)
}

/// Imports objects of `repo` into `store` by reference (the store reads the immutable object
/// files in place), each kept by a named tag.
pub async fn import_objects(store: &FsStore, repo: &Repo, ids: &[ObjectId]) -> Result<()> {
    let results: Vec<Result<()>> = n0_future::stream::iter(ids.iter().copied())
        .map(|id| async move {
            let path = repo.store().path(&id);
            let opts = AddPathOptions {
                path: path.clone(),
                format: BlobFormat::Raw,
                mode: ImportMode::TryReference,
            };
            let tag = store
                .add_path_with_opts(opts)
                .temp_tag()
                .await
                .map_err(|e| {
                    Error::Net(format!(
                        "cannot prepare {} for serving: {e}",
                        path.display()
                    ))
                })?;
            if tag.hash().as_bytes() != &id.0 {
                return Err(Error::ObjectCorrupt { id, path: None });
            }
            store
                .tags()
                .set(format!("lode/{id}"), tag.hash_and_format())
                .await
                .map_err(|e| Error::Net(format!("blob store: {e}")))?;
            Ok(())
        })
        .buffered_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Builds the blob protocol for `store`, serving only the raw blobs in `allowed`.
pub fn blobs_protocol(store: &FsStore, allowed: Allowed) -> BlobsProtocol {
    let mask = EventMask {
        connected: ConnectMode::Intercept,
        get: RequestMode::Intercept,
        get_many: RequestMode::Disabled,
        observe: ObserveMode::Intercept,
        ..EventMask::DEFAULT
    };
    let (events, rx) = EventSender::channel(256, mask);
    tokio::spawn(gatekeeper(allowed, rx));
    BlobsProtocol::new(store, Some(events))
}

impl Shared {
    /// Re-reads the refs of a dataset and imports whatever became reachable.
    async fn refresh(&self, served: &Served) -> Result<Refs> {
        let refs = published_refs(&served.repo);
        served.repo.release_db();
        let refs = refs?;
        let known = {
            let st = served.state.lock().expect("not poisoned");
            if st.refs.as_ref() == Some(&refs) {
                return Ok(refs);
            }
            st.objects.clone()
        };
        let roots = refs.roots();
        let new: Vec<ObjectId> = closure(&served.repo, &roots, &known)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        import_objects(&self.store, &served.repo, &new).await?;
        {
            let mut allowed = self.allowed.write().expect("not poisoned");
            allowed.extend(new.iter().map(|id| Hash::from_bytes(id.0)));
        }
        let mut st = served.state.lock().expect("not poisoned");
        st.objects.extend(new);
        st.refs = Some(refs.clone());
        // Other commands (`lode ticket`, `lode commit`) need the database while we serve.
        served.repo.release_db();
        Ok(refs)
    }
}

#[derive(Clone)]
struct LodeProtocol(Arc<Shared>);

impl std::fmt::Debug for LodeProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LodeProtocol")
    }
}

impl ProtocolHandler for LodeProtocol {
    async fn accept(&self, conn: Connection) -> std::result::Result<(), AcceptError> {
        loop {
            let (mut send, mut recv) = match conn.accept_bi().await {
                Ok(s) => s,
                Err(_) => return Ok(()), // the client closed the connection
            };
            let response = match recv.read_to_end(proto::MAX_MESSAGE).await {
                Ok(bytes) => self.handle(&bytes, conn.remote_id()).await,
                Err(e) => Response::Error(format!("request unreadable or too large: {e}")),
            };
            send.write_all(&proto::encode(&response))
                .await
                .map_err(AcceptError::from_err)?;
            send.finish()?;
        }
    }
}

impl LodeProtocol {
    async fn handle(&self, bytes: &[u8], remote: iroh::EndpointId) -> Response {
        let req: Request = match proto::decode(bytes) {
            Ok(r) => r,
            Err(e) => return Response::Error(format!("malformed request: {e}")),
        };
        match req {
            Request::ListRefs { dataset } => match self.0.datasets.get(&dataset) {
                None => Response::Error("dataset not served here".into()),
                Some(served) => match self.0.refresh(served).await {
                    Ok(refs) => Response::Refs(refs),
                    Err(e) => Response::Error(format!("cannot read the dataset: {e}")),
                },
            },
            Request::Push {
                dataset,
                old,
                new,
                force,
                from,
            } => {
                let Some(served) = self.0.datasets.get(&dataset) else {
                    return Response::Error("dataset not served here".into());
                };
                if from.id != *remote.as_bytes() {
                    return Response::Rejected("the pusher must provide the objects itself".into());
                }
                match self.receive_push(served, old, new, force, from).await {
                    Ok((objects, bytes)) => Response::Pushed {
                        head: new,
                        objects,
                        bytes,
                    },
                    Err(e) => Response::Rejected(e.to_string()),
                }
            }
        }
    }

    /// Fetches a pushed commit's missing objects from the pusher, then moves `main` (and the
    /// working tree) under the writer lock, fast-forward only unless forced.
    async fn receive_push(
        &self,
        served: &Served,
        old: Option<ObjectId>,
        new: ObjectId,
        force: bool,
        from: crate::net::ticket::Provider,
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
            providers: vec![from],
        };
        let mut client = crate::net::fetch::Client::with_net(net, &ticket)?;
        let counts = crate::net::fetch::receive(
            &mut client,
            &served.repo,
            new,
            &crate::progress::NoProgress,
        )
        .await?;
        let result = crate::ops::checkout::update_main(
            &served.repo,
            old,
            new,
            force,
            &crate::progress::NoProgress,
        );
        served.repo.release_db();
        result?;
        self.0.refresh(served).await?;
        Ok(counts)
    }
}

/// Answers the blob provider's intercepted events: connections are accepted (served datasets
/// are public until access control lands); each request is checked against `allowed`.
async fn gatekeeper(allowed: Allowed, mut rx: tokio::sync::mpsc::Receiver<ProviderMessage>) {
    let may_serve = |h: &Hash| allowed.read().expect("not poisoned").contains(h);
    while let Some(msg) = rx.recv().await {
        match msg {
            ProviderMessage::ClientConnected(msg) => {
                msg.tx.send(Ok(())).await.ok();
            }
            ProviderMessage::GetRequestReceived(msg) => {
                let ok = msg.request.ranges.is_blob() && may_serve(&msg.request.hash);
                let answer = if ok {
                    Ok(())
                } else {
                    Err(AbortReason::Permission)
                };
                msg.tx.send(answer).await.ok();
            }
            ProviderMessage::ObserveRequestReceived(msg) => {
                let ok = may_serve(&msg.request.hash);
                let answer = if ok {
                    Ok(())
                } else {
                    Err(AbortReason::Permission)
                };
                msg.tx.send(answer).await.ok();
            }
            _ => {}
        }
    }
}

/// Serves `repos` until `shutdown` completes. `ready` receives one ticket per dataset as soon
/// as the endpoint listens.
pub async fn serve(
    repos: Vec<Repo>,
    opts: &NetOptions,
    ready: impl FnOnce(&[Ticket]),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let first = repos
        .first()
        .ok_or_else(|| Error::Other("nothing to serve".into()))?;
    let store_dir = first.root().join(".lode").join("serve-store");
    let store = FsStore::load(&store_dir).await.map_err(|e| {
        Error::Net(format!(
            "cannot open blob store {}: {e}",
            store_dir.display()
        ))
    })?;
    let key = first.device_key()?;
    let mut datasets = HashMap::new();
    for repo in repos {
        let dataset = repo.dataset_id()?.to_bytes();
        let served = Served {
            repo,
            dataset,
            state: Mutex::new(ServedState::default()),
            push: tokio::sync::Mutex::new(()),
        };
        datasets.insert(dataset, Arc::new(served));
    }
    let shared = Arc::new(Shared {
        datasets,
        allowed: Arc::new(RwLock::new(HashSet::new())),
        store,
        net: OnceLock::new(),
    });
    for served in shared.datasets.values() {
        shared.refresh(served).await?;
    }
    let blobs = blobs_protocol(&shared.store, shared.allowed.clone());
    let net = bind(&key, opts).await?;
    let _ = shared.net.set(net.clone());
    let router = Router::builder(net.endpoint.clone())
        .accept(proto::ALPN, LodeProtocol(shared.clone()))
        .accept(iroh_blobs::ALPN, blobs)
        .spawn();
    let provider = net.provider();
    let tickets: Vec<Ticket> = shared
        .datasets
        .values()
        .map(|s| Ticket {
            dataset: s.dataset,
            providers: vec![provider.clone()],
        })
        .collect();
    for (served, ticket) in shared.datasets.values().zip(&tickets) {
        let path = served.repo.root().join(".lode").join("serve.ticket");
        let _ = std::fs::write(path, format!("{ticket}\n"));
    }
    ready(&tickets);
    shutdown.await;
    for served in shared.datasets.values() {
        let _ = std::fs::remove_file(served.repo.root().join(".lode").join("serve.ticket"));
    }
    router
        .shutdown()
        .await
        .map_err(|e| Error::Net(format!("shutdown: {e}")))?;
    Ok(())
}
