//! Registries: `lode registry serve`, `lode publish`, `lode search`, `lode clone NAME`,
//! `lode registry taint|notices`.
//!
//! A registry keeps a set of dataset entries (each signed by its dataset's key, see
//! `catalog`) and a public list of taint notices (each signed by a registry key), in a
//! directory of small files written atomically (`DIR/entries/ID`, `DIR/notices/ID`,
//! `DIR/peers`, and its key `DIR/registry.key`, which is also its endpoint key).
//!
//! Replication: registries that know each other (`--peer`, and every registry that syncs
//! with one becomes its peer) forward each new entry or notice to their peers at once, and
//! every `--sync` seconds ask each peer for what they lack (anti-entropy): a registry that
//! was down catches up on restart, and one going down loses nothing that reached another.
//! Because entries are signed by their owners and notices by their registries, a registry
//! cannot forge either; it can only withhold them, which asking several registries defeats.
//!
//! Crowding: a search ranks what matches (the exact name first, then a word of the name or
//! title, then part of them, then the other fields; among equals, publishers with fewer
//! entries first), and a registry holds at most `--max-per-publisher` entries of one
//! publisher and `--max-per-peer` entries brought by one peer (a peer registry, or the
//! endpoint that published them). A **curated** registry (`--curated`) lists only publishers
//! its operator approved (`lode registry approve`, an approval signed by the registry key);
//! approvals replicate like notices, and a replica honours the approvals of the registries
//! named by `--curated-by`.
//!
//! Names: a registry refuses to list a name another dataset already holds there (first come);
//! replication may still bring two datasets under one name from two registries, and then
//! `clone NAME` refuses to choose and lists both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use serde::{Deserialize, Serialize};

use crate::catalog::{self, Approval, Entry, EntryBody, Notice, Tainted};
use crate::error::{Error, Result};
use crate::keys::Home;
use crate::net::endpoint::{answer_requests, bind, exchange, peer_name, Net, NetOptions};
use crate::net::proto::{decode, encode};
use crate::repo::Repo;
use crate::ticket::{Provider, RegistryTicket, Ticket};

/// ALPN of the registry protocol.
pub const ALPN: &[u8] = b"lode-registry/2";
/// Largest request or answer.
const MAX_MESSAGE: usize = 8 << 20;
/// Most entries and notices a registry holds.
const MAX_ENTRIES: usize = 50_000;
const MAX_NOTICES: usize = 10_000;
const MAX_NOTICES_PER_PEER: usize = 1_000;
/// Most approvals a registry holds, and from one peer registry.
const MAX_APPROVALS: usize = 50_000;
const MAX_APPROVALS_PER_PEER: usize = 10_000;
/// Default most entries of one publisher, and brought by one peer.
pub const DEFAULT_PER_PUBLISHER: usize = 1_000;
pub const DEFAULT_PER_PEER: usize = 20_000;
/// Most peers a registry keeps.
const MAX_PEERS: usize = 64;
/// Most entries one search answers with.
const MAX_RESULTS: usize = 200;
/// How long one request may take.
const WAIT: Duration = Duration::from_secs(20);

/// What a client or a peer registry asks.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Lists (or re-lists) a dataset: an owner-signed entry.
    Publish { entry: Vec<u8> },
    /// Entries whose name, title, description or keywords contain `term`.
    Search { term: String },
    /// Entries named exactly `name`.
    Lookup { name: String },
    /// Every notice this registry holds (its own and its peers').
    Notices,
    /// A notice from this registry's operator (signed by the registry key).
    Notice { notice: Vec<u8> },
    /// Entries, notices and approvals a peer registry forwards.
    Offer {
        entries: Vec<Vec<u8>>,
        notices: Vec<Vec<u8>>,
        approvals: Vec<Vec<u8>>,
    },
    /// Anti-entropy: what the asking registry holds (entry ids with sequence numbers,
    /// notice ids, approval ids) and how to reach it; the answer is what it lacks.
    Sync {
        from: Provider,
        have: Vec<([u8; 32], u64, [u8; 32])>,
        notices: Vec<[u8; 32]>,
        approvals: Vec<[u8; 32]>,
    },
    /// A publisher approval from this registry's operator (signed by the registry key).
    Approve { approval: Vec<u8> },
    /// Every approval this registry holds (its own and its peers').
    Approvals,
}

/// What a registry answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The entry is stored; `new` is false when the registry already had it (or newer).
    Published {
        new: bool,
    },
    Entries(Vec<Vec<u8>>),
    Notices(Vec<Vec<u8>>),
    /// A peer's offer: how many of its items were new here.
    Offered {
        new: u64,
    },
    Sync {
        entries: Vec<Vec<u8>>,
        notices: Vec<Vec<u8>>,
        approvals: Vec<Vec<u8>>,
        peers: Vec<Provider>,
    },
    Approvals(Vec<Vec<u8>>),
    Error(String),
}

/// The registry directory of this user (`$LODE_HOME/registry`) unless `--dir` says otherwise.
pub fn default_dir(home: &Home) -> PathBuf {
    home.dir().join("registry")
}

/// What a registry lists, and how much of one publisher or peer.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Only publishers approved by `curators` are listed.
    pub curated: bool,
    /// Other registries (keys) whose approvals this one honours besides its own.
    pub curators: Vec<[u8; 32]>,
    /// Most entries of one publisher.
    pub per_publisher: usize,
    /// Most entries one peer brings (a peer registry, or the endpoint that published them).
    pub per_peer: usize,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            curated: false,
            curators: vec![],
            per_publisher: DEFAULT_PER_PUBLISHER,
            per_peer: DEFAULT_PER_PEER,
        }
    }
}

