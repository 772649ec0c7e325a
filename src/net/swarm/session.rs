//! A downloader's swarm session: while it fetches (and after, while others fetch from it) it
//! serves what it verified, from its own iroh-blobs store (`.lode/swarm-store`), to the other
//! peers of the same public dataset.
//!
//! Gatekeeping is `lode serve`'s: the same blob gatekeeper, raw blobs only, and only hashes
//! this downloader fetched because a head signed for the dataset reaches them. Restricted
//! datasets have no session (docs/SECURITY.md says why).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use iroh::protocol::Router;
use iroh::EndpointId;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::Hash;
use n0_future::task::AbortOnDropHandle;

use crate::error::{Error, Result};
use crate::net::endpoint::ShareOptions;
use crate::net::endpoint::{peer_name, Net};
use crate::net::serve::authz::{blobs_protocol_metered, Policy};
use crate::net::serve::blobs::{ObjectBlobs, Source};
use crate::progress::Progress;

use super::announce::PeerBook;
use super::membership::{self, Membership};
use super::meter::Meter;

/// Longest a downloader keeps seeding on its own accord (without `--seed`).
pub const MAX_LINGER: Duration = Duration::from_secs(600);
/// Without `--seed`, a downloader stops seeding once nobody fetched from it for this long.
pub const IDLE: Duration = Duration::from_secs(5);

/// A running swarm session (see the module documentation).
pub struct Session {
    pub(crate) store: FsStore,
    dir: PathBuf,
    pub(crate) book: Arc<PeerBook>,
    allowed: Arc<RwLock<HashSet<Hash>>>,
    pub(crate) meter: Arc<Meter>,
    /// Payload bytes received from each peer.
    pub(crate) received: Mutex<HashMap<[u8; 32], u64>>,
    /// Peers that sent data failing verification: never asked again in this session.
    pub(crate) banned: Mutex<HashSet<EndpointId>>,
    /// What the banned peers did, for the report.
    pub(crate) liars: Mutex<Vec<String>>,
    router: Option<Router>,
    /// Whole copies of files held in chunks that this session serves: removed when it ends
    /// (the repository keeps the chunks).
    whole_copies: Mutex<Vec<(crate::store::Store, crate::id::ObjectId)>>,
    _membership: Option<Membership>,
    _tracker: AbortOnDropHandle<()>,
}

/// Opens a session's gate to objects from threads other than the download's (see
/// [`Session::gate`]).
#[derive(Clone)]
pub struct Gate(Arc<RwLock<HashSet<Hash>>>);

impl Gate {
    /// Lets other peers fetch `hashes` (objects a verified head reaches, now held).
    pub fn allow(&self, hashes: impl IntoIterator<Item = Hash>) {
        self.0.write().expect("not poisoned").extend(hashes);
    }
}

/// What a session did: bytes to and from each peer (short endpoint ids), and the peers
/// dropped for sending bad data.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SwarmReport {
    pub received_from: BTreeMap<String, u64>,
    pub sent_to: BTreeMap<String, u64>,
    pub dropped: Vec<String>,
    /// How long it seeded after its own download.
    pub seeded_seconds: f64,
}

