//! What a server holds per served dataset and across them, and how it is refreshed from the repositories.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use iroh_blobs::api::blobs::{AddPathOptions, ImportMode};
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::{BlobFormat, Hash};
use n0_future::{BufferedStreamExt, StreamExt};

use crate::config;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::endpoint::Net;
use crate::net::limit::Limiter;
use crate::ops::access;
use crate::ops::access::published_closure;
use crate::repo::Repo;
use crate::trust::{Revocation, Revoked, SignedHead};

/// One served dataset.
pub(super) struct Served {
    pub(super) repo: Repo,
    pub(super) dataset: [u8; 32],
    pub(super) state: Mutex<ServedState>,
    /// Pushes to one dataset are received one at a time.
    pub(super) push: tokio::sync::Mutex<()>,
    /// The sequence number of the published head, for subscribers (`WaitHead`).
    pub(super) seq: tokio::sync::watch::Sender<u64>,
    /// Refreshes, reloads and withdrawals of one dataset take turns: each reads the
    /// repository, awaits imports, then writes the state, and must not overwrite a newer one.
    pub(super) update: tokio::sync::Mutex<()>,
    /// Revocations sent by peers are stored one request at a time.
    pub(super) revoke: tokio::sync::Mutex<()>,
    /// The swarm peers heard announcing themselves for this dataset (handed out on `Peers`).
    pub(super) book: Arc<crate::net::swarm::announce::PeerBook>,
}

#[derive(Default)]
pub(super) struct ServedState {
    /// The signed head last published, and the revocations served with it.
    pub(super) head: Option<SignedHead>,
    pub(super) revocations: Vec<Revocation>,
    pub(super) revoked: Revoked,
    pub(super) private: bool,
    /// Every object reachable from the head's refs, already imported into the blob store.
    pub(super) objects: HashSet<ObjectId>,
    /// The same, as the blob gatekeeper checks them; shared by every admitted peer.
    pub(super) hashes: Arc<HashSet<Hash>>,
    /// The repository is gone (a mirror removed under a taint notice): nothing is served.
    pub(super) gone: bool,
    /// When the last successful read of the repository started, and when the last one
    /// ended: refreshes asked for meanwhile share it, and the next one waits [`READ_GAP`].
    pub(super) read_started: Option<Instant>,
    pub(super) read_ended: Option<Instant>,
}

/// The least time between two reads of a served repository's database. redb lets one
/// process open a database at a time: without this pause, peers asking for listings back to
/// back could keep the server holding it and starve the owner's own commands (which retry
/// every few milliseconds).
pub(super) const READ_GAP: Duration = Duration::from_millis(25);

/// How long storing revocations sent by a peer waits for the writer lock: an owner's long
/// `add` is not waited for (the peer is told to send them again; it also learns them with
/// its next fetch).
pub(super) const REVOKE_LOCK_WAIT: Duration = Duration::from_secs(1);

/// What one peer may fetch of one dataset, until `expires`.
pub(super) struct Authz {
    pub(super) dataset: [u8; 32],
    pub(super) expires: u64,
    pub(super) hashes: Arc<HashSet<Hash>>,
}

pub(super) struct Shared {
    pub(super) datasets: HashMap<[u8; 32], Arc<Served>>,
    /// Union of the objects of the public datasets: what anyone may ask for.
    pub(super) public: RwLock<HashSet<Hash>>,
    /// Per peer (endpoint id), what its presented tickets allow beyond the public objects.
    pub(super) authorized: RwLock<HashMap<[u8; 32], Vec<Authz>>>,
    pub(super) store: FsStore,
    /// The endpoint, once bound (pushes are fetched back through it).
    pub(super) net: OnceLock<Net>,
    /// Bounds on the `lode/2` requests of each peer and of all.
    pub(super) limiter: Arc<Limiter>,
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

impl Shared {
    /// Publishes the dataset's head (signing a new one when the refs or revocations changed
    /// and this device can sign) and imports whatever became reachable.
    pub(super) async fn refresh(&self, served: &Served) -> Result<()> {
        let asked = Instant::now();
        let _turn = served.update.lock().await;
        if !served.repo.root().join(".lode").is_dir() {
            self.withdraw(served);
        }
        let ended = {
            let st = served.state.lock().expect("not poisoned");
            if st.gone {
                return Err(Error::Other("this dataset is no longer served here".into()));
            }
            // A read that started after this refresh was asked for saw every change made
            // before: share it (a flood of listings reads the repository once per turn).
            if st.read_started.is_some_and(|t| t >= asked) {
                return Ok(());
            }
            st.read_ended
        };
        if let Some(t) = ended {
            tokio::time::sleep_until((t + READ_GAP).into()).await;
        }
        let started = Instant::now();
        let result = self.read_and_publish(served).await;
        let mut st = served.state.lock().expect("not poisoned");
        st.read_ended = Some(Instant::now());
        if result.is_ok() && !st.gone {
            st.read_started = Some(started);
        }
        result
    }

