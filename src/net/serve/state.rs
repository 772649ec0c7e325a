//! What a server holds per served dataset and across them, and how it is refreshed from the repositories.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::config;
use crate::error::{Error, Result};
use crate::net::endpoint::Net;
use crate::net::limit::Limiter;
use crate::ops::access;
use crate::progress::{NoProgress, Progress};
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
    /// Every object the dataset's published heads reach, on disk (`.lode/serve-index.redb`).
    pub(super) reach: super::reach::Reach,
}

#[derive(Default)]
pub(super) struct ServedState {
    /// The signed head last published, and the revocations served with it.
    pub(super) head: Option<SignedHead>,
    pub(super) revocations: Vec<Revocation>,
    pub(super) revoked: Revoked,
    pub(super) private: bool,
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
}

pub(super) struct Shared {
    pub(super) datasets: HashMap<[u8; 32], Arc<Served>>,
    /// Per peer (endpoint id), what its presented tickets allow beyond the public objects.
    pub(super) authorized: RwLock<HashMap<[u8; 32], Vec<Authz>>>,
    pub(super) store: super::blobs::ObjectBlobs,
    /// Reports the first walks of the reachability indexes (at start-up).
    pub(super) progress: Arc<dyn Progress>,
    /// The endpoint, once bound (pushes are fetched back through it).
    pub(super) net: OnceLock<Net>,
    /// Bounds on the `lode/2` requests of each peer and of all.
    pub(super) limiter: Arc<Limiter>,
}

impl Shared {
    /// Publishes the dataset's head (signing a new one when the refs or revocations changed
    /// and this device can sign) and brings the reachability index up to it.
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
        {
            let st = served.state.lock().expect("not poisoned");
            if st.head == head && st.revocations.len() == revocations.len() && st.private == private
            {
                return Ok(());
            }
        }
        let indexed = tokio::task::block_in_place(|| {
            let progress: &dyn Progress =
                if served.state.lock().expect("not poisoned").head.is_none() {
                    &*self.progress
                } else {
                    &NoProgress
                };
            served
                .reach
                .update(&served.repo, head.as_ref(), private, false, progress)
        });
        served.repo.release_db();
        indexed?;
        let mut st = served.state.lock().expect("not poisoned");
        st.revoked = access::revoked_set(&revocations);
        st.revocations = revocations;
        if let Some(h) = &head {
            served.seq.send_replace(h.body.seq);
        }
        st.head = head;
        st.private = private;
        drop(st);
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
        let private = served.state.lock().expect("not poisoned").private;
        let rebuilt = tokio::task::block_in_place(|| {
            served
                .reach
                .update(&served.repo, head.as_ref(), private, true, &NoProgress)
        });
        served.repo.release_db();
        rebuilt?;
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
