//! A registry's state: entries, notices, approvals and peers, in memory and written through to its directory; crowding limits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::SigningKey;

use crate::catalog::{Approval, Entry, EntryBody, Holding, Notice, Tainted, Volunteer};
use crate::error::{Error, Result};
use crate::keys::Home;
use crate::ticket::{Provider, RegistryTicket, Ticket};

use super::wire::*;

/// Most entries and notices a registry holds.
pub(super) const MAX_ENTRIES: usize = 50_000;
pub(super) const MAX_NOTICES: usize = 10_000;
pub(super) const MAX_NOTICES_PER_PEER: usize = 1_000;
/// Most approvals a registry holds, and from one peer registry.
pub(super) const MAX_APPROVALS: usize = 50_000;
pub(super) const MAX_APPROVALS_PER_PEER: usize = 10_000;
/// Most storage offers a registry holds (one per device).
pub(super) const MAX_VOLUNTEERS: usize = 10_000;
/// Most holding records a registry holds, and of one device (one per dataset).
pub(super) const MAX_HOLDINGS: usize = 200_000;
pub(super) const MAX_HOLDINGS_PER_DEVICE: usize = 10_000;
/// Default most entries of one publisher, and brought by one peer.
pub const DEFAULT_PER_PUBLISHER: usize = 1_000;
pub const DEFAULT_PER_PEER: usize = 20_000;
/// Most peers a registry keeps.
pub(super) const MAX_PEERS: usize = 64;
/// Most entries one search answers with.
pub(super) const MAX_RESULTS: usize = 200;

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
    /// How often a few random holding records are challenged (`None`: never).
    pub challenge: Option<std::time::Duration>,
}

/// Default interval between rounds of challenges.
pub const DEFAULT_CHALLENGE: std::time::Duration = std::time::Duration::from_secs(600);

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            curated: false,
            curators: vec![],
            per_publisher: DEFAULT_PER_PUBLISHER,
            per_peer: DEFAULT_PER_PEER,
            challenge: Some(DEFAULT_CHALLENGE),
        }
    }
}

/// A registry's state: its key, entries, notices, approvals and peers, kept in memory and
/// written through to its directory.
pub struct Registry {
    pub(super) dir: PathBuf,
    pub(super) key: SigningKey,
    pub(super) policy: Policy,
    pub(super) state: Mutex<State>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) entries: BTreeMap<[u8; 32], Entry>,
    /// Who brought each entry (dataset id → peer endpoint id).
    pub(super) origin: BTreeMap<[u8; 32], [u8; 32]>,
    /// How many held entries each publisher has, and each peer brought.
    pub(super) by_publisher: HashMap<[u8; 32], usize>,
    pub(super) by_origin: HashMap<[u8; 32], usize>,
    pub(super) notices: BTreeMap<[u8; 32], Notice>,
    /// The newest approval per (registry, publisher).
    pub(super) approvals: BTreeMap<([u8; 32], [u8; 32]), Approval>,
    /// The newest storage offer per device.
    pub(super) volunteers: BTreeMap<[u8; 32], Volunteer>,
    /// The newest holding record per (dataset, device).
    pub(super) holdings: BTreeMap<([u8; 32], [u8; 32]), Holding>,
    /// Holding records that failed a challenge here: never taken again.
    pub(super) dropped: HashSet<[u8; 32]>,
    pub(super) peers: Vec<Provider>,
    /// Registries a peer named: they become peers once a sync with them succeeds.
    pub(super) candidates: Vec<Provider>,
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