/// A registry's state: its key, entries, notices, approvals and peers, kept in memory and
/// written through to its directory.
pub struct Registry {
    dir: PathBuf,
    key: SigningKey,
    policy: Policy,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<[u8; 32], Entry>,
    /// Who brought each entry (dataset id → peer endpoint id).
    origin: BTreeMap<[u8; 32], [u8; 32]>,
    /// How many held entries each publisher has, and each peer brought.
    by_publisher: HashMap<[u8; 32], usize>,
    by_origin: HashMap<[u8; 32], usize>,
    notices: BTreeMap<[u8; 32], Notice>,
    /// The newest approval per (registry, publisher).
    approvals: BTreeMap<([u8; 32], [u8; 32]), Approval>,
    peers: Vec<Provider>,
    /// Registries a peer named: they become peers once a sync with them succeeds.
    candidates: Vec<Provider>,
}

/// Writes `bytes` to `path` through a temp file, fsync and rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().expect("registry files have a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot write", path, e)
    })
}

/// Reads a file of registry tickets, one per line (missing file: none; bad lines skipped).
pub(crate) fn read_tickets(path: &Path) -> Vec<RegistryTicket> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// Writes a file of registry tickets, one per line, atomically.
pub(crate) fn write_tickets(path: &Path, tickets: &[RegistryTicket]) -> Result<()> {
    let text: String = tickets.iter().map(|t| format!("{t}\n")).collect();
    write_atomic(path, text.as_bytes())
}

fn read_dir_files(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("cannot read", dir, e)),
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "tmp") {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(|e| Error::io("cannot read", &p, e))?;
        out.push((p, bytes));
    }
    Ok(out)
}

/// Loads the registry key of `dir`, creating it (and the directory) when missing.
pub fn registry_key(dir: &Path) -> Result<SigningKey> {
    Home::new(dir).device_key_at("registry.key")
}

