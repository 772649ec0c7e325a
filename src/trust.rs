//! Capabilities: identity cards, capability tickets (chains of signed links), revocations and
//! signed heads. Pure: no I/O, no clock (callers pass `now`). See docs/SECURITY.md.
//!
//! Every signed object is `payload ‖ signature`, where `payload` is a postcard encoding that
//! starts with a version byte, a 32-byte dataset (or subject) key and the 32-byte signer key at
//! fixed offsets, and the signature is ed25519 (`verify_strict`) over `CONTEXT ‖ payload` with
//! a context string of its own per object type, so a signature of one type can never be
//! replayed as another. Decoding is strict: the signature is checked over the received bytes
//! first, then the payload is decoded with size limits and must re-encode to the same bytes
//! (one canonical encoding), with nothing trailing.
//!
//! Invariants: a link is valid only as part of a chain whose root is signed by the dataset key
//! itself; each next link is issued by the previous audience, names the previous link id as
//! parent, and only narrows rights, scope, validity and depth; tickets are bound to their
//! holder (the leaf audience must be the peer presenting it).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::person::Person;
use crate::ticket::Provider;

/// Context of capability-link signatures.
pub const TICKET_CONTEXT: &[u8] = b"lode/ticket/v1\0";
/// Context of signed heads.
pub const HEAD_CONTEXT: &[u8] = b"lode/head/v1\0";
/// Context of revocations.
pub const REVOKE_CONTEXT: &[u8] = b"lode/revoke/v1\0";
/// Context of identity cards.
pub const CARD_CONTEXT: &[u8] = b"lode/idcard/v1\0";
/// Tolerated clock difference between peers, in seconds.
pub const CLOCK_SKEW: u64 = 60;
/// Largest encoded capability bundle.
pub const MAX_BUNDLE: usize = 16 * 1024;
/// Most links in a chain.
pub const MAX_LINKS: usize = 5;
/// Most path prefixes in a scope.
pub const MAX_SCOPE: usize = 16;
/// Longest note, path prefix or tag name, in bytes.
pub const MAX_TEXT: usize = 256;
/// Most tags in a signed head.
pub const MAX_TAGS: usize = 1024;
/// Most revocations a head lists.
pub const MAX_REVOCATIONS: usize = 4096;
/// Largest signed head or revocation.
pub const MAX_SIGNED: usize = 256 * 1024;

const BUNDLE_PREFIX: &str = "lodecap1";
const CARD_PREFIX: &str = "lodeid1";
const VERSION: u8 = 1;

