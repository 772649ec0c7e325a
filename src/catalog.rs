//! Registry entries, approvals, taint notices, storage offers and holding records: the signed
//! objects registries keep and replicate.
//! Pure: no I/O, no clock. Encoded like every other signed object (`payload ‖ signature`,
//! ed25519 `verify_strict` over `CONTEXT ‖ payload`, canonical postcard; see `trust`).
//!
//! - An [`Entry`] is a dataset's listing in a registry: name, metadata summary and
//!   providers, signed by the **dataset key** (only the owner can list or re-list a dataset).
//!   A newer `seq` replaces an older one, so every registry converges on the newest.
//! - An entry also names its **publisher** (a device key, the key of a `lodeid1` card), who
//!   signs it too: registries limit how many entries one publisher lists, and a curated
//!   registry lists only publishers its operator approved.
//! - An [`Approval`] says that a registry's operator approves (or no longer approves) a
//!   publisher, signed by the **registry key**; the newest per registry and publisher wins.
//! - A [`Notice`] marks a dataset or one blob as tainted (a takedown), signed by the
//!   **registry key**. Mirrors that follow a registry obey that registry's notices only.
//! - A [`Volunteer`] is a storage manager's offer (subjects or all, quota, per-dataset limit,
//!   where it serves), signed by its **device key**; the newest per device wins.
//! - A [`Holding`] is a storage manager's claim that it holds a dataset at a head (seq and
//!   commit), signed by its **device key**; the newest per (dataset, device) wins.

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::ticket::Provider;
use crate::trust::{Body, TrustError};

/// Context of registry-entry signatures.
pub const ENTRY_CONTEXT: &[u8] = b"lode/entry/v2\0";
/// Context of the publisher's signature inside an entry.
pub const PUBLISHER_CONTEXT: &[u8] = b"lode/entry-publisher/v2\0";
/// Context of publisher-approval signatures.
pub const APPROVAL_CONTEXT: &[u8] = b"lode/approval/v1\0";
/// Context of taint-notice signatures.
pub const NOTICE_CONTEXT: &[u8] = b"lode/notice/v1\0";
/// Longest dataset name.
pub const MAX_NAME: usize = 63;
/// Longest title, license or reason.
pub const MAX_LINE: usize = 256;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 4096;
/// Most keywords, and the longest keyword.
pub const MAX_KEYWORDS: usize = 32;
/// Most providers an entry lists.
pub const MAX_PROVIDERS: usize = 16;

const VERSION: u8 = 1;
/// Version of entries (2: with a publisher; 3: with the copies the publisher asks for).
pub const ENTRY_VERSION: u8 = 3;
/// Most copies a publisher may ask for.
pub const MAX_COPIES: u32 = 64;
/// Every catalog object carries its signer's key right after the version byte.
const SIGNER_AT: usize = 1;

type TResult<T> = std::result::Result<T, TrustError>;

/// True for a valid dataset name: 1–63 characters of `a-z 0-9 . _ -`, starting with a
/// letter or digit. (A 64-hex-digit dataset id can never be a name.)
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

/// A signed object (the one encoding of `trust`): the decoded body and the exact bytes that
/// were signed. Catalog objects' ids are the BLAKE3 hash of their canonical bytes.
pub use crate::trust::Signed;

/// The signed part of a registry entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBody {
    pub version: u8,
    /// The dataset id, which also signs the entry.
    pub dataset: [u8; 32],
    /// Orders the entries of one dataset: the highest wins.
    pub seq: u64,
    pub name: String,
    pub title: String,
    pub description: String,
    pub license: String,
    pub keywords: Vec<String>,
    /// Where the dataset is served (the owner's peers and mirrors).
    pub providers: Vec<Provider>,
    /// When the owner signed it (seconds since the epoch).
    pub time: u64,
    /// How many storage managers the publisher asks to hold its current head (`lode publish
    /// --copies N`; 0: no minimum asked).
    pub copies: u32,
    /// Who published it: a device key (the key of the publisher's `lodeid1` card).
    pub publisher: [u8; 32],
    /// The publisher's signature (context [`PUBLISHER_CONTEXT`]) over this body with this
    /// field empty.
    pub publisher_sig: Vec<u8>,
}

/// A dataset's registry entry, signed by the dataset key and its publisher.
pub type Entry = Signed<EntryBody>;

