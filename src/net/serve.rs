//! `lode serve`: one iroh endpoint serving datasets over two protocols: iroh-blobs (verified
//! BLAKE3 streaming of objects) and `lode/2` (ref listing).
//!
//! Objects are imported into an iroh-blobs store (`.lode/serve-store` of the first served
//! repository) *by reference*: the store reads the repository's immutable object files in
//! place and only adds its outboards. Every blob request is intercepted: a hash is served only
//! if it is reachable from the refs of a served dataset (never an arbitrary hash of the
//! store), only as a raw blob (no hash sequences, whose children would bypass the check); a
//! `get_many` request (many whole blobs on one stream, how clients fetch small objects) only
//! if every hash in it is allowed. Refs are re-read on every ref listing, so commits made while the
//! server runs are served without a restart.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh_blobs::api::blobs::{AddPathOptions, ImportMode};
use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ObserveMode, ProviderMessage, RequestMode,
};
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::{BlobFormat, BlobsProtocol, Hash};
use n0_future::{BufferedStreamExt, StreamExt};

use crate::config;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::endpoint::{answer_requests, bind, Net, NetOptions};
use crate::net::limit::{Class, Limiter, Limits};
use crate::net::proto::{self, Listing, Request, Response};
use crate::ops::access;
use crate::ops::access::published_closure;
use crate::ops::graph::closure;
use crate::repo::Repo;
use crate::ticket::Ticket;
use crate::trust::{self, Bundle, Capability, Revocation, Revoked, Rights, SignedHead, TrustError};