impl Session {
    /// Starts sharing on `net`'s endpoint (which must not have a router yet): a blob store in
    /// `dir`, the blob and gossip protocols, the topic of `dataset` (bootstrapped from
    /// `origins`), and polling of the origins' peer lists. With `share.serve` off, it only
    /// listens (no router, no announcement) and uses the swarm to download. With `objects`
    /// (a download into a repository), what the blob store lacks is served from the
    /// repository's object files: the small objects, which land there directly.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        net: &Net,
        key: &SigningKey,
        dataset: [u8; 32],
        origins: Vec<EndpointId>,
        ticket: Option<Vec<u8>>,
        dir: PathBuf,
        objects: Option<Source>,
        share: &ShareOptions,
    ) -> Result<Session> {
        let store = crate::net::transfer_store::open_store(&dir).await?;
        let book = Arc::new(PeerBook::new(dataset, *net.endpoint.id().as_bytes()));
        let allowed: Arc<RwLock<HashSet<Hash>>> = Arc::default();
        let meter = Arc::new(Meter::new(share.max_upload));
        let tracker = membership::poll_trackers(net, origins.clone(), ticket, book.clone());
        let (router, membership) = if share.serve {
            let gossip = membership::spawn_gossip(net);
            let policy: Policy = {
                let allowed = allowed.clone();
                Arc::new(move |_peer, hash| allowed.read().expect("not poisoned").contains(hash))
            };
            let blobs = match objects {
                Some(source) => {
                    let front = ObjectBlobs::spawn_over(vec![source], Some((*store).clone()));
                    blobs_protocol_metered(front.api(), policy, Some(meter.clone()))
                }
                None => blobs_protocol_metered(&store, policy, Some(meter.clone())),
            };
            let router = Router::builder(net.endpoint.clone())
                .accept(iroh_blobs::ALPN, blobs)
                .accept(iroh_gossip::ALPN, gossip.clone())
                .spawn();
            let m = membership::join(&gossip, net, key, book.clone(), origins, true).await;
            (Some(router), m.ok())
        } else {
            (None, None)
        };
        Ok(Session {
            store,
            dir,
            book,
            allowed,
            meter,
            received: Mutex::default(),
            banned: Mutex::default(),
            liars: Mutex::default(),
            router,
            whole_copies: Mutex::default(),
            _membership: membership,
            _tracker: tracker,
        })
    }

    /// Whether this session serves other peers.
    pub fn serves(&self) -> bool {
        self.router.is_some()
    }

    /// Lets other peers fetch `hash` (an object a verified head of the dataset reaches).
    pub fn allow(&self, hash: Hash) {
        self.allowed.write().expect("not poisoned").insert(hash);
    }

    /// A handle that lets other peers fetch objects, for the threads that land them.
    pub fn gate(&self) -> Gate {
        Gate(self.allowed.clone())
    }

    /// Counts `bytes` received from `peer`.
    pub(crate) fn count_received(&self, peer: &EndpointId, bytes: u64) {
        *self
            .received
            .lock()
            .expect("not poisoned")
            .entry(*peer.as_bytes())
            .or_default() += bytes;
    }

    /// Records that `peer` sent data failing verification and drops it for the session.
    pub(crate) fn ban(&self, peer: EndpointId, what: String) {
        self.banned.lock().expect("not poisoned").insert(peer);
        self.liars.lock().expect("not poisoned").push(what);
    }

    /// Removes the whole copy of file `id` from `store` when the session ends (it serves
    /// that copy until then; the store also holds the file in chunks).
    pub(crate) fn drop_whole_when_done(&self, store: crate::store::Store, id: crate::id::ObjectId) {
        self.whole_copies
            .lock()
            .expect("not poisoned")
            .push((store, id));
    }

    pub(crate) fn is_banned(&self, peer: &EndpointId) -> bool {
        self.banned.lock().expect("not poisoned").contains(peer)
    }

    /// After this downloader's own download: keeps serving for `seed` when given, else while
    /// others still fetch from it (until nobody did for [`IDLE`], at most [`MAX_LINGER`]);
    /// then stops and removes the session's store (objects it exported stay in the
    /// repository). Returns what moved.
    pub async fn finish(self, seed: Option<Duration>, progress: &dyn Progress) -> SwarmReport {
        let start = Instant::now();
        if self.serves() {
            let lingers = match seed {
                Some(d) => !d.is_zero(),
                None => self.meter.last_upload().is_some_and(|t| t.elapsed() < IDLE),
            };
            if lingers {
                progress.scan("seeding");
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let elapsed = start.elapsed();
                    let done = match seed {
                        Some(d) => elapsed >= d,
                        None => {
                            elapsed >= MAX_LINGER
                                || self.meter.last_upload().is_none_or(|t| t.elapsed() >= IDLE)
                        }
                    };
                    if done {
                        break;
                    }
                }
            }
        }
        let seeded_seconds = start.elapsed().as_secs_f64();
        let name = |m: HashMap<[u8; 32], u64>| {
            m.into_iter()
                .map(|(k, v)| (peer_name(&k), v))
                .collect::<BTreeMap<_, _>>()
        };
        let report = SwarmReport {
            received_from: name(self.received.lock().expect("not poisoned").clone()),
            sent_to: name(self.meter.sent()),
            dropped: self.liars.lock().expect("not poisoned").clone(),
            seeded_seconds,
        };
        if let Some(router) = self.router {
            let _ = router.shutdown().await;
        }
        let _ = self.store.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        for (store, id) in self.whole_copies.into_inner().expect("not poisoned") {
            if store.chunk_map_of(&id, u64::MAX).is_ok_and(|m| m.is_some()) {
                let _ = store.remove(&id);
            }
        }
        report
    }
}

/// Says what a failed swarm download lacked.
pub(crate) fn no_source(missing: usize, of: usize) -> Error {
    Error::NoProvider(format!(
        "{missing} of {of} pieces could not be fetched: no provider or swarm peer that answers \
         holds them"
    ))
}