/// Why a capability, card, head or revocation was refused. Each variant is one specific
/// reason, and the text names it (tests assert on it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("malformed {0}: {1}")]
    Malformed(&'static str, String),
    #[error("{0} encoding is not canonical")]
    NonCanonical(&'static str),
    #[error("{0} is too large")]
    TooLarge(&'static str),
    #[error("signature of {0} does not verify (forged or altered)")]
    BadSignature(String),
    #[error("ticket is for dataset {got}, not {want}")]
    WrongDataset { got: String, want: String },
    #[error("root link is not issued by the dataset owner (issuer {0})")]
    NotOwnerRoot(String),
    #[error("link {0} is not valid before {1} (clock {2})")]
    NotYetValid(usize, u64, u64),
    #[error("link {0} expired at {1} (clock {2})")]
    Expired(usize, u64, u64),
    #[error("ticket was issued to {holder}, but presented by {peer} (tickets are bound to their holder)")]
    WrongAudience { holder: String, peer: String },
    #[error("broken chain at link {0}: {1}")]
    BrokenChain(usize, &'static str),
    #[error("link {0} widens its parent's {1}")]
    Widens(usize, &'static str),
    #[error("link {0} was delegated from a link without the grant right")]
    NoGrant(usize),
    #[error("link {0} ({1}) has been revoked")]
    Revoked(usize, String),
    #[error("key {0} has been revoked")]
    RevokedKey(String),
    #[error("the ticket does not allow {0}")]
    Forbidden(&'static str),
    #[error("path {0:?} is outside the ticket's scope")]
    OutOfScope(String),
    #[error("head is not signed by a writer of the dataset: {0}")]
    NotWriter(String),
    #[error("revocation is not signed by the dataset owner")]
    NotRevoker,
    #[error("notice is signed by {0}, not by the registry {1}")]
    WrongRegistry(String, String),
}

type TResult<T> = std::result::Result<T, TrustError>;

/// Rights a link grants, as bit flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rights(pub u8);

impl Rights {
    /// Fetch and host ciphertext (mirrors).
    pub const RELAY: Rights = Rights(1);
    /// Fetch and read.
    pub const READ: Rights = Rights(2);
    /// Push new heads.
    pub const WRITE: Rights = Rights(4);
    /// Delegate (narrower) links.
    pub const GRANT: Rights = Rights(8);
    /// Revoke links below this one.
    pub const REVOKE: Rights = Rights(16);
    const NAMES: [(&'static str, Rights); 5] = [
        ("relay", Rights::RELAY),
        ("read", Rights::READ),
        ("write", Rights::WRITE),
        ("grant", Rights::GRANT),
        ("revoke", Rights::REVOKE),
    ];
    const ALL: u8 = 31;

    /// True when every right of `other` is in `self`.
    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union.
    pub fn with(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// Names, e.g. `read,grant`.
    pub fn names(self) -> String {
        let v: Vec<&str> = Rights::NAMES
            .iter()
            .filter(|(_, r)| self.contains(*r))
            .map(|(n, _)| *n)
            .collect();
        v.join(",")
    }
}

/// The signed part of a capability link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkBody {
    pub version: u8,
    pub dataset: [u8; 32],
    pub issuer: [u8; 32],
    /// The holder: the endpoint id that may present this link.
    pub audience: [u8; 32],
    /// Id of the link this one was delegated from; `None` for a root link.
    pub parent: Option<[u8; 32]>,
    pub rights: Rights,
    /// Normalized path prefixes (sorted, distinct); empty means the whole dataset.
    pub scope: Vec<String>,
    /// Seconds since the Unix epoch.
    pub not_before: u64,
    pub expires: u64,
    /// Re-delegations left below this link.
    pub max_depth: u8,
    pub nonce: [u8; 16],
    pub note: String,
}

/// A signed capability link.
#[derive(Clone, PartialEq, Eq)]
pub struct Link {
    pub body: LinkBody,
    payload: Vec<u8>,
    sig: [u8; 64],
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Link({})", hex::encode(&self.id()[..8]))
    }
}

/// Checks that `p` is a normalized path prefix: relative, `/`-separated valid names.
pub fn valid_prefix(p: &str) -> bool {
    p.len() <= MAX_TEXT && p.split('/').all(crate::object::valid_name)
}

/// True when `path` is `prefix` or below it.
pub fn path_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// True when `path` is inside `scope` (empty scope: everything).
pub fn in_scope(scope: &[String], path: &str) -> bool {
    scope.is_empty() || scope.iter().any(|p| path_under(path, p))
}

/// True when `path` is inside the scope or is a directory on the way to it.
pub fn on_scope_path(scope: &[String], path: &str) -> bool {
    path.is_empty() || in_scope(scope, path) || scope.iter().any(|p| path_under(p, path))
}

/// Sorts, de-duplicates and checks path prefixes given by a user (`a/b/`, `./a` accepted).
pub fn normalize_scope(prefixes: &[String]) -> TResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in prefixes {
        let t = p.trim_start_matches("./").trim_matches('/').to_string();
        if !valid_prefix(&t) {
            return Err(TrustError::Malformed(
                "scope",
                format!("bad path prefix {p:?}"),
            ));
        }
        out.push(t);
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_SCOPE {
        return Err(TrustError::TooLarge("scope"));
    }
    Ok(out)
}

fn check_text(what: &'static str, s: &str) -> TResult<()> {
    if s.len() > MAX_TEXT {
        return Err(TrustError::TooLarge(what));
    }
    Ok(())
}

impl LinkBody {
    fn check(&self) -> TResult<()> {
        if self.version != VERSION {
            return Err(TrustError::Malformed("ticket", "unknown version".into()));
        }
        if self.rights.0 == 0 || self.rights.0 & !Rights::ALL != 0 {
            return Err(TrustError::Malformed("ticket", "bad rights".into()));
        }
        if self.scope.len() > MAX_SCOPE {
            return Err(TrustError::TooLarge("scope"));
        }
        let sorted = self.scope.windows(2).all(|w| w[0] < w[1]);
        if !sorted || !self.scope.iter().all(|p| valid_prefix(p)) {
            return Err(TrustError::Malformed(
                "ticket",
                "scope not normalized".into(),
            ));
        }
        if self.expires <= self.not_before {
            return Err(TrustError::Malformed(
                "ticket",
                "expires before it starts".into(),
            ));
        }
        check_text("note", &self.note)?;
        for k in [&self.dataset, &self.issuer, &self.audience] {
            VerifyingKey::from_bytes(k)
                .map_err(|_| TrustError::Malformed("ticket", "invalid key".into()))?;
        }
        Ok(())
    }
}

/// Encodes, signs `CONTEXT ‖ payload`.
pub(crate) fn sign_payload<T: Serialize>(
    context: &[u8],
    body: &T,
    key: &SigningKey,
) -> (Vec<u8>, [u8; 64]) {
    let payload = postcard::to_stdvec(body).expect("in-memory values encode");
    let sig = key.sign(&[context, &payload].concat()).to_bytes();
    (payload, sig)
}

/// Verifies the signature of `signer` over the received bytes, then decodes strictly.
pub(crate) fn open_payload<T: Serialize + for<'a> Deserialize<'a>>(
    what: &'static str,
    context: &[u8],
    payload: &[u8],
    sig: &[u8],
    signer_at: usize,
) -> TResult<(T, [u8; 64])> {
    if payload.len() > MAX_SIGNED {
        return Err(TrustError::TooLarge(what));
    }
    let signer: [u8; 32] = payload
        .get(signer_at..signer_at + 32)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| TrustError::Malformed(what, "truncated".into()))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| TrustError::Malformed(what, "signature is not 64 bytes".into()))?;
    let key = VerifyingKey::from_bytes(&signer)
        .map_err(|_| TrustError::Malformed(what, "invalid signer key".into()))?;
    key.verify_strict(&[context, payload].concat(), &Signature::from_bytes(&sig))
        .map_err(|_| TrustError::BadSignature(what.to_string()))?;
    let (body, rest): (T, &[u8]) = postcard::take_from_bytes(payload)
        .map_err(|e| TrustError::Malformed(what, e.to_string()))?;
    if !rest.is_empty() {
        return Err(TrustError::Malformed(what, "trailing bytes".into()));
    }
    if postcard::to_stdvec(&body).expect("encodes") != payload {
        return Err(TrustError::NonCanonical(what));
    }
    Ok((body, sig))
}

// Offsets of the signer key in each payload (version byte first, then fixed arrays).
const LINK_SIGNER_AT: usize = 1 + 32;
const HEAD_SIGNER_AT: usize = 1 + 32;
const REVOKE_SIGNER_AT: usize = 1 + 32;
const CARD_SIGNER_AT: usize = 1;

impl Link {
    /// Signs `body` with `key`, which must be the body's issuer.
    pub fn sign(body: LinkBody, key: &SigningKey) -> TResult<Link> {
        if key.verifying_key().to_bytes() != body.issuer {
            return Err(TrustError::Malformed(
                "ticket",
                "issuer is not the signing key".into(),
            ));
        }
        body.check()?;
        let (payload, sig) = sign_payload(TICKET_CONTEXT, &body, key);
        Ok(Link { body, payload, sig })
    }

    /// Reads a link from its payload and signature (signature first, then strict decoding).
    pub fn open(payload: &[u8], sig: &[u8]) -> TResult<Link> {
        let (body, sig): (LinkBody, _) =
            open_payload("ticket", TICKET_CONTEXT, payload, sig, LINK_SIGNER_AT)?;
        body.check()?;
        Ok(Link {
            body,
            payload: payload.to_vec(),
            sig,
        })
    }

    /// The link id: a keyed BLAKE3 of the payload (every signature over the same payload has
    /// the same id, so a revocation covers them all).
    pub fn id(&self) -> [u8; 32] {
        blake3::derive_key("lode ticket-id v1", &self.payload)
    }

    /// The signed bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.sig
    }
}

/// A capability ticket: a chain of links (root first) plus unsigned address hints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub links: Vec<Link>,
    /// Where the dataset can be fetched (unsigned; only a hint).
    pub hints: Vec<Provider>,
}

#[derive(Serialize, Deserialize)]
struct BundleWire {
    version: u8,
    links: Vec<(Vec<u8>, Vec<u8>)>,
    hints: Vec<Provider>,
}

impl Bundle {
    /// The holder's link.
    pub fn leaf(&self) -> &Link {
        self.links.last().expect("a bundle has at least one link")
    }

    /// The dataset the ticket is for.
    pub fn dataset(&self) -> [u8; 32] {
        self.links[0].body.dataset
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let wire = BundleWire {
            version: VERSION,
            links: self
                .links
                .iter()
                .map(|l| (l.payload.clone(), l.sig.to_vec()))
                .collect(),
            hints: self.hints.clone(),
        };
        postcard::to_stdvec(&wire).expect("encodes")
    }

    /// Decodes strictly: size, link count, each link's signature and encoding, canonical form.
    /// Chain rules are checked by [`verify_chain`].
    pub fn decode(bytes: &[u8]) -> TResult<Bundle> {
        if bytes.len() > MAX_BUNDLE {
            return Err(TrustError::TooLarge("ticket"));
        }
        let (wire, rest): (BundleWire, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| TrustError::Malformed("ticket", e.to_string()))?;
        if !rest.is_empty() {
            return Err(TrustError::Malformed("ticket", "trailing bytes".into()));
        }
        if wire.version != VERSION {
            return Err(TrustError::Malformed("ticket", "unknown version".into()));
        }
        if wire.links.is_empty() || wire.links.len() > MAX_LINKS {
            return Err(TrustError::Malformed("ticket", "needs 1 to 5 links".into()));
        }
        if wire.hints.len() > 16 {
            return Err(TrustError::TooLarge("ticket hints"));
        }
        if postcard::to_stdvec(&wire).expect("encodes") != bytes {
            return Err(TrustError::NonCanonical("ticket"));
        }
        let mut links = Vec::new();
        for (i, (payload, sig)) in wire.links.iter().enumerate() {
            links.push(Link::open(payload, sig).map_err(|e| match e {
                TrustError::BadSignature(_) => TrustError::BadSignature(format!("link {i}")),
                e => e,
            })?);
        }
        Ok(Bundle {
            links,
            hints: wire.hints,
        })
    }
}

impl fmt::Display for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = data_encoding::BASE32_NOPAD.encode(&self.encode());
        write!(f, "{BUNDLE_PREFIX}{}", text.to_ascii_lowercase())
    }
}