impl Registry {
    /// Opens (or creates) the registry in `dir`. A damaged file is an error that names it.
    pub fn open(dir: &Path, policy: Policy) -> Result<Registry> {
        let key = registry_key(dir)?;
        let mut st = State::default();
        let damaged = |p: &Path, e: String| {
            Error::Other(format!(
                "registry file {} is damaged ({e}); delete it: peers send it again",
                p.display()
            ))
        };
        for (p, bytes) in read_dir_files(&dir.join("entries"))? {
            let e = Entry::decode(&bytes).map_err(|e| damaged(&p, e.to_string()))?;
            st.entries.insert(e.body.dataset, e);
        }
        for (p, bytes) in read_dir_files(&dir.join("notices"))? {
            let n = Notice::decode(&bytes).map_err(|e| damaged(&p, e.to_string()))?;
            st.notices.insert(n.id(), n);
        }
        for (p, bytes) in read_dir_files(&dir.join("approvals"))? {
            let a = Approval::decode(&bytes).map_err(|e| damaged(&p, e.to_string()))?;
            st.approvals.insert((a.body.registry, a.body.publisher), a);
        }
        // Provenance only counts entries against a peer's bound: an unreadable record counts
        // for nobody.
        for (p, bytes) in read_dir_files(&dir.join("origin"))? {
            let dataset = p.file_name().and_then(|n| n.to_str()).and_then(|n| {
                let mut d = [0u8; 32];
                hex::decode_to_slice(n, &mut d).ok().map(|_| d)
            });
            if let (Some(d), Ok(from)) = (dataset, <[u8; 32]>::try_from(bytes.as_slice())) {
                if st.entries.contains_key(&d) {
                    st.origin.insert(d, from);
                }
            }
        }
        let mut by_publisher: HashMap<[u8; 32], usize> = HashMap::new();
        for e in st.entries.values() {
            *by_publisher.entry(e.body.publisher).or_default() += 1;
        }
        let mut by_origin: HashMap<[u8; 32], usize> = HashMap::new();
        for from in st.origin.values() {
            *by_origin.entry(*from).or_default() += 1;
        }
        st.by_publisher = by_publisher;
        st.by_origin = by_origin;
        let peers = dir.join("peers");
        match std::fs::read_to_string(&peers) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let t: RegistryTicket = line
                        .parse()
                        .map_err(|e: crate::ticket::TicketError| damaged(&peers, e.to_string()))?;
                    st.peers.extend(t.0.providers);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot read", &peers, e)),
        }
        Ok(Registry {
            dir: dir.to_path_buf(),
            key,
            policy,
            state: Mutex::new(st),
        })
    }

    /// The registry's public key.
    pub fn id(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    /// The notice of this registry that taints `dataset`, if any.
    fn taint_of(st: &State, me: &[u8; 32], dataset: &[u8; 32]) -> Option<Notice> {
        st.notices
            .values()
            .find(|n| &n.body.registry == me && n.body.target == Tainted::Dataset(*dataset))
            .cloned()
    }

    /// Whether this registry lists `publisher`'s entries: always when open; when curated,
    /// while the newest approval of this registry or a registry it names approves it.
    fn listed(&self, st: &State, publisher: &[u8; 32]) -> bool {
        !self.policy.curated
            || std::iter::once(self.id())
                .chain(self.policy.curators.iter().copied())
                .any(|c| {
                    st.approvals
                        .get(&(c, *publisher))
                        .is_some_and(|a| a.body.approved)
                })
    }

    /// Stores an entry that peer `from` brought. `first_come`: refuse a name another
    /// (untainted) dataset holds here. Returns whether it was new.
    fn accept_entry(
        &self,
        bytes: &[u8],
        first_come: bool,
        from: [u8; 32],
    ) -> std::result::Result<bool, String> {
        let e = Entry::decode(bytes).map_err(|e| e.to_string())?;
        let me = self.id();
        let mut st = self.lock();
        if let Some(n) = Self::taint_of(&st, &me, &e.body.dataset) {
            return Err(format!(
                "dataset {} is tainted at this registry: {}",
                hex::encode(e.body.dataset),
                n.body.reason
            ));
        }
        if !self.listed(&st, &e.body.publisher) {
            return Err(format!(
                "this registry is curated and its operator has not approved publisher {}; \
                 ask them to run `lode registry approve {}` (your id: `lode id`)",
                hex::encode(e.body.publisher),
                hex::encode(e.body.publisher)
            ));
        }
        if first_come {
            if let Some(other) = st.entries.values().find(|o| {
                o.body.name == e.body.name
                    && o.body.dataset != e.body.dataset
                    && Self::taint_of(&st, &me, &o.body.dataset).is_none()
            }) {
                return Err(format!(
                    "the name {:?} is taken by dataset {} at this registry",
                    e.body.name,
                    hex::encode(other.body.dataset)
                ));
            }
        }
        if let Some(old) = st.entries.get(&e.body.dataset) {
            if !e.supersedes(old) {
                return Ok(false);
            }
        } else if st.entries.len() >= MAX_ENTRIES {
            return Err("this registry is full".into());
        }
        // Bounds: a re-listing of the same dataset does not count twice.
        let old_publisher = st.entries.get(&e.body.dataset).map(|o| o.body.publisher);
        let old_origin = st.origin.get(&e.body.dataset).copied();
        let count = |m: &HashMap<[u8; 32], usize>, k: &[u8; 32], old: Option<[u8; 32]>| {
            (m.get(k).copied().unwrap_or(0)).saturating_sub(usize::from(old.as_ref() == Some(k)))
        };
        let by_publisher = count(&st.by_publisher, &e.body.publisher, old_publisher);
        if by_publisher >= self.policy.per_publisher {
            return Err(format!(
                "publisher {} already lists {by_publisher} datasets at this registry, its limit \
                 per publisher (the operator sets it with --max-per-publisher)",
                hex::encode(e.body.publisher)
            ));
        }
        let by_peer = count(&st.by_origin, &from, old_origin);
        if by_peer >= self.policy.per_peer {
            return Err(format!(
                "peer {} already brought {by_peer} entries to this registry, its limit per peer \
                 (the operator sets it with --max-per-peer)",
                hex::encode(from)
            ));
        }
        let name = hex::encode(e.body.dataset);
        write_atomic(&self.dir.join("entries").join(&name), bytes).map_err(|e| e.to_string())?;
        let _ = write_atomic(&self.dir.join("origin").join(&name), &from);
        let st = &mut *st;
        for (m, old, new) in [
            (&mut st.by_publisher, old_publisher, e.body.publisher),
            (&mut st.by_origin, old_origin, from),
        ] {
            if let Some(n) = old.and_then(|o| m.get_mut(&o)) {
                *n -= 1;
            }
            *m.entry(new).or_default() += 1;
        }
        st.origin.insert(e.body.dataset, from);
        st.entries.insert(e.body.dataset, e);
        Ok(true)
    }

    /// Stores an approval signed by this registry, one of its peers or a registry whose
    /// approvals it honours (the newest per registry and publisher). Returns whether it was
    /// new.
    fn accept_approval(&self, bytes: &[u8]) -> std::result::Result<bool, String> {
        let a = Approval::decode(bytes).map_err(|e| e.to_string())?;
        let mut st = self.lock();
        let signer = a.body.registry;
        // A registry named by --curated-by counts even when its approvals come through
        // another peer.
        if signer != self.id()
            && !st.peers.iter().any(|p| p.id == signer)
            && !self.policy.curators.contains(&signer)
        {
            return Err(format!(
                "approval {} is signed by {}, which is neither this registry nor one of its peers",
                hex::encode(&a.id()[..8]),
                hex::encode(signer)
            ));
        }
        let slot = (signer, a.body.publisher);
        match st.approvals.get(&slot) {
            Some(old) if !a.supersedes(old) => return Ok(false),
            Some(_) => {}
            None => {
                // Its own operator's are always taken; a peer's, up to a quota each.
                let from_signer = st.approvals.keys().filter(|(r, _)| *r == signer).count();
                if signer != self.id()
                    && (st.approvals.len() >= MAX_APPROVALS
                        || from_signer >= MAX_APPROVALS_PER_PEER)
                {
                    return Err("this registry holds too many approvals from that peer".into());
                }
            }
        }
        let file = format!("{}-{}", hex::encode(signer), hex::encode(a.body.publisher));
        write_atomic(&self.dir.join("approvals").join(file), bytes).map_err(|e| e.to_string())?;
        st.approvals.insert(slot, a);
        Ok(true)
    }

    /// Stores a notice signed by this registry or one of its peers. Returns whether it was
    /// new.
    fn accept_notice(&self, bytes: &[u8]) -> std::result::Result<bool, String> {
        let n = Notice::decode(bytes).map_err(|e| e.to_string())?;
        let mut st = self.lock();
        if n.body.registry != self.id() && !st.peers.iter().any(|p| p.id == n.body.registry) {
            return Err(format!(
                "notice {} is signed by {}, which is neither this registry nor one of its peers",
                hex::encode(&n.id()[..8]),
                hex::encode(n.body.registry)
            ));
        }
        if st.notices.contains_key(&n.id()) {
            return Ok(false);
        }
        // Its own operator's notices are always taken; a peer's, up to a quota each, so that
        // no peer can crowd the list out.
        if n.body.registry != self.id() {
            let from_signer = (st.notices.values())
                .filter(|o| o.body.registry == n.body.registry)
                .count();
            if st.notices.len() >= MAX_NOTICES || from_signer >= MAX_NOTICES_PER_PEER {
                return Err("this registry holds too many notices from that peer".into());
            }
        }
        write_atomic(&self.dir.join("notices").join(hex::encode(n.id())), bytes)
            .map_err(|e| e.to_string())?;
        st.notices.insert(n.id(), n);
        Ok(true)
    }

    /// Adds a peer registry (not itself); returns whether it was new.
    fn add_peer(&self, p: &Provider) -> bool {
        if p.id == self.id() {
            return false;
        }
        let mut st = self.lock();
        if let Some(old) = st.peers.iter_mut().find(|q| q.id == p.id) {
            *old = p.clone();
            return false;
        }
        if st.peers.len() >= MAX_PEERS {
            return false;
        }
        st.peers.push(p.clone());
        let tickets: Vec<RegistryTicket> = (st.peers.iter())
            .map(|p| {
                RegistryTicket(Ticket {
                    dataset: p.id,
                    providers: vec![p.clone()],
                })
            })
            .collect();
        let _ = write_tickets(&self.dir.join("peers"), &tickets);
        true
    }

    fn peers(&self) -> Vec<Provider> {
        self.lock().peers.clone()
    }

    /// Remembers a registry a peer named, to try at the next sync round.
    fn add_candidate(&self, p: &Provider) {
        let me = self.id();
        let mut st = self.lock();
        if p.id == me || st.peers.iter().any(|q| q.id == p.id) {
            return;
        }
        st.candidates.retain(|q| q.id != p.id);
        st.candidates.push(p.clone());
        let excess = st.candidates.len().saturating_sub(MAX_PEERS);
        st.candidates.drain(..excess);
    }

    /// Peers, then candidates (taken out: a candidate that answers becomes a peer).
    fn to_sync(&self) -> Vec<(Provider, bool)> {
        let mut st = self.lock();
        let mut out: Vec<(Provider, bool)> = st.peers.iter().map(|p| (p.clone(), true)).collect();
        out.extend(st.candidates.drain(..).map(|p| (p, false)));
        out
    }

    /// Entries visible here (not tainted by this registry, of a listed publisher) that
    /// `rank` ranks, best first: by rank, then publishers with fewer entries here (so that
    /// no one crowds the others out), then name and dataset id; at most `MAX_RESULTS`.
    fn select(&self, rank: impl Fn(&EntryBody) -> Option<u8>) -> Vec<Vec<u8>> {
        let me = self.id();
        let st = self.lock();
        let mut found: Vec<(u8, &Entry)> = (st.entries.values())
            .filter_map(|e| rank(&e.body).map(|r| (r, e)))
            .filter(|(_, e)| {
                self.listed(&st, &e.body.publisher)
                    && Self::taint_of(&st, &me, &e.body.dataset).is_none()
            })
            .collect();
        let per_publisher = |p: &[u8; 32]| st.by_publisher.get(p).copied().unwrap_or(0);
        found.sort_by_key(|(r, e)| {
            (
                *r,
                per_publisher(&e.body.publisher),
                &e.body.name,
                e.body.dataset,
            )
        });
        found
            .into_iter()
            .take(MAX_RESULTS)
            .map(|(_, e)| e.encode())
            .collect()
    }

    fn digest(&self) -> Digest {
        let st = self.lock();
        (
            st.entries
                .values()
                .map(|e| (e.body.dataset, e.body.seq, e.id()))
                .collect(),
            st.notices.keys().copied().collect(),
            st.approvals.values().map(Approval::id).collect(),
        )
    }

    /// What a peer lacks, given its digest (bounded by the message size): entries, notices
    /// and approvals.
    fn missing(
        &self,
        have: &[([u8; 32], u64, [u8; 32])],
        notices: &[[u8; 32]],
        approvals: &[[u8; 32]],
    ) -> Items {
        let have: BTreeMap<[u8; 32], (u64, [u8; 32])> =
            have.iter().map(|(d, s, id)| (*d, (*s, *id))).collect();
        let known: HashSet<[u8; 32]> = notices.iter().copied().collect();
        let known_approvals: HashSet<[u8; 32]> = approvals.iter().copied().collect();
        let st = self.lock();
        let mut budget = MAX_MESSAGE - 64 * 1024;
        let mut take = |b: Vec<u8>| {
            (b.len() + 16 <= budget).then(|| {
                budget -= b.len() + 16;
                b
            })
        };
        let notices = st
            .notices
            .iter()
            .filter(|(id, _)| !known.contains(*id))
            .map_while(|(_, n)| take(n.encode()))
            .collect();
        // Approvals before entries: a curated peer needs them to take the entries.
        let approvals = (st.approvals.values())
            .filter(|a| !known_approvals.contains(&a.id()))
            .map_while(|a| take(a.encode()))
            .collect();
        let entries = st
            .entries
            .values()
            // Sent when the peer lacks it or holds one this entry supersedes (the same
            // order as `Entry::supersedes`: higher seq, then smaller id).
            .filter(|e| {
                have.get(&e.body.dataset).is_none_or(|(seq, id)| {
                    (e.body.seq, std::cmp::Reverse(e.id())) > (*seq, std::cmp::Reverse(*id))
                })
            })
            .map_while(|e| take(e.encode()))
            .collect();
        Items {
            entries,
            notices,
            approvals,
        }
    }
}