impl Body for EntryBody {
    const WHAT: &'static str = "registry entry";
    const CONTEXT: &'static [u8] = ENTRY_CONTEXT;
    const SIGNER_AT: usize = SIGNER_AT;
}

impl EntryBody {
    fn check(&self) -> TResult<()> {
        let bad = |why: &str| Err(TrustError::Malformed("registry entry", why.into()));
        if self.version != ENTRY_VERSION {
            return bad("unknown version");
        }
        if !valid_name(&self.name) {
            return bad("invalid name (1-63 of a-z 0-9 . _ -, starting with a letter or digit)");
        }
        if self.title.len() > MAX_LINE
            || self.license.len() > MAX_LINE
            || self.description.len() > MAX_DESCRIPTION
            || self.keywords.len() > MAX_KEYWORDS
            || self.keywords.iter().any(|k| k.len() > 64)
            || self.providers.len() > MAX_PROVIDERS
            || self.copies > MAX_COPIES
            || self
                .providers
                .iter()
                .any(|p| p.addrs.len() > 16 || p.relay.as_ref().is_some_and(|r| r.len() > 256))
        {
            return Err(TrustError::TooLarge("registry entry"));
        }
        if self.providers.is_empty() {
            return bad("no provider");
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.publisher)
            .map_err(|_| TrustError::Malformed("registry entry", "invalid publisher key".into()))?;
        let sig: [u8; 64] = (self.publisher_sig.as_slice().try_into()).map_err(|_| {
            TrustError::Malformed("registry entry", "no publisher signature".into())
        })?;
        key.verify_strict(
            &[PUBLISHER_CONTEXT, &self.unsigned()].concat(),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .map_err(|_| TrustError::BadSignature("registry entry (publisher)".into()))?;
        Ok(())
    }

    /// What the publisher signs: this body with an empty `publisher_sig`.
    fn unsigned(&self) -> Vec<u8> {
        let mut b = self.clone();
        b.publisher_sig.clear();
        postcard::to_stdvec(&b).expect("in-memory values encode")
    }

    /// How well the entry matches `term` (lowercase), best first: 0 the exact name, 1 a
    /// whole word of the name or title, 2 part of the name or title, 3 the description, a
    /// keyword or the license; `None` when it does not match.
    pub fn rank(&self, term: &str) -> Option<u8> {
        let term = term.trim().to_lowercase();
        if term.is_empty() {
            return Some(3);
        }
        let (name, title) = (self.name.to_lowercase(), self.title.to_lowercase());
        if name == term {
            return Some(0);
        }
        let words = |s: &str| -> bool {
            s.split(|c: char| !c.is_alphanumeric())
                .any(|w| !w.is_empty() && w == term)
        };
        if words(&name) || words(&title) || title == term {
            return Some(1);
        }
        if name.contains(&term) || title.contains(&term) {
            return Some(2);
        }
        let other = [&self.description, &self.license]
            .into_iter()
            .chain(self.keywords.iter())
            .any(|s| s.to_lowercase().contains(&term));
        other.then_some(3)
    }

    /// True when `term` occurs (any case) in the name, title, description, license or a
    /// keyword.
    pub fn matches(&self, term: &str) -> bool {
        self.rank(term).is_some()
    }
}

impl Entry {
    /// Signs an entry with the publisher's device key (which it names) and the dataset key.
    pub fn sign(mut body: EntryBody, key: &SigningKey, publisher: &SigningKey) -> TResult<Entry> {
        if body.dataset != key.verifying_key().to_bytes() {
            return Err(TrustError::Malformed(
                "registry entry",
                "must be signed by the dataset key".into(),
            ));
        }
        body.publisher = publisher.verifying_key().to_bytes();
        body.publisher_sig.clear();
        let sig = publisher.sign(&[PUBLISHER_CONTEXT, &body.unsigned()].concat());
        body.publisher_sig = sig.to_bytes().to_vec();
        body.check()?;
        Ok(Signed::seal(body, key))
    }

    /// Decodes an entry and checks that the dataset key signed it.
    pub fn decode(bytes: &[u8]) -> TResult<Entry> {
        let e: Entry = Signed::open_bytes(bytes)?;
        e.body.check()?;
        Ok(e)
    }