fn decode_text(prefix: &str, what: &'static str, s: &str) -> TResult<Vec<u8>> {
    let body = s
        .trim()
        .strip_prefix(prefix)
        .ok_or_else(|| TrustError::Malformed(what, format!("does not start with {prefix:?}")))?;
    if body.len() > MAX_BUNDLE * 2 {
        return Err(TrustError::TooLarge(what));
    }
    data_encoding::BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .map_err(|_| TrustError::Malformed(what, "not valid base32 (cut while copying?)".into()))
}

impl FromStr for Bundle {
    type Err = TrustError;
    fn from_str(s: &str) -> TResult<Bundle> {
        Bundle::decode(&decode_text(BUNDLE_PREFIX, "ticket", s)?)
    }
}

/// True when a string looks like a capability ticket.
pub fn is_capability(s: &str) -> bool {
    s.trim().starts_with(BUNDLE_PREFIX)
}

/// What a revocation revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// One link (and every link delegated from it).
    Link([u8; 32]),
    /// Every link issued to or by a key.
    Key([u8; 32]),
}

/// The set of revoked links and keys a verifier knows.
#[derive(Clone, Debug, Default)]
pub struct Revoked {
    pub targets: HashSet<Target>,
}

impl Revoked {
    /// True when `t` is revoked.
    pub fn contains(&self, t: &Target) -> bool {
        self.targets.contains(t)
    }
}