/// What a registry holds, in short: (dataset id, entry seq, entry id), notice ids and
/// approval ids.
type Digest = (Vec<([u8; 32], u64, [u8; 32])>, Vec<[u8; 32]>, Vec<[u8; 32]>);

/// Signed items registries replicate.
#[derive(Default)]
struct Items {
    entries: Vec<Vec<u8>>,
    notices: Vec<Vec<u8>>,
    approvals: Vec<Vec<u8>>,
}

impl Items {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.notices.is_empty() && self.approvals.is_empty()
    }
    fn len(&self) -> usize {
        self.entries.len() + self.notices.len() + self.approvals.len()
    }
}

/// A running registry: its state and endpoint.
struct Node {
    reg: Registry,
    net: Net,
}

impl Node {
    fn provider(&self) -> Provider {
        self.net.provider()
    }

    /// Forwards new items to every peer but `except`, in the background, best effort (the
    /// periodic sync repairs what is lost).
    fn forward(self: &Arc<Self>, items: Items, except: [u8; 32]) {
        if items.is_empty() {
            return;
        }
        let req = encode(&Request::Offer {
            entries: items.entries,
            notices: items.notices,
            approvals: items.approvals,
        });
        for p in self.reg.peers() {
            if p.id == except {
                continue;
            }
            let node = self.clone();
            let req = req.clone();
            tokio::spawn(async move {
                if let Ok(id) = node.net.learn(&p) {
                    let _ = exchange(&node.net, id, ALPN, &req, MAX_MESSAGE, WAIT).await;
                }
            });
        }
    }