    /// Whether `self` should replace `other` (same dataset): a higher `seq`, or on a tie
    /// the smaller id, so that every registry keeps the same one.
    pub fn supersedes(&self, other: &Entry) -> bool {
        (self.body.seq, std::cmp::Reverse(self.id()))
            > (other.body.seq, std::cmp::Reverse(other.id()))
    }
}

/// The signed part of a publisher approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalBody {
    pub version: u8,
    /// The registry key that signs it.
    pub registry: [u8; 32],
    /// The publisher's device key.
    pub publisher: [u8; 32],
    /// False: the approval is withdrawn.
    pub approved: bool,
    /// Who the publisher is, for the operator's records.
    pub note: String,
    pub time: u64,
}

/// A registry operator's word that a publisher may (or no longer may) list datasets there.
pub type Approval = Signed<ApprovalBody>;

impl Body for ApprovalBody {
    const WHAT: &'static str = "publisher approval";
    const CONTEXT: &'static [u8] = APPROVAL_CONTEXT;
    const SIGNER_AT: usize = SIGNER_AT;
}

impl Approval {
    /// Signs an approval (or, with `approved` false, its withdrawal) with the registry key.
    pub fn sign(
        publisher: [u8; 32],
        approved: bool,
        note: &str,
        time: u64,
        key: &SigningKey,
    ) -> TResult<Approval> {
        let body = ApprovalBody {
            version: VERSION,
            registry: key.verifying_key().to_bytes(),
            publisher,
            approved,
            note: note.to_string(),
            time,
        };
        check_approval(&body)?;
        Ok(Signed::seal(body, key))
    }

    /// Decodes an approval and checks that the registry key it names signed it.
    pub fn decode(bytes: &[u8]) -> TResult<Approval> {
        let a: Approval = Signed::open_bytes(bytes)?;
        check_approval(&a.body)?;
        Ok(a)
    }

    /// Whether `self` replaces `other` (same registry and publisher): the newer; on a tie a
    /// withdrawal, then the smaller id, so that every registry keeps the same one.
    pub fn supersedes(&self, other: &Approval) -> bool {
        (
            self.body.time,
            !self.body.approved,
            std::cmp::Reverse(self.id()),
        ) > (
            other.body.time,
            !other.body.approved,
            std::cmp::Reverse(other.id()),
        )
    }
}

fn check_approval(body: &ApprovalBody) -> TResult<()> {
    if body.version != VERSION {
        return Err(TrustError::Malformed(
            "publisher approval",
            "unknown version".into(),
        ));
    }
    if ed25519_dalek::VerifyingKey::from_bytes(&body.publisher).is_err() {
        return Err(TrustError::Malformed(
            "publisher approval",
            "invalid publisher key".into(),
        ));
    }
    if body.note.len() > MAX_LINE {
        return Err(TrustError::TooLarge("publisher approval"));
    }
    Ok(())
}

/// What a notice taints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tainted {
    /// A whole dataset, by id.
    Dataset([u8; 32]),
    /// One object (file content or ciphertext), by BLAKE3 id, in whatever dataset.
    Blob([u8; 32]),
}

impl std::fmt::Display for Tainted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tainted::Dataset(d) => write!(f, "dataset {}", hex::encode(d)),
            Tainted::Blob(b) => write!(f, "blob {}", hex::encode(b)),
        }
    }
}

/// The signed part of a taint notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeBody {
    pub version: u8,
    /// The registry key that signs the notice.
    pub registry: [u8; 32],
    pub target: Tainted,
    /// Why (shown to mirror operators and in the public list).
    pub reason: String,
    pub time: u64,
}

/// A takedown notice, signed by a registry.
pub type Notice = Signed<NoticeBody>;

impl Body for NoticeBody {
    const WHAT: &'static str = "taint notice";
    const CONTEXT: &'static [u8] = NOTICE_CONTEXT;
    const SIGNER_AT: usize = SIGNER_AT;
}

impl Notice {
    /// Signs a notice with the registry key.
    pub fn sign(target: Tainted, reason: &str, time: u64, key: &SigningKey) -> TResult<Notice> {
        let body = NoticeBody {
            version: VERSION,
            registry: key.verifying_key().to_bytes(),
            target,
            reason: reason.to_string(),
            time,
        };
        check_notice(&body)?;
        Ok(Signed::seal(body, key))
    }

    /// Decodes a notice and checks that the key it names signed it (who that key belongs to
    /// is the caller's question: see [`Notice::decode_from`]).
    pub fn decode(bytes: &[u8]) -> TResult<Notice> {
        let n: Notice = Signed::open_bytes(bytes)?;
        check_notice(&n.body)?;
        Ok(n)
    }

