//! Capability tickets: signed links, chains of them (`Bundle`, the `lodecap1…` text form),
//! the chain rules and issuing.
//!
//! Invariants: a link is valid only as part of a chain whose root is signed by the dataset key
//! itself; each next link is issued by the previous audience, names the previous link id as
//! parent, and only narrows rights, scope, validity and depth; tickets are bound to their
//! holder (the leaf audience must be the peer presenting it).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ticket::Provider;

use super::error::{TResult, TrustError};
use super::revoke::{Revoked, Target};
use super::rights::{scope_within, valid_prefix, Rights, MAX_SCOPE};
use super::signed::{check_text, decode_text, encode_text, Body, Signed, MAX_BUNDLE, VERSION};

/// Context of capability-link signatures.
pub const TICKET_CONTEXT: &[u8] = b"lode/ticket/v1\0";
/// Tolerated clock difference between peers, in seconds.
pub const CLOCK_SKEW: u64 = 60;
/// Most links in a chain.
pub const MAX_LINKS: usize = 5;

const BUNDLE_PREFIX: &str = "lodecap1";

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
pub type Link = Signed<LinkBody>;

impl Body for LinkBody {
    const WHAT: &'static str = "ticket";
    const CONTEXT: &'static [u8] = TICKET_CONTEXT;
    const SIGNER_AT: usize = 1 + 32;
    // Every signature over the same payload has the same id, so a revocation covers them all.
    const ID_KEY: Option<&'static str> = Some("lode ticket-id v1");

    fn fmt_signed(link: &Link, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Link({})", hex::encode(&link.id()[..8]))
    }
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
        Ok(Signed::seal(body, key))
    }

    /// Reads a link from its payload and signature (signature first, then strict decoding).
    pub fn open(payload: &[u8], sig: &[u8]) -> TResult<Link> {
        let link: Link = Signed::open_parts(payload, sig)?;
        link.body.check()?;
        Ok(link)
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
                .map(|l| (l.payload().to_vec(), l.signature().to_vec()))
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
        f.write_str(&encode_text(BUNDLE_PREFIX, &self.encode()))
    }
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
    fn durations() {
        assert_eq!(parse_duration("30d"), Some(30 * 86_400));
        assert_eq!(parse_duration("30"), None);
    }
}