    /// Merges what peer `from` offered or answered; returns the new items.
    fn merge(&self, items: Items, from: [u8; 32]) -> Items {
        // Notices first: a notice may taint a dataset whose entry comes with it; approvals
        // next: a curated registry takes an approved publisher's entries.
        let notices = (items.notices.into_iter())
            .filter(|n| self.reg.accept_notice(n) == Ok(true))
            .collect();
        let approvals = (items.approvals.into_iter())
            .filter(|a| self.reg.accept_approval(a) == Ok(true))
            .collect();
        let entries = (items.entries.into_iter())
            .filter(|e| self.reg.accept_entry(e, false, from) == Ok(true))
            .collect();
        Items {
            entries,
            notices,
            approvals,
        }
    }

    /// One anti-entropy round with every peer (and candidate), all at once: a peer that is
    /// down costs its connection timeout without delaying the others.
    async fn sync_round(self: &Arc<Self>) {
        let (have, notices, approvals) = self.reg.digest();
        let req = encode(&Request::Sync {
            from: self.provider(),
            have,
            notices,
            approvals,
        });
        let asks = self.reg.to_sync().into_iter().map(|(p, known)| {
            let req = &req;
            async move {
                let id = self.net.learn(&p).ok()?;
                let bytes = exchange(&self.net, id, ALPN, req, MAX_MESSAGE, WAIT)
                    .await
                    .ok()?;
                Some((p, known, decode::<Response>(&bytes).ok()?))
            }
        });
        for (p, known, answer) in n0_future::join_all(asks).await.into_iter().flatten() {
            let Response::Sync {
                entries,
                notices,
                approvals,
                peers,
            } = answer
            else {
                continue;
            };
            if !known {
                self.reg.add_peer(&p);
            }
            for q in peers {
                self.reg.add_candidate(&q);
            }
            let items = Items {
                entries,
                notices,
                approvals,
            };
            let new = tokio::task::block_in_place(|| self.merge(items, p.id));
            self.forward(new, p.id);
        }
    }

    /// Checks that an operator's signed item is signed by this registry's key.
    fn operator_signed(&self, signer: [u8; 32], what: &str) -> std::result::Result<(), String> {
        if signer == self.reg.id() {
            return Ok(());
        }
        Err(format!(
            "the {what} is signed by {}, not by this registry ({}): only its operator can {what}",
            hex::encode(signer),
            hex::encode(self.reg.id())
        ))
    }

    fn handle(self: &Arc<Self>, bytes: &[u8], peer: [u8; 32]) -> Response {
        let req: Request = match decode(bytes) {
            Ok(r) => r,
            Err(e) => return Response::Error(format!("malformed request: {e}")),
        };
        match req {
            Request::Publish { entry } => match self.reg.accept_entry(&entry, true, peer) {
                Ok(new) => {
                    if new {
                        let items = Items {
                            entries: vec![entry],
                            ..Items::default()
                        };
                        self.forward(items, peer);
                    }
                    Response::Published { new }
                }
                Err(e) => Response::Error(e),
            },
            Request::Search { term } => Response::Entries(self.reg.select(|b| b.rank(&term))),
            Request::Lookup { name } => {
                Response::Entries(self.reg.select(|b| (b.name == name).then_some(0)))
            }
            Request::Notices => Response::Notices(
                self.reg
                    .lock()
                    .notices
                    .values()
                    .map(Notice::encode)
                    .collect(),
            ),
            Request::Approvals => Response::Approvals(
                (self.reg.lock().approvals.values())
                    .map(Approval::encode)
                    .collect(),
            ),
            Request::Notice { notice } => {
                match Notice::decode(&notice) {
                    Ok(n) => {
                        if let Err(e) = self.operator_signed(n.body.registry, "taint") {
                            return Response::Error(e);
                        }
                    }
                    Err(e) => return Response::Error(e.to_string()),
                }
                match self.reg.accept_notice(&notice) {
                    Ok(new) => {
                        if new {
                            let items = Items {
                                notices: vec![notice],
                                ..Items::default()
                            };
                            self.forward(items, peer);
                        }
                        Response::Published { new }
                    }
                    Err(e) => Response::Error(e),
                }
            }
            Request::Approve { approval } => {
                match Approval::decode(&approval) {
                    Ok(a) => {
                        if let Err(e) = self.operator_signed(a.body.registry, "approve") {
                            return Response::Error(e);
                        }
                    }
                    Err(e) => return Response::Error(e.to_string()),
                }
                match self.reg.accept_approval(&approval) {
                    Ok(new) => {
                        if new {
                            let items = Items {
                                approvals: vec![approval],
                                ..Items::default()
                            };
                            self.forward(items, peer);
                        }
                        Response::Published { new }
                    }
                    Err(e) => Response::Error(e),
                }
            }
            Request::Offer {
                entries,
                notices,
                approvals,
            } => {
                if !self.reg.peers().iter().any(|p| p.id == peer) {
                    return Response::Error(
                        "offers are taken from peer registries only (they sync first)".into(),
                    );
                }
                let items = Items {
                    entries,
                    notices,
                    approvals,
                };
                let new = self.merge(items, peer);
                let count = new.len() as u64;
                self.forward(new, peer);
                Response::Offered { new: count }
            }
            Request::Sync {
                from,
                have,
                notices,
                approvals,
            } => {
                if from.id != peer {
                    return Response::Error("a registry syncs under its own id".into());
                }
                self.reg.add_peer(&from);
                let items = self.reg.missing(&have, &notices, &approvals);
                let peers = self
                    .reg
                    .peers()
                    .into_iter()
                    .filter(|p| p.id != peer)
                    .collect();
                Response::Sync {
                    entries: items.entries,
                    notices: items.notices,
                    approvals: items.approvals,
                    peers,
                }
            }
        }
    }
}