/// One served dataset.
struct Served {
    repo: Repo,
    dataset: [u8; 32],
    state: Mutex<ServedState>,
    /// Pushes to one dataset are received one at a time.
    push: tokio::sync::Mutex<()>,
    /// The sequence number of the published head, for subscribers (`WaitHead`).
    seq: tokio::sync::watch::Sender<u64>,
    /// Refreshes, reloads and withdrawals of one dataset take turns: each reads the
    /// repository, awaits imports, then writes the state, and must not overwrite a newer one.
    update: tokio::sync::Mutex<()>,
    /// Revocations sent by peers are stored one request at a time.
    revoke: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct ServedState {
    /// The signed head last published, and the revocations served with it.
    head: Option<SignedHead>,
    revocations: Vec<Revocation>,
    revoked: Revoked,
    private: bool,
    /// Every object reachable from the head's refs, already imported into the blob store.
    objects: HashSet<ObjectId>,
    /// The same, as the blob gatekeeper checks them; shared by every admitted peer.
    hashes: Arc<HashSet<Hash>>,
    /// The repository is gone (a mirror removed under a taint notice): nothing is served.
    gone: bool,
    /// When the last successful read of the repository started, and when the last one
    /// ended: refreshes asked for meanwhile share it, and the next one waits [`READ_GAP`].
    read_started: Option<Instant>,
    read_ended: Option<Instant>,
}

/// The least time between two reads of a served repository's database. redb lets one
/// process open a database at a time: without this pause, peers asking for listings back to
/// back could keep the server holding it and starve the owner's own commands (which retry
/// every few milliseconds).
const READ_GAP: Duration = Duration::from_millis(25);

/// How long storing revocations sent by a peer waits for the writer lock: an owner's long
/// `add` is not waited for (the peer is told to send them again; it also learns them with
/// its next fetch).
const REVOKE_LOCK_WAIT: Duration = Duration::from_secs(1);

/// What one peer may fetch of one dataset, until `expires`.
struct Authz {
    dataset: [u8; 32],
    expires: u64,
    hashes: Arc<HashSet<Hash>>,
}

struct Shared {
    datasets: HashMap<[u8; 32], Arc<Served>>,
    /// Union of the objects of the public datasets: what anyone may ask for.
    public: RwLock<HashSet<Hash>>,
    /// Per peer (endpoint id), what its presented tickets allow beyond the public objects.
    authorized: RwLock<HashMap<[u8; 32], Vec<Authz>>>,
    store: FsStore,
    /// The endpoint, once bound (pushes are fetched back through it).
    net: OnceLock<Net>,
    /// Bounds on the `lode/2` requests of each peer and of all.
    limiter: Arc<Limiter>,
}

/// Decides whether a peer (by endpoint id, when the connection has one) may fetch a hash.
pub type Policy = Arc<dyn Fn(Option<[u8; 32]>, &Hash) -> bool + Send + Sync>;

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

/// Builds the blob protocol for `store`, serving only the raw blobs `policy` allows to the
/// asking peer.
pub fn blobs_protocol(store: &FsStore, policy: Policy) -> BlobsProtocol {
    let mask = EventMask {
        connected: ConnectMode::Intercept,
        get: RequestMode::Intercept,
        get_many: RequestMode::Intercept,
        observe: ObserveMode::Intercept,
        ..EventMask::DEFAULT
    };
    let (events, rx) = EventSender::channel(256, mask);
    tokio::spawn(gatekeeper(policy, rx));
    BlobsProtocol::new(store, Some(events))
}

impl Shared {
    /// Publishes the dataset's head (signing a new one when the refs or revocations changed
    /// and this device can sign) and imports whatever became reachable.
    async fn refresh(&self, served: &Served) -> Result<()> {
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
    async fn read_and_publish(&self, served: &Served) -> Result<()> {
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
    fn withdraw(&self, served: &Served) {
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
    async fn reload(&self, served: &Served) -> Result<()> {
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

    /// Checks a presented ticket (or its absence) for `peer` and `dataset`, before anything
    /// about the dataset is looked up. Returns the capability, or `None` for public access.
    fn authorize(
        &self,
        dataset: &[u8; 32],
        ticket: Option<&[u8]>,
        peer: &[u8; 32],
        need: Rights,
    ) -> std::result::Result<(Arc<Served>, Option<Capability>), String> {
        const NO: &str = "this peer serves no public dataset with that id; present a ticket from its owner (--ticket)";
        let public = || -> Option<Arc<Served>> {
            let served = self.datasets.get(dataset)?;
            let st = served.state.lock().expect("not poisoned");
            let open = !st.private && !st.gone;
            drop(st);
            (open && !need.contains(Rights::WRITE)).then(|| served.clone())
        };
        let Some(bytes) = ticket else {
            if need.contains(Rights::WRITE) {
                return Err("pushing needs a ticket with the write right (--ticket)".into());
            }
            return public().map(|s| (s, None)).ok_or_else(|| NO.to_string());
        };
        // Reading a public dataset needs no ticket: a stale one is ignored there.
        self.check_ticket(dataset, bytes, peer, need)
            .or_else(|e| public().map(|s| (s, None)).ok_or(e))
    }

    /// The ticket checks, in order: strict decoding, the holder is the peer, the dataset
    /// matches, the chain is rooted in the dataset key and valid now (all before looking up
    /// whether the dataset is hosted here), then revocations and rights.
    fn check_ticket(
        &self,
        dataset: &[u8; 32],
        bytes: &[u8],
        peer: &[u8; 32],
        need: Rights,
    ) -> std::result::Result<(Arc<Served>, Option<Capability>), String> {
        let bundle = Bundle::decode(bytes).map_err(|e| e.to_string())?;
        let holder = bundle.leaf().body.audience;
        if &holder != peer {
            return Err(TrustError::WrongAudience {
                holder: hex::encode(holder),
                peer: hex::encode(peer),
            }
            .to_string());
        }
        if &bundle.dataset() != dataset {
            return Err(TrustError::WrongDataset {
                got: hex::encode(bundle.dataset()),
                want: hex::encode(dataset),
            }
            .to_string());
        }
        let now = access::now();
        trust::verify_chain(&bundle, dataset, now, &Revoked::default())
            .map_err(|e| e.to_string())?;
        let served = self
            .datasets
            .get(dataset)
            .ok_or("the dataset of this ticket is not served here")?;
        let (revoked, private) = {
            let st = served.state.lock().expect("not poisoned");
            if st.gone {
                return Err("the dataset of this ticket is not served here".into());
            }
            (st.revoked.clone(), st.private)
        };
        let cap =
            trust::authorize(&bundle, dataset, peer, now, &revoked).map_err(|e| e.to_string())?;
        if need.contains(Rights::WRITE) {
            cap.require(Rights::WRITE, "pushing (it has no write right)")
                .map_err(|e| e.to_string())?;
        } else if !cap.rights.contains(Rights::READ) && !cap.rights.contains(Rights::RELAY) {
            return Err(
                TrustError::Forbidden("fetching (it has neither read nor relay right)").to_string(),
            );
        } else if private && !cap.scope.is_empty() {
            // A serving peer of a restricted dataset sees only ciphertext: it cannot tell
            // which paths a ciphertext holds, so a path-scoped ticket gets nothing.
            return Err(TrustError::Forbidden(
                "reading a restricted dataset with a path-scoped ticket (paths are encrypted)",
            )
            .to_string());
        }
        Ok((served.clone(), Some(cap)))
    }

    /// Remembers what `peer` may fetch under `cap`, for the blob gatekeeper: everything the
    /// dataset publishes (a ticket with a path scope never reaches here for reading: public
    /// datasets need no ticket, and restricted ones refuse scoped tickets).
    fn admit(&self, served: &Served, peer: [u8; 32], cap: &Capability) {
        let hashes = served.state.lock().expect("not poisoned").hashes.clone();
        let mut auth = self.authorized.write().expect("not poisoned");
        let list = auth.entry(peer).or_default();
        list.retain(|a| a.dataset != served.dataset);
        list.push(Authz {
            dataset: served.dataset,
            expires: cap.expires,
            hashes,
        });
    }

    /// Drops every admission cached for `served`: the next request is decided again.
    fn forget_admissions(&self, served: &Served) {
        let mut auth = self.authorized.write().expect("not poisoned");
        for list in auth.values_mut() {
            list.retain(|a| a.dataset != served.dataset);
        }
    }

    fn rebuild_public(&self) {
        let mut set = HashSet::new();
        for served in self.datasets.values() {
            let st = served.state.lock().expect("not poisoned");
            if !st.private {
                set.extend(st.hashes.iter().copied());
            }
        }
        *self.public.write().expect("not poisoned") = set;
    }

    /// The gatekeeper's question: may `peer` fetch `hash`?
    fn may_serve(&self, peer: Option<[u8; 32]>, hash: &Hash) -> bool {
        if self.public.read().expect("not poisoned").contains(hash) {
            return true;
        }
        let Some(peer) = peer else { return false };
        let now = access::now();
        self.authorized
            .read()
            .expect("not poisoned")
            .get(&peer)
            .is_some_and(|list| {
                list.iter()
                    .any(|a| now < a.expires + trust::CLOCK_SKEW && a.hashes.contains(hash))
            })
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
        answer_requests(conn, proto::MAX_MESSAGE, |request, peer| async move {
            let response = match request {
                Ok(bytes) => self.handle(&bytes, peer).await,
                Err(e) => Response::Error(format!("request unreadable or too large: {e}")),
            };
            proto::encode(&response)
        })
        .await
    }
}

impl LodeProtocol {
    async fn handle(&self, bytes: &[u8], remote: iroh::EndpointId) -> Response {
        let peer = *remote.as_bytes();
        let req: std::result::Result<Request, String> = proto::decode(bytes);
        // Every request counts against the peer's bounds, a malformed one too.
        let class = match &req {
            Ok(Request::WaitHead { .. }) => Class::Poll,
            _ => Class::Work,
        };
        let _permit = match self.0.limiter.admit(peer, class).await {
            Ok(p) => p,
            Err(msg) => return Response::Error(msg),
        };
        let req = match req {
            Ok(r) => r,
            Err(e) => return Response::Error(format!("malformed request: {e}")),
        };
        match req {
            Request::ListRefs { dataset, ticket } => self.list(dataset, ticket, peer).await,
            Request::WaitHead {
                dataset,
                ticket,
                seq,
                wait,
            } => {
                let served =
                    match self
                        .0
                        .authorize(&dataset, ticket.as_deref(), &peer, Rights::RELAY)
                    {
                        Ok((served, _)) => served,
                        Err(msg) => return Response::Denied(msg),
                    };
                let mut rx = served.seq.subscribe();
                let wait = Duration::from_secs(wait.min(proto::MAX_WAIT));
                let _ = tokio::time::timeout(wait, rx.wait_for(|s| *s > seq)).await;
                self.list(dataset, ticket, peer).await
            }
            Request::Revoke {
                dataset,
                revocations,
            } => self.revoke(dataset, revocations).await,
            Request::Push {
                dataset,
                old,
                new,
                force,
                from,
                ticket,
                seq,
            } => {
                let (served, cap) =
                    match self
                        .0
                        .authorize(&dataset, ticket.as_deref(), &peer, Rights::WRITE)
                    {
                        Ok(ok) => ok,
                        Err(msg) => return Response::Denied(msg),
                    };
                let scope = cap.map(|c| c.scope).unwrap_or_default();
                // Opening the database may wait for another holder: not on a runtime worker.
                match tokio::task::block_in_place(|| access::can_sign(&served.repo)) {
                    Ok(true) => {}
                    Ok(false) => {
                        served.repo.release_db();
                        return Response::Rejected(
                            "this peer mirrors the dataset and cannot publish it: push to the dataset's owner".into(),
                        );
                    }
                    Err(e) => return Response::Error(format!("cannot read the dataset: {e}")),
                }
                served.repo.release_db();
                if from.id != peer {
                    return Response::Rejected("the pusher must provide the objects itself".into());
                }
                let push = PushRequest {
                    old,
                    new,
                    force,
                    from,
                    scope,
                    seq,
                };
                match self.receive_push(&served, push).await {
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

    async fn list(&self, dataset: [u8; 32], ticket: Option<Vec<u8>>, peer: [u8; 32]) -> Response {
        let check = || {
            self.0
                .authorize(&dataset, ticket.as_deref(), &peer, Rights::RELAY)
        };
        let served = match check() {
            Ok((served, _)) => served,
            Err(msg) => return Response::Denied(msg),
        };
        if let Err(e) = self.0.refresh(&served).await {
            // A dataset withdrawn meanwhile is refused like one never served.
            if let Err(msg) = check() {
                return Response::Denied(msg);
            }
            return Response::Error(format!("cannot read the dataset: {e}"));
        }
        // The refresh may have brought new revocations or made the dataset private: decide
        // again on the fresh state.
        let cap = match check() {
            Ok((_, cap)) => cap,
            Err(msg) => return Response::Denied(msg),
        };
        if let Some(cap) = &cap {
            self.0.admit(&served, peer, cap);
        }
        let st = served.state.lock().expect("not poisoned");
        match &st.head {
            None => Response::Error("this peer has no signed head for the dataset yet".into()),
            Some(h) => Response::Refs(Listing {
                head: h.encode(),
                revocations: st.revocations.iter().map(Revocation::encode).collect(),
            }),
        }
    }

    /// Stores revocations sent by a peer (`lode revoke` tells the peers that serve the
    /// dataset). Anyone may relay them, but each must be signed by the dataset's owner, and
    /// they are checked before anything about the dataset is looked up: a request without
    /// one (no revocations, or a bad one) gets the same answer whether the dataset is hosted
    /// here or not, and changes nothing. Only revocations not known yet are written, under
    /// the writer lock taken off the runtime with a bounded wait; cached admissions are
    /// dropped by the refresh that follows.
    async fn revoke(&self, dataset: [u8; 32], revocations: Vec<Vec<u8>>) -> Response {
        const NOT_SERVED: &str = "this peer does not serve that dataset";
        if revocations.is_empty() {
            return Response::Denied(
                "the request carries no revocation signed by the dataset owner".into(),
            );
        }
        if revocations.len() > trust::MAX_REVOCATIONS {
            return Response::Denied(format!(
                "too many revocations (at most {})",
                trust::MAX_REVOCATIONS
            ));
        }
        // Checking thousands of signatures takes a while: not on a runtime worker.
        let checked = tokio::task::spawn_blocking(move || {
            revocations
                .iter()
                .map(|b| Revocation::decode(b, &dataset))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await;
        let revs = match checked {
            Ok(Ok(revs)) => revs,
            Ok(Err(e)) => return Response::Denied(format!("bad revocation: {e}")),
            Err(e) => return Response::Error(format!("cannot check the revocations: {e}")),
        };
        let Some(served) = self.0.datasets.get(&dataset).cloned() else {
            return Response::Denied(NOT_SERVED.into());
        };
        let _one_at_a_time = served.revoke.lock().await;
        let unknown = |served: &Served| -> Vec<Revocation> {
            let st = served.state.lock().expect("not poisoned");
            let known: HashSet<[u8; 32]> = st.revocations.iter().map(Revocation::id).collect();
            revs.iter()
                .filter(|r| !known.contains(&r.id()))
                .cloned()
                .collect()
        };
        if served.state.lock().expect("not poisoned").gone {
            return Response::Denied(NOT_SERVED.into());
        }
        let mut new = unknown(&served);
        if !new.is_empty() {
            // The owner may have stored some meanwhile (`lode revoke` on this machine).
            if let Err(e) = self.0.refresh(&served).await {
                return Response::Error(format!("cannot read the dataset: {e}"));
            }
            new = unknown(&served);
        }
        if new.is_empty() {
            return Response::Revoked { new: 0 };
        }
        let count = new.len() as u64;
        let target = served.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let r = (|| -> Result<()> {
                let _lock =
                    crate::db::WriteLock::acquire(&target.repo.lock_path(), REVOKE_LOCK_WAIT)?;
                access::store_revocations(&target.repo, &new)
            })();
            target.repo.release_db();
            r
        })
        .await;
        match stored {
            Ok(Ok(())) => match self.0.refresh(&served).await {
                Ok(()) => Response::Revoked { new: count },
                Err(e) => Response::Error(format!("cannot read the dataset: {e}")),
            },
            Ok(Err(e @ Error::Locked { .. })) => Response::Error(format!(
                "cannot store the revocations now: {e}; send them again later"
            )),
            Ok(Err(e)) => Response::Error(format!("cannot store the revocations: {e}")),
            Err(e) => Response::Error(format!("cannot store the revocations: {e}")),
        }
    }

    /// Fetches a pushed commit's missing objects from the pusher into a quarantine, checks
    /// there that it changes only paths inside the writer's scope and that it is a
    /// fast-forward, then admits the objects and moves `main` (and the working tree) under
    /// the writer lock, and signs a new head. A refused push leaves nothing in the store: its
    /// quarantine is deleted (git's quarantine, since 2.11).
    async fn receive_push(&self, served: &Served, push: PushRequest) -> Result<(u64, u64)> {
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
                check_fast_forward(&quarantine, push.old, push.new, push.force)?;
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

/// The checks `update_main` makes before it moves anything, made on the quarantined view
/// (where the pushed commits are readable) so that a refused push never reaches the store.
fn check_fast_forward(
    repo: &Repo,
    expected: Option<ObjectId>,
    new: ObjectId,
    force: bool,
) -> Result<()> {
    if force {
        return Ok(());
    }
    let current = repo.main()?;
    let short = |c: Option<ObjectId>| c.map_or("nothing".to_string(), |c| c.short());
    if current != expected {
        return Err(Error::Stale {
            expected: short(expected),
            found: short(current),
        });
    }
    if let Some(cur) = current {
        if !crate::ops::history::is_ancestor(repo, &cur, &new)? {
            return Err(Error::NotFastForward {
                current: cur.short(),
                new: new.short(),
            });
        }
    }
    Ok(())
}

/// Checks that every commit a push brings (each one not already reachable from `main`)
/// differs from `main`'s tree only inside `scope`: a scoped writer cannot slip other paths
/// into history, not even in an intermediate commit.
fn check_push_scope(repo: &Repo, new: ObjectId, scope: &[String]) -> Result<()> {
    let main = repo.main()?;
    let known: HashSet<ObjectId> =
        closure(repo, &main.into_iter().collect::<Vec<_>>(), &HashSet::new())?
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
struct PushRequest {
    old: Option<ObjectId>,
    new: ObjectId,
    force: bool,
    from: crate::ticket::Provider,
    /// The writer's scope (empty: the whole dataset).
    scope: Vec<String>,
    seq: u64,
}

/// Answers the blob provider's intercepted events: each request is checked against `policy`
/// for the peer of its connection.
async fn gatekeeper(policy: Policy, mut rx: tokio::sync::mpsc::Receiver<ProviderMessage>) {
    let mut peers: HashMap<u64, [u8; 32]> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            ProviderMessage::ClientConnected(msg) => {
                if let Some(id) = msg.endpoint_id {
                    peers.insert(msg.connection_id, *id.as_bytes());
                }
                msg.tx.send(Ok(())).await.ok();
            }
            ProviderMessage::ConnectionClosed(msg) => {
                peers.remove(&msg.connection_id);
            }
            ProviderMessage::GetRequestReceived(msg) => {
                let peer = peers.get(&msg.connection_id).copied();
                let ok = msg.request.ranges.is_blob() && policy(peer, &msg.request.hash);
                let answer = if ok {
                    Ok(())
                } else {
                    Err(AbortReason::Permission)
                };
                msg.tx.send(answer).await.ok();
            }
            ProviderMessage::GetManyRequestReceived(msg) => {
                // Many whole blobs on one stream (small objects): each must be allowed.
                let peer = peers.get(&msg.connection_id).copied();
                let ok = msg.request.hashes.iter().all(|h| policy(peer, h));
                let answer = if ok {
                    Ok(())
                } else {
                    Err(AbortReason::Permission)
                };
                msg.tx.send(answer).await.ok();
            }
            ProviderMessage::ObserveRequestReceived(msg) => {
                let peer = peers.get(&msg.connection_id).copied();
                let answer = if policy(peer, &msg.request.hash) {
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

/// Optional settings of [`serve`].
#[derive(Default)]
pub struct ServeSetup {
    /// Where the blob store lives (default: `.lode/serve-store` of the first repository).
    pub store_dir: Option<std::path::PathBuf>,
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
fn serve_locks(repos: &[Repo]) -> Result<Vec<std::fs::File>> {
    use std::io::{Read, Seek, Write};
    let mut held = Vec::new();
    for r in repos {
        let path = r.root().join(".lode").join("serve.lock");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("cannot open lock file", &path, e))?;
        match f.try_lock() {
            Ok(()) => {
                let _ = f.set_len(0);
                let _ = f.rewind();
                let _ = write!(f, "{}", std::process::id());
                held.push(f);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = f.read_to_string(&mut pid);
                return Err(Error::AlreadyServed {
                    repo: r.root().to_path_buf(),
                    pid: pid.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock", &path, e));
            }
        }
    }
    Ok(held)
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
    let store_dir = setup
        .store_dir
        .unwrap_or_else(|| first.root().join(".lode").join("serve-store"));
    let store = FsStore::load(&store_dir).await.map_err(|e| {
        Error::Net(format!(
            "cannot open blob store {}: {e}",
            store_dir.display()
        ))
    })?;
    let key = first.device_key()?;
    let port_file = first.root().join(".lode").join("serve.port");
    let mut datasets = HashMap::new();
    let mut order = Vec::new();
    for repo in repos {
        let dataset = repo.dataset_id()?.to_bytes();
        order.push(dataset);
        let served = Served {
            repo,
            dataset,
            state: Mutex::new(ServedState::default()),
            push: tokio::sync::Mutex::new(()),
            seq: tokio::sync::watch::Sender::new(0),
            update: tokio::sync::Mutex::new(()),
            revoke: tokio::sync::Mutex::new(()),
        };
        datasets.insert(dataset, Arc::new(served));
    }
    let shared = Arc::new(Shared {
        datasets,
        public: RwLock::new(HashSet::new()),
        authorized: RwLock::new(HashMap::new()),
        store,
        net: OnceLock::new(),
        limiter: Limiter::new(Limits::LODE2),
    });
    for served in shared.datasets.values() {
        shared.refresh(served).await?;
    }
    let policy: Policy = {
        let shared = shared.clone();
        Arc::new(move |peer, hash| shared.may_serve(peer, hash))
    };
    let blobs = blobs_protocol(&shared.store, policy);
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
    let router = Router::builder(net.endpoint.clone())
        .accept(proto::ALPN, LodeProtocol(shared.clone()))
        .accept(iroh_blobs::ALPN, blobs)
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
    router
        .shutdown()
        .await
        .map_err(|e| Error::Net(format!("shutdown: {e}")))?;
    Ok(())
}