/// What a valid chain allows its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    pub dataset: [u8; 32],
    pub holder: [u8; 32],
    pub rights: Rights,
    pub scope: Vec<String>,
    pub expires: u64,
    /// Re-delegations the holder may still make.
    pub depth: u8,
    /// Link ids, root first.
    pub chain: Vec<[u8; 32]>,
}

impl Capability {
    /// Fails unless the capability includes `right`.
    pub fn require(&self, right: Rights, what: &'static str) -> TResult<()> {
        if self.rights.contains(right) {
            Ok(())
        } else {
            Err(TrustError::Forbidden(what))
        }
    }
}

fn scope_within(child: &[String], parent: &[String]) -> bool {
    if parent.is_empty() {
        return true;
    }
    !child.is_empty() && child.iter().all(|c| in_scope(parent, c))
}

/// Checks a chain for `dataset` at time `now`: owner root, continuity, narrowing, validity
/// windows (± [`CLOCK_SKEW`]) and revocations. The caller compares the holder with the peer.
pub fn verify_chain(
    bundle: &Bundle,
    dataset: &[u8; 32],
    now: u64,
    revoked: &Revoked,
) -> TResult<Capability> {
    let root = &bundle.links[0].body;
    if &root.dataset != dataset {
        return Err(TrustError::WrongDataset {
            got: hex::encode(root.dataset),
            want: hex::encode(dataset),
        });
    }
    if root.issuer != *dataset {
        return Err(TrustError::NotOwnerRoot(hex::encode(root.issuer)));
    }
    if root.parent.is_some() {
        return Err(TrustError::BrokenChain(0, "a root link has no parent"));
    }
    let mut seen = HashSet::new();
    for (i, link) in bundle.links.iter().enumerate() {
        let b = &link.body;
        let id = link.id();
        if !seen.insert(id) {
            return Err(TrustError::BrokenChain(i, "a link repeats"));
        }
        if b.dataset != *dataset {
            return Err(TrustError::BrokenChain(i, "a link names another dataset"));
        }
        if now + CLOCK_SKEW < b.not_before {
            return Err(TrustError::NotYetValid(i, b.not_before, now));
        }
        if now >= b.expires + CLOCK_SKEW {
            return Err(TrustError::Expired(i, b.expires, now));
        }
        if revoked.contains(&Target::Link(id)) {
            return Err(TrustError::Revoked(i, hex::encode(id)));
        }
        for k in [&b.issuer, &b.audience] {
            if revoked.contains(&Target::Key(*k)) {
                return Err(TrustError::RevokedKey(hex::encode(k)));
            }
        }
        if i == 0 {
            continue;
        }
        let prev_link = &bundle.links[i - 1];
        let prev = &prev_link.body;
        if b.issuer != prev.audience {
            return Err(TrustError::BrokenChain(
                i,
                "issuer is not the previous holder",
            ));
        }
        if b.parent != Some(prev_link.id()) {
            return Err(TrustError::BrokenChain(
                i,
                "parent id does not match the previous link",
            ));
        }
        if !prev.rights.contains(Rights::GRANT) {
            return Err(TrustError::NoGrant(i));
        }
        if !prev.rights.contains(b.rights) {
            return Err(TrustError::Widens(i, "rights"));
        }
        if !scope_within(&b.scope, &prev.scope) {
            return Err(TrustError::Widens(i, "scope"));
        }
        if b.not_before < prev.not_before || b.expires > prev.expires {
            return Err(TrustError::Widens(i, "validity"));
        }
        if b.max_depth >= prev.max_depth {
            return Err(TrustError::Widens(i, "depth"));
        }
    }
    let leaf = &bundle.leaf().body;
    Ok(Capability {
        dataset: *dataset,
        holder: leaf.audience,
        rights: leaf.rights,
        scope: leaf.scope.clone(),
        expires: leaf.expires,
        depth: leaf.max_depth,
        chain: bundle.links.iter().map(Link::id).collect(),
    })
}