#[derive(Clone)]
struct RegistryProtocol(Arc<Node>, Arc<crate::net::limit::Limiter>);

impl std::fmt::Debug for RegistryProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistryProtocol")
    }
}

impl ProtocolHandler for RegistryProtocol {
    async fn accept(&self, conn: Connection) -> std::result::Result<(), AcceptError> {
        answer_requests(conn, MAX_MESSAGE, |request, peer| async move {
            // Every request counts against the peer's bounds, as on `lode/2`.
            let _permit = match self
                .1
                .admit(*peer.as_bytes(), crate::net::limit::Class::Work)
                .await
            {
                Ok(p) => p,
                Err(msg) => return encode(&Response::Error(msg)),
            };
            let response = match request {
                // Handling writes and fsyncs files: off the async workers' hot path.
                Ok(bytes) => {
                    tokio::task::block_in_place(|| self.0.handle(&bytes, *peer.as_bytes()))
                }
                Err(e) => Response::Error(format!("request unreadable or too large: {e}")),
            };
            encode(&response)
        })
        .await
    }
}

/// Runs the registry of `dir` until `shutdown`: answers publishes, searches and lookups,
/// replicates with `peers` (and every registry that syncs with it) every `sync` interval,
/// starting at once. `ready` receives its ticket as soon as it listens.
pub async fn serve(
    dir: &Path,
    peers: &[RegistryTicket],
    sync: Duration,
    policy: Policy,
    opts: &NetOptions,
    ready: impl FnOnce(&RegistryTicket),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let reg = Registry::open(dir, policy)?;
    for t in peers {
        for p in &t.0.providers {
            reg.add_peer(p);
        }
    }
    let net = bind(&reg.key, opts).await?;
    let node = Arc::new(Node { reg, net });
    let router = Router::builder(node.net.endpoint.clone())
        .accept(
            ALPN,
            RegistryProtocol(
                node.clone(),
                crate::net::limit::Limiter::new(crate::net::limit::Limits::REGISTRY),
            ),
        )
        .spawn();
    let ticket = RegistryTicket(Ticket {
        dataset: node.reg.id(),
        providers: vec![node.provider()],
    });
    let _ = std::fs::write(dir.join("registry.ticket"), format!("{ticket}\n"));
    ready(&ticket);
    let syncing = {
        let node = node.clone();
        tokio::spawn(async move {
            loop {
                node.sync_round().await;
                tokio::time::sleep(sync).await;
            }
        })
    };
    shutdown.await;
    syncing.abort();
    let _ = std::fs::remove_file(dir.join("registry.ticket"));
    router
        .shutdown()
        .await
        .map_err(|e| Error::Net(format!("shutdown: {e}")))?;
    Ok(())
}

/// Sends one request to a registry, trying its providers in turn.
async fn call(reg: &RegistryTicket, req: &Request, opts: &NetOptions) -> Result<Response> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let net = bind(&key, opts).await?;
    let r = call_on(&net, reg, req).await;
    net.endpoint.close().await;
    r
}