pub(super) fn read_dir_files(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
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

/// The first of `items` that fit in one answer.
fn within_message(items: impl Iterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut budget = MAX_MESSAGE - 64 * 1024;
    items
        .take_while(|b| {
            let fits = b.len() + 16 <= budget;
            budget = budget.saturating_sub(b.len() + 16);
            fits
        })
        .collect()
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
            // An entry of an older version is left for its owner to publish again.
            if bytes
                .first()
                .is_some_and(|v| *v < crate::catalog::ENTRY_VERSION)
            {
                continue;
            }
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
        for (p, bytes) in read_dir_files(&dir.join("volunteers"))? {
            let v = Volunteer::decode(&bytes).map_err(|e| damaged(&p, e.to_string()))?;
            st.volunteers.insert(v.body.device, v);
        }
        for (p, bytes) in read_dir_files(&dir.join("holdings"))? {
            let h = Holding::decode(&bytes).map_err(|e| damaged(&p, e.to_string()))?;
            st.holdings.insert((h.body.dataset, h.body.device), h);
        }
        for (p, _) in read_dir_files(&dir.join("dropped"))? {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let mut id = [0u8; 32];
            if hex::decode_to_slice(name, &mut id).is_ok() {
                st.dropped.insert(id);
            }
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    /// The notice of this registry that taints `dataset`, if any.
    pub(super) fn taint_of(st: &State, me: &[u8; 32], dataset: &[u8; 32]) -> Option<Notice> {
        st.notices
            .values()
            .find(|n| &n.body.registry == me && n.body.target == Tainted::Dataset(*dataset))
            .cloned()
    }

    /// Whether this registry lists `publisher`'s entries: always when open; when curated,
    /// while the newest approval of this registry or a registry it names approves it.
    pub(super) fn listed(&self, st: &State, publisher: &[u8; 32]) -> bool {
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
    pub(super) fn accept_entry(
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
    pub(super) fn accept_approval(&self, bytes: &[u8]) -> std::result::Result<bool, String> {
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
    pub(super) fn accept_notice(&self, bytes: &[u8]) -> std::result::Result<bool, String> {
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

    /// Stores a storage manager's offer (the newest per device). Returns whether it was new.
    pub(super) fn accept_volunteer(&self, bytes: &[u8]) -> std::result::Result<bool, String> {
        let v = Volunteer::decode(bytes).map_err(|e| e.to_string())?;
        let mut st = self.lock();
        match st.volunteers.get(&v.body.device) {
            Some(old) if !v.supersedes(old) => return Ok(false),
            Some(_) => {}
            None if st.volunteers.len() >= MAX_VOLUNTEERS => {
                return Err("this registry holds as many storage offers as it takes".into())
            }
            None => {}
        }
        write_atomic(
            &self.dir.join("volunteers").join(hex::encode(v.body.device)),
            bytes,
        )
        .map_err(|e| e.to_string())?;
        st.volunteers.insert(v.body.device, v);
        Ok(true)
    }

    /// Stores a holding record of a device that volunteered here (the newest per dataset
    /// and device, at most `MAX_HOLDINGS_PER_DEVICE` per device). Returns whether it was new.
    pub(super) fn accept_holding(&self, bytes: &[u8]) -> std::result::Result<bool, String> {
        let h = Holding::decode(bytes).map_err(|e| e.to_string())?;
        let (dataset, device) = (h.body.dataset, h.body.device);
        let mut st = self.lock();
        if st.dropped.contains(&h.id()) {
            return Err(format!(
                "this holding record of device {} failed a challenge here: only a new one is \
                 taken",
                hex::encode(device)
            ));
        }
        if !st.volunteers.contains_key(&device) {
            return Err(format!(
                "device {} has not volunteered at this registry: run `lode mirror volunteer` \
                 first",
                hex::encode(device)
            ));
        }
        match st.holdings.get(&(dataset, device)) {
            Some(old) if !h.supersedes(old) => return Ok(false),
            Some(_) => {}
            None => {
                let of_device = st.holdings.keys().filter(|(_, d)| *d == device).count();
                if st.holdings.len() >= MAX_HOLDINGS || of_device >= MAX_HOLDINGS_PER_DEVICE {
                    return Err(format!(
                        "device {} already holds as many holding records here as it may",
                        hex::encode(device)
                    ));
                }
            }
        }
        let file = format!("{}-{}", hex::encode(dataset), hex::encode(device));
        write_atomic(&self.dir.join("holdings").join(file), bytes).map_err(|e| e.to_string())?;
        st.holdings.insert((dataset, device), h);
        Ok(true)
    }

    /// Up to `n` holding records picked at random, to challenge.
    pub(super) fn pick_holdings(&self, n: usize) -> Vec<Holding> {
        use rand::seq::IteratorRandom;
        let st = self.lock();
        (st.holdings.values().cloned()).choose_multiple(&mut rand::thread_rng(), n)
    }

    /// Drops holding record `h`, which failed a challenge, if it is still the one kept
    /// here; it is remembered so that no peer brings it back. Returns whether it was kept.
    pub(super) fn drop_holding(&self, h: &Holding) -> bool {
        let key = (h.body.dataset, h.body.device);
        let mut st = self.lock();
        if st.holdings.get(&key).is_none_or(|k| k.id() != h.id()) {
            return false;
        }
        st.holdings.remove(&key);
        let file = format!("{}-{}", hex::encode(key.0), hex::encode(key.1));
        let _ = std::fs::remove_file(self.dir.join("holdings").join(file));
        if st.dropped.len() < MAX_HOLDINGS {
            st.dropped.insert(h.id());
            let _ = write_atomic(&self.dir.join("dropped").join(hex::encode(h.id())), &[]);
        }
        true
    }

    /// The holding records of `dataset` (all when `None`), bounded by the message size.
    pub(super) fn holdings(&self, dataset: Option<[u8; 32]>) -> Vec<Vec<u8>> {
        let st = self.lock();
        within_message(
            (st.holdings.values())
                .filter(|h| dataset.is_none_or(|d| h.body.dataset == d))
                .map(Holding::encode),
        )
    }

    /// Every storage offer held here, bounded by the message size.
    pub(super) fn volunteers(&self) -> Vec<Vec<u8>> {
        within_message(self.lock().volunteers.values().map(Volunteer::encode))
    }

    /// Adds a peer registry (not itself); returns whether it was new.
    pub(super) fn add_peer(&self, p: &Provider) -> bool {
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

    pub(super) fn peers(&self) -> Vec<Provider> {
        self.lock().peers.clone()
    }

    /// Remembers a registry a peer named, to try at the next sync round.
    pub(super) fn add_candidate(&self, p: &Provider) {
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
    pub(super) fn to_sync(&self) -> Vec<(Provider, bool)> {
        let mut st = self.lock();
        let mut out: Vec<(Provider, bool)> = st.peers.iter().map(|p| (p.clone(), true)).collect();
        out.extend(st.candidates.drain(..).map(|p| (p, false)));
        out
    }

    /// Entries visible here (not tainted by this registry, of a listed publisher) that
    /// `rank` ranks, best first: by rank, then publishers with fewer entries here (so that
    /// no one crowds the others out), then name and dataset id; at most `MAX_RESULTS`.
    pub(super) fn select(&self, rank: impl Fn(&EntryBody) -> Option<u8>) -> Vec<Vec<u8>> {
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

    pub(super) fn digest(&self) -> Digest {
        let st = self.lock();
        Digest {
            entries: (st.entries.values())
                .map(|e| (e.body.dataset, e.body.seq, e.id()))
                .collect(),
            notices: st.notices.keys().copied().collect(),
            approvals: st.approvals.values().map(Approval::id).collect(),
            volunteers: st.volunteers.values().map(Volunteer::id).collect(),
            holdings: st.holdings.values().map(Holding::id).collect(),
        }
    }

    /// What a peer lacks, given its digest (bounded by the message size): entries, notices,
    /// approvals, offers and holding records (the peer keeps the newest of each).
    pub(super) fn missing(&self, digest: &Digest) -> Items {
        let have: BTreeMap<[u8; 32], (u64, [u8; 32])> = (digest.entries.iter())
            .map(|(d, s, id)| (*d, (*s, *id)))
            .collect();
        let known: HashSet<[u8; 32]> = digest.notices.iter().copied().collect();
        let known_approvals: HashSet<[u8; 32]> = digest.approvals.iter().copied().collect();
        let known_volunteers: HashSet<[u8; 32]> = digest.volunteers.iter().copied().collect();
        let known_holdings: HashSet<[u8; 32]> = digest.holdings.iter().copied().collect();
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
        // Offers before holding records: a registry takes the records of volunteers only.
        let volunteers = (st.volunteers.values())
            .filter(|v| !known_volunteers.contains(&v.id()))
            .map_while(|v| take(v.encode()))
            .collect();
        let holdings = (st.holdings.values())
            .filter(|h| !known_holdings.contains(&h.id()))
            .map_while(|h| take(h.encode()))
            .collect();
        Items {
            entries,
            notices,
            approvals,
            volunteers,
            holdings,
        }
    }
}