/// Verifies a presented ticket for `peer`: chain, then audience binding.
pub fn authorize(
    bundle: &Bundle,
    dataset: &[u8; 32],
    peer: &[u8; 32],
    now: u64,
    revoked: &Revoked,
) -> TResult<Capability> {
    let cap = verify_chain(bundle, dataset, now, revoked)?;
    if &cap.holder != peer {
        return Err(TrustError::WrongAudience {
            holder: hex::encode(cap.holder),
            peer: hex::encode(peer),
        });
    }
    Ok(cap)
}

/// Parameters of a new link.
pub struct Grant {
    pub audience: [u8; 32],
    pub rights: Rights,
    pub scope: Vec<String>,
    pub not_before: u64,
    pub expires: u64,
    pub max_depth: u8,
    pub note: String,
}

/// Issues a root link (when `parent` is `None`, `key` must be the dataset key) or delegates
/// from the holder's `parent` bundle (then `key` must be its holder). Delegation checks the
/// narrowing rules up front so the user hears about a widening at once.
pub fn issue(
    dataset: &[u8; 32],
    key: &SigningKey,
    parent: Option<&Bundle>,
    grant: Grant,
    now: u64,
) -> TResult<Bundle> {
    let mut nonce = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let body = LinkBody {
        version: VERSION,
        dataset: *dataset,
        issuer: key.verifying_key().to_bytes(),
        audience: grant.audience,
        parent: parent.map(|p| p.leaf().id()),
        rights: grant.rights,
        scope: grant.scope,
        not_before: grant.not_before,
        expires: grant.expires,
        max_depth: grant.max_depth,
        nonce,
        note: grant.note,
    };
    let link = Link::sign(body, key)?;
    let mut links = parent.map(|p| p.links.clone()).unwrap_or_default();
    if links.len() >= MAX_LINKS {
        return Err(TrustError::TooLarge("ticket chain"));
    }
    links.push(link);
    let bundle = Bundle {
        links,
        hints: parent.map(|p| p.hints.clone()).unwrap_or_default(),
    };
    verify_chain(
        &bundle,
        dataset,
        now.max(bundle.leaf().body.not_before),
        &Revoked::default(),
    )?;
    Ok(bundle)
}

/// The signed part of a revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationBody {
    pub version: u8,
    pub dataset: [u8; 32],
    pub revoker: [u8; 32],
    pub target: Target,
    pub time: u64,
    pub note: String,
}