    /// Decodes a notice that must be signed by one of `registries` (those a mirror follows).
    pub fn decode_from(bytes: &[u8], registries: &[[u8; 32]]) -> TResult<Notice> {
        let n = Notice::decode(bytes)?;
        n.check_signer(registries)?;
        Ok(n)
    }

    /// Checks that one of `registries` signed this notice.
    pub fn check_signer(&self, registries: &[[u8; 32]]) -> TResult<()> {
        if registries.contains(&self.body.registry) {
            return Ok(());
        }
        Err(TrustError::WrongRegistry(
            hex::encode(self.body.registry),
            registries
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(" or "),
        ))
    }
}

fn check_notice(body: &NoticeBody) -> TResult<()> {
    if body.version != VERSION {
        return Err(TrustError::Malformed(
            "taint notice",
            "unknown version".into(),
        ));
    }
    if body.reason.trim().is_empty() {
        return Err(TrustError::Malformed(
            "taint notice",
            "it gives no reason".into(),
        ));
    }
    if body.reason.len() > MAX_LINE {
        return Err(TrustError::TooLarge("taint notice"));
    }
    Ok(())
}

/// Context of storage-manager offer signatures.
pub const VOLUNTEER_CONTEXT: &[u8] = b"lode/volunteer/v1\0";
/// Context of holding-record signatures.
pub const HOLDING_CONTEXT: &[u8] = b"lode/holding/v1\0";
/// Most subjects one offer names.
pub const MAX_SUBJECTS: usize = 32;

/// The signed part of a storage manager's offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolunteerBody {
    pub version: u8,
    /// The storage manager's device key, which signs the offer (and is its endpoint id).
    pub device: [u8; 32],
    /// Words a dataset's entry must match (any of them) to be adopted.
    pub subjects: Vec<String>,
    /// Every public dataset listed, whatever its subject.
    pub all: bool,
    /// Total bytes offered, if bounded.
    pub quota: Option<u64>,
    /// Largest dataset (bytes of its current version) adopted, if bounded.
    pub max_dataset: Option<u64>,
    /// Where its `lode serve --mirrors` answers, when it was known at signing.
    pub provider: Option<Provider>,
    pub time: u64,
}

/// A storage manager's offer to a registry: what it volunteers to mirror, signed by its
/// device key. The newest per device wins.
pub type Volunteer = Signed<VolunteerBody>;

impl Body for VolunteerBody {
    const WHAT: &'static str = "storage offer";
    const CONTEXT: &'static [u8] = VOLUNTEER_CONTEXT;
    const SIGNER_AT: usize = SIGNER_AT;
}

fn check_provider(p: &Provider) -> bool {
    p.addrs.len() <= 16 && p.relay.as_ref().is_none_or(|r| r.len() <= 256)
}

impl VolunteerBody {
    fn check(&self) -> TResult<()> {
        let what = "storage offer";
        if self.version != VERSION {
            return Err(TrustError::Malformed(what, "unknown version".into()));
        }
        if self.subjects.len() > MAX_SUBJECTS
            || self.subjects.iter().any(|s| s.len() > 64)
            || self.provider.as_ref().is_some_and(|p| !check_provider(p))
        {
            return Err(TrustError::TooLarge(what));
        }
        if !self.all && self.subjects.iter().all(|s| s.trim().is_empty()) {
            return Err(TrustError::Malformed(what, "it names no subject".into()));
        }
        Ok(())
    }

    /// Whether an entry falls within this offer: `all`, or one of the subjects matches it.
    pub fn wants(&self, entry: &EntryBody) -> bool {
        self.all || (self.subjects.iter()).any(|s| !s.trim().is_empty() && entry.matches(s))
    }
}

impl Volunteer {
    /// Signs an offer with the storage manager's device key (which it names).
    pub fn sign(mut body: VolunteerBody, key: &SigningKey) -> TResult<Volunteer> {
        body.version = VERSION;
        body.device = key.verifying_key().to_bytes();
        body.check()?;
        Ok(Signed::seal(body, key))
    }

    /// Decodes an offer and checks that the device it names signed it.
    pub fn decode(bytes: &[u8]) -> TResult<Volunteer> {
        let v: Volunteer = Signed::open_bytes(bytes)?;
        v.body.check()?;
        Ok(v)
    }