/// Sends one request to a registry from endpoint `net`, trying its providers in turn.
async fn call_on(net: &Net, reg: &RegistryTicket, req: &Request) -> Result<Response> {
    let bytes = encode(req);
    let mut last = None;
    for p in &reg.0.providers {
        let id = net.learn(p)?;
        match exchange(net, id, ALPN, &bytes, MAX_MESSAGE, WAIT).await {
            Ok(answer) => {
                let peer = peer_name(&p.id);
                return match decode::<Response>(&answer) {
                    Ok(Response::Error(msg)) => Err(Error::Peer {
                        peer: format!("registry {peer}"),
                        msg,
                    }),
                    Ok(r) => Ok(r),
                    Err(e) => Err(Error::LyingPeer {
                        peer: format!("registry {peer}"),
                        msg: format!("malformed answer: {e}"),
                    }),
                };
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Other("the registry ticket names no provider".into())))
}

fn unexpected(reg: &RegistryTicket) -> Error {
    Error::LyingPeer {
        peer: format!("registry {}", peer_name(&reg.key())),
        msg: "unexpected answer".into(),
    }
}

/// Decodes entries a registry sent, keeping only those their owners signed (a registry can
/// withhold entries but not forge them).
fn verified(entries: Vec<Vec<u8>>) -> Vec<Entry> {
    entries
        .iter()
        .filter_map(|b| Entry::decode(b).ok())
        .collect()
}

/// What `lode publish` registered.
#[derive(Debug, Serialize)]
pub struct Published {
    pub name: String,
    /// Whether the title, description, license and keywords were listed.
    pub metadata: bool,
    pub dataset: String,
    pub seq: u64,
    pub providers: usize,
    /// The publisher's device key (hex): the id a curated registry approves.
    pub publisher: String,
    /// False when the registry already had this entry.
    pub new: bool,
}

/// Lists `repo`'s dataset at `reg` under `name`, with the metadata of its `main` commit (for
/// a restricted dataset only with `with_metadata`) and the providers of its running
/// `lode serve` plus `extra` tickets of the same dataset. Only the dataset's owner (who holds
/// its key) can publish.
pub async fn publish(
    repo: &Repo,
    reg: &RegistryTicket,
    name: &str,
    extra: &[Ticket],
    with_metadata: bool,
    opts: &NetOptions,
) -> Result<Published> {
    if !catalog::valid_name(name) {
        return Err(Error::Other(format!(
            "invalid name {name:?}: use 1-63 characters of a-z 0-9 . _ -, starting with a letter or digit"
        )));
    }
    let dataset = repo.dataset_id()?;
    let key = repo.home().dataset_key(&dataset)?.ok_or_else(|| {
        Error::Other(format!(
            "only the owner of dataset {} (who holds its key) can publish it",
            hex::encode(dataset.to_bytes())
        ))
    })?;
    // A restricted dataset's metadata is encrypted like its files: it is listed only when
    // the owner says so.
    let private = crate::config::is_private(repo)?;
    let meta = match repo.main()? {
        Some(c) if with_metadata || !private => repo.read_commit(&c)?.body.metadata,
        _ => Default::default(),
    };
    let mut providers: Vec<Provider> = Vec::new();
    let served = crate::net::fetch::served_ticket(repo)?;
    repo.release_db();
    for t in served.iter().chain(extra) {
        if t.dataset != dataset.to_bytes() {
            return Err(Error::Other(
                "--provider takes tickets of this dataset".into(),
            ));
        }
        for p in &t.providers {
            if !providers.iter().any(|q| q.id == p.id) {
                providers.push(p.clone());
            }
        }
    }
    if providers.is_empty() {
        return Err(Error::Other(
            "no provider to list: run `lode serve` for this repository first, or give --provider TICKET".into(),
        ));
    }
    providers.truncate(catalog::MAX_PROVIDERS);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let publisher = repo.home().device_key()?;
    let body = EntryBody {
        version: catalog::ENTRY_VERSION,
        dataset: dataset.to_bytes(),
        seq: now.as_millis() as u64,
        name: name.to_string(),
        title: meta.title.unwrap_or_default(),
        description: meta.description.unwrap_or_default(),
        license: meta.license.unwrap_or_default(),
        keywords: meta.keywords,
        providers,
        time: now.as_secs(),
        publisher: [0; 32],
        publisher_sig: vec![],
    };
    let entry = Entry::sign(body, &key, &publisher)?;
    let new = match call(
        reg,
        &Request::Publish {
            entry: entry.encode(),
        },
        opts,
    )
    .await?
    {
        Response::Published { new } => new,
        _ => return Err(unexpected(reg)),
    };
    remember(repo.home(), reg);
    Ok(Published {
        name: name.to_string(),
        metadata: with_metadata || !private,
        dataset: hex::encode(dataset.to_bytes()),
        seq: entry.body.seq,
        providers: entry.body.providers.len(),
        publisher: hex::encode(entry.body.publisher),
        new,
    })
}

/// Sends entries already signed (by whatever keys) to `reg` over one endpoint, one request
/// each; returns each one's answer (`Ok(new)` or the registry's refusal). What a tool that
/// lists many datasets does, and what the crowding tests use as the attacker.
pub async fn publish_signed(
    reg: &RegistryTicket,
    entries: &[Entry],
    opts: &NetOptions,
) -> Result<Vec<Result<bool>>> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let net = bind(&key, opts).await?;
    let mut out = Vec::with_capacity(entries.len());
    // A few requests in flight at a time, answers in order.
    for batch in entries.chunks(8) {
        let asks = batch.iter().map(|e| {
            let net = &net;
            async move {
                let req = Request::Publish { entry: e.encode() };
                match call_on(net, reg, &req).await {
                    Ok(Response::Published { new }) => Ok(new),
                    Ok(_) => Err(unexpected(reg)),
                    Err(e) => Err(e),
                }
            }
        });
        out.extend(n0_future::join_all(asks).await);
    }
    net.endpoint.close().await;
    Ok(out)
}

/// Entries at `reg` matching `term` (verified), best match first (see [`EntryBody::rank`];
/// among equals, in the registry's order).
pub async fn search(reg: &RegistryTicket, term: &str, opts: &NetOptions) -> Result<Vec<Entry>> {
    match call(
        reg,
        &Request::Search {
            term: term.to_string(),
        },
        opts,
    )
    .await?
    {
        Response::Entries(e) => {
            let mut found: Vec<(u8, Entry)> = (verified(e).into_iter())
                .filter_map(|e| e.body.rank(term).map(|r| (r, e)))
                .collect();
            found.sort_by_key(|(r, _)| *r);
            Ok(found.into_iter().map(|(_, e)| e).collect())
        }
        _ => Err(unexpected(reg)),
    }
}