/// A signed, irreversible revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub body: RevocationBody,
    payload: Vec<u8>,
    sig: [u8; 64],
}

impl Revocation {
    /// Signs a revocation of `target` with `key` (the dataset key).
    pub fn sign(
        dataset: &[u8; 32],
        key: &SigningKey,
        target: Target,
        time: u64,
        note: &str,
    ) -> TResult<Revocation> {
        check_text("note", note)?;
        let body = RevocationBody {
            version: VERSION,
            dataset: *dataset,
            revoker: key.verifying_key().to_bytes(),
            target,
            time,
            note: note.to_string(),
        };
        let (payload, sig) = sign_payload(REVOKE_CONTEXT, &body, key);
        Ok(Revocation { body, payload, sig })
    }

    /// The canonical bytes: payload then signature.
    pub fn encode(&self) -> Vec<u8> {
        [&self.payload[..], &self.sig[..]].concat()
    }

    /// Decodes and checks a revocation of `dataset`: signed by the dataset owner.
    pub fn decode(bytes: &[u8], dataset: &[u8; 32]) -> TResult<Revocation> {
        if bytes.len() < 64 {
            return Err(TrustError::Malformed("revocation", "truncated".into()));
        }
        let (payload, sig) = bytes.split_at(bytes.len() - 64);
        let (body, sig): (RevocationBody, _) =
            open_payload("revocation", REVOKE_CONTEXT, payload, sig, REVOKE_SIGNER_AT)?;
        if body.version != VERSION {
            return Err(TrustError::Malformed(
                "revocation",
                "unknown version".into(),
            ));
        }
        check_text("note", &body.note)?;
        if &body.dataset != dataset {
            return Err(TrustError::WrongDataset {
                got: hex::encode(body.dataset),
                want: hex::encode(dataset),
            });
        }
        if body.revoker != *dataset {
            return Err(TrustError::NotRevoker);
        }
        Ok(Revocation {
            body,
            payload: payload.to_vec(),
            sig,
        })
    }

    /// The revocation's id.
    pub fn id(&self) -> [u8; 32] {
        blake3::derive_key("lode revocation-id v1", &self.payload)
    }
}

/// The signed part of a head: the refs a writer published, with a growing sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadBody {
    pub version: u8,
    pub dataset: [u8; 32],
    pub signer: [u8; 32],
    pub seq: u64,
    pub main: Option<[u8; 32]>,
    pub tags: Vec<(String, [u8; 32])>,
    /// Ids of every revocation known to the signer, sorted: whoever serves this head must
    /// serve these revocations with it.
    pub revocations: Vec<[u8; 32]>,
    /// A restricted dataset: mirrors serve it only to ticket holders.
    pub private: bool,
    pub time: u64,
    /// When the signer is not the dataset key: its capability ticket, which must hold WRITE.
    pub chain: Vec<u8>,
}

/// A signed head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHead {
    pub body: HeadBody,
    payload: Vec<u8>,
    sig: [u8; 64],
}

impl SignedHead {
    /// Signs a head with `key` (the dataset key, or a writer whose ticket is in `chain`).
    pub fn sign(body: HeadBody, key: &SigningKey) -> SignedHead {
        let (payload, sig) = sign_payload(HEAD_CONTEXT, &body, key);
        SignedHead { body, payload, sig }
    }

    /// The canonical bytes: payload then signature.
    pub fn encode(&self) -> Vec<u8> {
        [&self.payload[..], &self.sig[..]].concat()
    }