    /// Whether `self` replaces `other` (same device): the newer, then the smaller id.
    pub fn supersedes(&self, other: &Volunteer) -> bool {
        (self.body.time, std::cmp::Reverse(self.id()))
            > (other.body.time, std::cmp::Reverse(other.id()))
    }
}

/// The signed part of a holding record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingBody {
    pub version: u8,
    /// The storage manager's device key, which signs the record.
    pub device: [u8; 32],
    pub dataset: [u8; 32],
    /// The dataset's signed head it holds: its sequence number and `main` commit.
    pub seq: u64,
    pub commit: [u8; 32],
    /// Where it serves the dataset, when known.
    pub provider: Option<Provider>,
    pub time: u64,
}

/// A storage manager's claim that it holds (and serves) a dataset at a head, signed by its
/// device key. A claim, not a proof: see docs/SECURITY.md. The newest per (dataset, device)
/// wins.
pub type Holding = Signed<HoldingBody>;

impl Body for HoldingBody {
    const WHAT: &'static str = "holding record";
    const CONTEXT: &'static [u8] = HOLDING_CONTEXT;
    const SIGNER_AT: usize = SIGNER_AT;
}

impl Holding {
    /// Signs a holding record with the storage manager's device key (which it names).
    pub fn sign(mut body: HoldingBody, key: &SigningKey) -> TResult<Holding> {
        body.version = VERSION;
        body.device = key.verifying_key().to_bytes();
        check_holding(&body)?;
        Ok(Signed::seal(body, key))
    }

    /// Decodes a holding record and checks that the device it names signed it.
    pub fn decode(bytes: &[u8]) -> TResult<Holding> {
        let h: Holding = Signed::open_bytes(bytes)?;
        check_holding(&h.body)?;
        Ok(h)
    }

    /// Whether `self` replaces `other` (same dataset and device): a higher head, then the
    /// newer record, then the smaller id.
    pub fn supersedes(&self, other: &Holding) -> bool {
        (self.body.seq, self.body.time, std::cmp::Reverse(self.id()))
            > (
                other.body.seq,
                other.body.time,
                std::cmp::Reverse(other.id()),
            )
    }
}