/// Resolves a dataset name at `reg` to a ticket of its listed providers. Two datasets under
/// one name are an error that lists both: lode never picks one for the user.
pub async fn resolve(reg: &RegistryTicket, name: &str, opts: &NetOptions) -> Result<Ticket> {
    let found = match call(
        reg,
        &Request::Lookup {
            name: name.to_string(),
        },
        opts,
    )
    .await?
    {
        Response::Entries(e) => verified(e),
        _ => return Err(unexpected(reg)),
    };
    let found: Vec<Entry> = found.into_iter().filter(|e| e.body.name == name).collect();
    match found.as_slice() {
        [] => Err(Error::Other(format!(
            "no dataset named {name:?} at registry {}",
            peer_name(&reg.key())
        ))),
        [e] => Ok(Ticket {
            dataset: e.body.dataset,
            providers: e.body.providers.clone(),
        }),
        many => Err(Error::Other(format!(
            "the name {name:?} is claimed by {} datasets: {}; clone one by its ticket or lode:// id",
            many.len(),
            many.iter()
                .map(|e| hex::encode(e.body.dataset))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Every notice `reg` holds, verified (each signed by the registry it names).
pub async fn notices(reg: &RegistryTicket, opts: &NetOptions) -> Result<Vec<Notice>> {
    Ok(notices_raw(reg, opts)
        .await?
        .iter()
        .filter_map(|b| Notice::decode(b).ok())
        .collect())
}

/// The notices `reg` sends, as bytes (unchecked: the caller decides what to trust).
pub async fn notices_raw(reg: &RegistryTicket, opts: &NetOptions) -> Result<Vec<Vec<u8>>> {
    match call(reg, &Request::Notices, opts).await? {
        Response::Notices(n) => Ok(n),
        _ => Err(unexpected(reg)),
    }
}

/// Signs a taint notice with the registry key kept in `dir` and hands it to the running
/// registry `reg`, which publishes it and forwards it to its peers.
pub async fn taint(
    dir: &Path,
    reg: &RegistryTicket,
    target: Tainted,
    reason: &str,
    opts: &NetOptions,
) -> Result<Notice> {
    let key = operator_key(dir, reg, "taint")?;
    let notice = Notice::sign(target, reason, crate::ops::access::now(), &key)?;
    match call(
        reg,
        &Request::Notice {
            notice: notice.encode(),
        },
        opts,
    )
    .await?
    {
        Response::Published { .. } => Ok(notice),
        _ => Err(unexpected(reg)),
    }
}

/// The registry key kept in `dir`, which must be the key of `reg` (only its operator signs
/// for it); `what` names the act in the error.
fn operator_key(dir: &Path, reg: &RegistryTicket, what: &str) -> Result<SigningKey> {
    let key = Home::new(dir)
        .existing_key_at("registry.key")?
        .ok_or_else(|| {
            Error::Other(format!(
                "no registry key in {}: run this where the registry runs, or give --dir",
                dir.display()
            ))
        })?;
    if key.verifying_key().to_bytes() != reg.key() {
        return Err(Error::Other(format!(
            "the registry key in {} is not the key of registry {}: only its operator can {what}",
            dir.display(),
            peer_name(&reg.key())
        )));
    }
    Ok(key)
}

/// Signs an approval of `publisher` (or with `approved` false, its withdrawal) with the
/// registry key kept in `dir` and hands it to the running registry `reg`, which keeps it
/// and forwards it to its peers.
pub async fn approve(
    dir: &Path,
    reg: &RegistryTicket,
    publisher: [u8; 32],
    approved: bool,
    note: &str,
    opts: &NetOptions,
) -> Result<Approval> {
    let key = operator_key(dir, reg, "approve")?;
    let approval = Approval::sign(publisher, approved, note, crate::ops::access::now(), &key)?;
    match call(
        reg,
        &Request::Approve {
            approval: approval.encode(),
        },
        opts,
    )
    .await?
    {
        Response::Published { .. } => Ok(approval),
        _ => Err(unexpected(reg)),
    }
}

/// Every approval `reg` holds, verified (each signed by the registry it names).
pub async fn approvals(reg: &RegistryTicket, opts: &NetOptions) -> Result<Vec<Approval>> {
    match call(reg, &Request::Approvals, opts).await? {
        Response::Approvals(a) => Ok(a.iter().filter_map(|b| Approval::decode(b).ok()).collect()),
        _ => Err(unexpected(reg)),
    }
}

fn registries_file(home: &Home) -> PathBuf {
    home.dir().join("registries")
}

/// The registries this user has used (for `lode://NAME` referrals), newest first.
pub fn known(home: &Home) -> Vec<RegistryTicket> {
    read_tickets(&registries_file(home))
}

/// Remembers a registry (best effort).
pub fn remember(home: &Home, reg: &RegistryTicket) {
    let mut all = vec![reg.clone()];
    all.extend(known(home).into_iter().filter(|r| r.key() != reg.key()));
    all.truncate(16);
    let _ = write_tickets(&registries_file(home), &all);
}

/// Resolves `name` through the registries this user has used, in turn.
pub async fn resolve_known(home: &Home, name: &str, opts: &NetOptions) -> Result<Ticket> {
    let regs = known(home);
    if regs.is_empty() {
        return Err(Error::Other(format!(
            "no known registry to resolve {name:?}: use one once (lode search TERM --registry TICKET)"
        )));
    }
    let mut last = None;
    for r in &regs {
        match resolve(r, name, opts).await {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one registry"))
}