    /// The body of [`Shared::refresh`]: reads the repository and publishes what changed.
    /// The caller holds `update`.
    pub(super) async fn read_and_publish(&self, served: &Served) -> Result<()> {
        let read = || -> Result<_> {
            let head = match access::publish_head(&served.repo, 0) {
                // A long command of the owner holds the writer lock: serve the head signed
                // so far (a later refresh signs the new refs) rather than fail the listing.
                Err(Error::Locked { .. }) => access::stored_head(&served.repo)?,
                other => other?,
            };
            let revocations = access::revocations(&served.repo)?;
            let private =
                config::is_private(&served.repo)? || head.as_ref().is_some_and(|h| h.body.private);
            Ok((head, revocations, private))
        };
        // Opening the database may wait for another holder: not on a runtime worker.
        let state = tokio::task::block_in_place(read);
        // Other commands (`lode ticket`, `lode commit`) need the database while we serve.
        served.repo.release_db();
        let (head, revocations, private) = state?;
        let known = {
            let st = served.state.lock().expect("not poisoned");
            if st.head == head && st.revocations.len() == revocations.len() && st.private == private
            {
                return Ok(());
            }
            st.objects.clone()
        };
        let new =
            tokio::task::block_in_place(|| published_closure(&served.repo, head.as_ref(), &known));
        served.repo.release_db();
        let new = new?;
        import_objects(&self.store, &served.repo, &new).await?;
        let mut st = served.state.lock().expect("not poisoned");
        st.objects.extend(new);
        st.hashes = Arc::new(st.objects.iter().map(|id| Hash::from_bytes(id.0)).collect());
        let was_private = st.private;
        if !private {
            let mut public = self.public.write().expect("not poisoned");
            public.extend(st.hashes.iter().copied());
        }
        st.revoked = access::revoked_set(&revocations);
        st.revocations = revocations;
        if let Some(h) = &head {
            served.seq.send_replace(h.body.seq);
        }
        st.head = head;
        st.private = private;
        drop(st);
        if private && !was_private {
            // Turning a dataset private withdraws it: the public set is rebuilt from the
            // datasets that stay public (they may share objects with this one).
            self.rebuild_public();
        }
        // Decisions cached for this dataset are taken again under the new state.
        self.forget_admissions(served);
        Ok(())
    }

    /// Stops serving a dataset whose repository is gone (a mirror removed under a taint
    /// notice): nothing of it is listed or served any more. The caller holds `update`.
    pub(super) fn withdraw(&self, served: &Served) {
        {
            let mut st = served.state.lock().expect("not poisoned");
            if st.gone {
                return;
            }
            *st = ServedState {
                gone: true,
                private: true,
                ..ServedState::default()
            };
        }
        self.rebuild_public();
        self.forget_admissions(served);
    }

    /// Re-reads a dataset from scratch, so that objects a mirror deleted (quota, taint
    /// notice) stop being served; a repository that is gone is withdrawn entirely.
    pub(super) async fn reload(&self, served: &Served) -> Result<()> {
        let _turn = served.update.lock().await;
        if !served.repo.root().join(".lode").is_dir() {
            self.withdraw(served);
            return Ok(());
        }
        let head = access::stored_head(&served.repo);
        served.repo.release_db();
        let head = head?;
        let all = published_closure(&served.repo, head.as_ref(), &HashSet::new());
        served.repo.release_db();
        let all: HashSet<ObjectId> = all?.into_iter().collect();
        let new: Vec<ObjectId> = {
            let st = served.state.lock().expect("not poisoned");
            all.difference(&st.objects).copied().collect()
        };
        import_objects(&self.store, &served.repo, &new).await?;
        let mut st = served.state.lock().expect("not poisoned");
        st.hashes = Arc::new(all.iter().map(|id| Hash::from_bytes(id.0)).collect());
        st.objects = all;
        drop(st);
        self.rebuild_public();
        self.forget_admissions(served);
        Ok(())
    }
}
#[derive(Clone)]
pub(super) struct LodeProtocol(pub(super) Arc<Shared>);

impl std::fmt::Debug for LodeProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LodeProtocol")
    }
}