fn check_holding(body: &HoldingBody) -> TResult<()> {
    if body.version != VERSION {
        return Err(TrustError::Malformed(
            "holding record",
            "unknown version".into(),
        ));
    }
    if body.provider.as_ref().is_some_and(|p| !check_provider(p)) {
        return Err(TrustError::TooLarge("holding record"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::sign_payload;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn body(k: &SigningKey, seq: u64) -> EntryBody {
        EntryBody {
            version: ENTRY_VERSION,
            dataset: k.verifying_key().to_bytes(),
            seq,
            name: "worm-tracks".into(),
            title: "C. elegans tracks".into(),
            description: "Locomotion of N2 worms".into(),
            license: "CC-BY-4.0".into(),
            keywords: vec!["elegans".into()],
            providers: vec![Provider {
                id: key(9).verifying_key().to_bytes(),
                addrs: vec!["127.0.0.1:1".parse().unwrap()],
                relay: None,
            }],
            time: 5,
            copies: 0,
            publisher: [0; 32],
            publisher_sig: vec![],
        }
    }

    #[test]
    fn entries_verify_and_order() {
        let k = key(1);
        let me = key(4);
        let e = Entry::sign(body(&k, 1), &k, &me).unwrap();
        assert_eq!(e.body.publisher, me.verifying_key().to_bytes());
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert!(Entry::decode(&bad).is_err());
        assert!(Entry::decode(&bytes[..bytes.len() - 1]).is_err());
        // Only the dataset key may sign its entry.
        assert!(Entry::sign(body(&k, 1), &key(2), &me).is_err());
        // Nobody can name another publisher: its signature covers the whole body.
        let mut claimed = e.body.clone();
        claimed.publisher = key(5).verifying_key().to_bytes();
        let (payload, sig) = sign_payload(ENTRY_CONTEXT, &claimed, &k);
        assert!(Entry::decode(&[&payload[..], &sig[..]].concat()).is_err());
        let newer = Entry::sign(body(&k, 2), &k, &me).unwrap();
        assert!(newer.supersedes(&e) && !e.supersedes(&newer));
        assert!(body(&k, 1).matches("ELEGANS") && !body(&k, 1).matches("zebrafish"));
        let mut b = body(&k, 3);
        b.name = "Bad Name".into();
        assert!(Entry::sign(b, &k, &me).is_err());
    }

    #[test]
    fn ranks() {
        let b = body(&key(1), 1);
        assert_eq!(b.rank("worm-tracks"), Some(0));
        assert_eq!(b.rank("WORM"), Some(1));
        assert_eq!(b.rank("elegans"), Some(1));
        assert_eq!(b.rank("track"), Some(2));
        assert_eq!(b.rank("n2"), Some(3));
        assert_eq!(b.rank("cc-by"), Some(3));
        assert_eq!(b.rank("zebrafish"), None);
    }

    #[test]
    fn approvals_verify_and_order() {
        let r = key(3);
        let p = key(4).verifying_key().to_bytes();
        let a = Approval::sign(p, true, "Lee lab", 10, &r).unwrap();
        assert_eq!(Approval::decode(&a.encode()).unwrap(), a);
        let mut bad = a.encode();
        bad[3] ^= 1;
        assert!(Approval::decode(&bad).is_err());
        let off = Approval::sign(p, false, "", 10, &r).unwrap();
        assert!(off.supersedes(&a) && !a.supersedes(&off));
        let later = Approval::sign(p, true, "", 11, &r).unwrap();
        assert!(later.supersedes(&off));
        // Not a notice, nor an entry.
        assert!(Notice::decode(&a.encode()).is_err());
        assert!(Entry::decode(&a.encode()).is_err());
    }

    #[test]
    fn names() {
        for ok in ["worm", "c.elegans-2024", "a", "0x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "Worm", "a/b", "é", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn notices_verify() {
        let r = key(3);
        let n = Notice::sign(Tainted::Blob([7; 32]), "court order 12", 9, &r).unwrap();
        let back = Notice::decode(&n.encode()).unwrap();
        assert_eq!(back.body.registry, r.verifying_key().to_bytes());
        let mut bad = n.encode();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Notice::decode(&bad).is_err());
        assert!(Notice::sign(Tainted::Blob([7; 32]), " ", 9, &r).is_err());
        // An entry's bytes are not a notice (separate signature contexts).
        let k = key(1);
        let e = Entry::sign(body(&k, 1), &k, &k).unwrap();
        assert!(Notice::decode(&e.encode()).is_err());
    }

    #[test]
    fn offers_and_holdings_verify() {
        let dev = key(6);
        let offer = VolunteerBody {
            version: 0,
            device: [0; 32],
            subjects: vec!["elegans".into()],
            all: false,
            quota: Some(1 << 30),
            max_dataset: None,
            provider: None,
            time: 3,
        };
        let v = Volunteer::sign(offer.clone(), &dev).unwrap();
        assert_eq!(v.body.device, dev.verifying_key().to_bytes());
        assert_eq!(Volunteer::decode(&v.encode()).unwrap(), v);
        assert!(v.body.wants(&body(&key(1), 1)));
        let mut zf = body(&key(1), 1);
        (zf.title, zf.keywords, zf.description) = ("Zebrafish".into(), vec![], String::new());
        assert!(!v.body.wants(&zf));
        let mut bad = v.encode();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Volunteer::decode(&bad).is_err());
        // Nobody can offer in another device's name.
        let mut claimed = v.body.clone();
        claimed.device = key(7).verifying_key().to_bytes();
        let (payload, sig) = sign_payload(VOLUNTEER_CONTEXT, &claimed, &dev);
        assert!(Volunteer::decode(&[&payload[..], &sig[..]].concat()).is_err());
        let none = VolunteerBody {
            subjects: vec![" ".into()],
            ..offer
        };
        assert!(Volunteer::sign(none, &dev).is_err());

        let h = Holding::sign(
            HoldingBody {
                version: 0,
                device: [0; 32],
                dataset: [1; 32],
                seq: 4,
                commit: [2; 32],
                provider: None,
                time: 5,
            },
            &dev,
        )
        .unwrap();
        assert_eq!(Holding::decode(&h.encode()).unwrap(), h);
        let mut bad = h.encode();
        bad[2] ^= 1;
        assert!(Holding::decode(&bad).is_err());
        // Separate contexts: an offer is not a holding record, nor the reverse.
        assert!(Holding::decode(&v.encode()).is_err());
        assert!(Volunteer::decode(&h.encode()).is_err());
    }
}