    /// Decodes a head of `dataset` and checks that a writer signed it: the dataset key, or a
    /// key whose ticket holds WRITE, is not revoked and is valid at `now` (a writer whose
    /// ticket expired cannot publish by backdating a head). `now = None` checks the ticket at
    /// the head's own time: for a head this repository already verified and stored.
    pub fn decode(
        bytes: &[u8],
        dataset: &[u8; 32],
        revoked: &Revoked,
        now: Option<u64>,
    ) -> TResult<SignedHead> {
        if bytes.len() < 64 {
            return Err(TrustError::Malformed("head", "truncated".into()));
        }
        let (payload, sig) = bytes.split_at(bytes.len() - 64);
        let (body, sig): (HeadBody, _) =
            open_payload("head", HEAD_CONTEXT, payload, sig, HEAD_SIGNER_AT)?;
        if body.version != VERSION {
            return Err(TrustError::Malformed("head", "unknown version".into()));
        }
        if &body.dataset != dataset {
            return Err(TrustError::WrongDataset {
                got: hex::encode(body.dataset),
                want: hex::encode(dataset),
            });
        }
        if body.tags.len() > MAX_TAGS
            || body.tags.iter().any(|(n, _)| n.len() > MAX_TEXT)
            || body.revocations.len() > MAX_REVOCATIONS
        {
            return Err(TrustError::TooLarge("head"));
        }
        if !body.revocations.windows(2).all(|w| w[0] < w[1]) {
            return Err(TrustError::Malformed(
                "head",
                "revocation ids not sorted".into(),
            ));
        }
        if body.signer != *dataset {
            if body.chain.is_empty() {
                return Err(TrustError::NotWriter(hex::encode(body.signer)));
            }
            let bundle = Bundle::decode(&body.chain)?;
            let at = now.unwrap_or(body.time);
            let cap = authorize(&bundle, dataset, &body.signer, at, revoked)
                .map_err(|e| TrustError::NotWriter(e.to_string()))?;
            cap.require(Rights::WRITE, "write")
                .map_err(|e| TrustError::NotWriter(e.to_string()))?;
        } else if !body.chain.is_empty() {
            return Err(TrustError::Malformed(
                "head",
                "owner head carries a chain".into(),
            ));
        }
        Ok(SignedHead {
            body,
            payload: payload.to_vec(),
            sig,
        })
    }
}

/// The signed part of an identity card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardBody {
    pub version: u8,
    /// The device's ed25519 public key (its endpoint id).
    pub key: [u8; 32],
    /// The device's age X25519 recipient (`age1…`).
    pub age: String,
    pub created: u64,
}

/// A device's public identity: its ed25519 key and its age recipient, signed by the key;
/// from version 2 on, also the [`Person`] its holder claims to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    pub body: CardBody,
    /// The name (email, ORCID iD) signed into a version-2 card; `None` in version 1.
    pub person: Option<Person>,
    payload: Vec<u8>,
    sig: [u8; 64],
}

/// The version of a card that carries a person: its payload is version 1's body followed by
/// the postcard encoding of the [`Person`].
const CARD_PERSON_VERSION: u8 = 2;

impl Card {
    /// Makes the card of `key` with its age recipient, and the person its holder claims to
    /// be if any (a version-2 card; without one, version 1 as before).
    pub fn sign(
        key: &SigningKey,
        age: &str,
        created: u64,
        person: Option<&Person>,
    ) -> TResult<Card> {
        let body = CardBody {
            version: if person.is_some() {
                CARD_PERSON_VERSION
            } else {
                VERSION
            },
            key: key.verifying_key().to_bytes(),
            age: age.to_string(),
            created,
        };
        let person = person.cloned();
        Card::check(&body, person.as_ref())?;
        let (payload, sig) = match &person {
            None => sign_payload(CARD_CONTEXT, &body, key),
            Some(p) => sign_payload(CARD_CONTEXT, &(&body, p), key),
        };
        Ok(Card {
            body,
            person,
            payload,
            sig,
        })
    }

    fn check(body: &CardBody, person: Option<&Person>) -> TResult<()> {
        if let Some(p) = person {
            p.check()
                .map_err(|e| TrustError::Malformed("identity card", e))?;
        }
        let want = if person.is_some() {
            CARD_PERSON_VERSION
        } else {
            VERSION
        };
        if body.version != want {
            return Err(TrustError::Malformed(
                "identity card",
                "unknown version".into(),
            ));
        }
        if body.age.len() > 128 || age::x25519::Recipient::from_str(&body.age).is_err() {
            return Err(TrustError::Malformed(
                "identity card",
                "bad age recipient".into(),
            ));
        }
        Ok(())
    }

    /// The canonical bytes: payload then signature.
    pub fn encode(&self) -> Vec<u8> {
        [&self.payload[..], &self.sig[..]].concat()
    }

    /// Decodes a card and checks its self-signature.
    pub fn decode(bytes: &[u8]) -> TResult<Card> {
        if bytes.len() < 64 || bytes.len() > 1024 {
            return Err(TrustError::Malformed("identity card", "bad length".into()));
        }
        let (payload, sig) = bytes.split_at(bytes.len() - 64);
        let what = "identity card";
        let (body, person, sig) = if payload.first() == Some(&CARD_PERSON_VERSION) {
            let ((body, person), sig): ((CardBody, Person), _) =
                open_payload(what, CARD_CONTEXT, payload, sig, CARD_SIGNER_AT)?;
            (body, Some(person), sig)
        } else {
            let (body, sig): (CardBody, _) =
                open_payload(what, CARD_CONTEXT, payload, sig, CARD_SIGNER_AT)?;
            (body, None, sig)
        };
        Card::check(&body, person.as_ref())?;
        Ok(Card {
            body,
            person,
            payload: payload.to_vec(),
            sig,
        })
    }
}

impl fmt::Display for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = data_encoding::BASE32_NOPAD.encode(&self.encode());
        write!(f, "{CARD_PREFIX}{}", text.to_ascii_lowercase())
    }
}

impl FromStr for Card {
    type Err = TrustError;
    fn from_str(s: &str) -> TResult<Card> {
        Card::decode(&decode_text(CARD_PREFIX, "identity card", s)?)
    }
}

/// Parses a duration like `30d`, `12h`, `90m`, `3600s`, `2w` or `1y` into seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn grant(aud: &SigningKey, rights: Rights, depth: u8) -> Grant {
        Grant {
            audience: aud.verifying_key().to_bytes(),
            rights,
            scope: vec![],
            not_before: 1000,
            expires: 100_000,
            max_depth: depth,
            note: String::new(),
        }
    }

    #[test]
    fn cards_carry_a_person_only_as_version_2() {
        let k = key(4);
        let age = "age1gfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpqxkm8f4";
        let ana = Person::new("Ana Lee", Some("ana@lab.org"), None).unwrap();
        let plain = Card::sign(&k, age, 5, None).unwrap();
        assert_eq!(plain.body.version, 1);
        assert_eq!(Card::decode(&plain.encode()).unwrap().person, None);
        let named = Card::sign(&k, age, 5, Some(&ana)).unwrap();
        assert_eq!(named.body.version, 2);
        let back: Card = named.to_string().parse().unwrap();
        assert_eq!(back.person.as_ref(), Some(&ana));
        // Signed correctly but with the wrong version for what follows: refused.
        let mut body = named.body.clone();
        body.version = 1;
        let (p, sig) = sign_payload(CARD_CONTEXT, &(&body, &ana), &k);
        assert!(Card::decode(&[&p[..], &sig[..]].concat()).is_err());
        let mut body = plain.body.clone();
        body.version = 2;
        let (p, sig) = sign_payload(CARD_CONTEXT, &body, &k);
        assert!(Card::decode(&[&p[..], &sig[..]].concat()).is_err());
    }

    #[test]
    fn chain_roundtrip_and_rules() {
        let owner = key(1);
        let ds = owner.verifying_key().to_bytes();
        let (b, c) = (key(2), key(3));
        let root = issue(
            &ds,
            &owner,
            None,
            grant(&b, Rights::READ.with(Rights::GRANT), 2),
            2000,
        )
        .unwrap();
        let text = root.to_string();
        let back: Bundle = text.parse().unwrap();
        assert_eq!(back, root);
        let del = issue(&ds, &b, Some(&root), grant(&c, Rights::READ, 1), 2000).unwrap();
        let cap = authorize(
            &del,
            &ds,
            &c.verifying_key().to_bytes(),
            2000,
            &Revoked::default(),
        )
        .unwrap();
        assert_eq!(cap.rights, Rights::READ);
        // Widening rights fails at issue time.
        let err = issue(&ds, &b, Some(&root), grant(&c, Rights::WRITE, 1), 2000).unwrap_err();
        assert_eq!(err, TrustError::Widens(1, "rights"));
        // Stolen: presented by b.
        let err = authorize(
            &del,
            &ds,
            &b.verifying_key().to_bytes(),
            2000,
            &Revoked::default(),
        )
        .unwrap_err();
        assert!(matches!(err, TrustError::WrongAudience { .. }));
        let mut rev = Revoked::default();
        rev.targets.insert(Target::Link(root.leaf().id()));
        let err = verify_chain(&del, &ds, 2000, &rev).unwrap_err();
        assert!(matches!(err, TrustError::Revoked(0, _)));
    }

    #[test]
    fn scopes() {
        assert!(path_under("a/b", "a"));
        assert!(!path_under("ab", "a"));
        assert!(scope_within(&["a/b".into()], &["a".into()]));
        assert!(!scope_within(&[], &["a".into()]));
        assert!(on_scope_path(&["a/b".into()], "a"));
        assert!(!on_scope_path(&["a/b".into()], "c"));
        assert_eq!(
            normalize_scope(&["./a/".into(), "a".into()]).unwrap(),
            vec!["a".to_string()]
        );
        assert!(normalize_scope(&["../x".into()]).is_err());
        assert_eq!(parse_duration("30d"), Some(30 * 86_400));
        assert_eq!(parse_duration("30"), None);
    }
}
