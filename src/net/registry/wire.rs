//! The registry protocol: its ALPN and bounds, requests and answers, and the items registries replicate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ticket::Provider;

/// ALPN of the registry protocol (4: entries carry the copies asked for; offers listed;
/// holding records challenged).
pub const ALPN: &[u8] = b"lode-registry/4";
/// ALPN of the previous registry protocol: a peer that speaks it gets an error telling it
/// to upgrade (its `Response::Error` has the same encoding).
pub(super) const OLD_ALPN: &[u8] = b"lode-registry/3";
/// Largest request or answer.
pub(super) const MAX_MESSAGE: usize = 8 << 20;

/// Most holding records one `Hold` request carries.
pub(super) const MAX_HOLD_BATCH: usize = 1_000;

/// How long one request may take.
pub(super) const WAIT: Duration = Duration::from_secs(20);

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
    /// Entries, notices, approvals, storage offers and holding records a peer registry
    /// forwards.
    Offer {
        entries: Vec<Vec<u8>>,
        notices: Vec<Vec<u8>>,
        approvals: Vec<Vec<u8>>,
        volunteers: Vec<Vec<u8>>,
        holdings: Vec<Vec<u8>>,
    },
    /// Anti-entropy: what the asking registry holds (entry ids with sequence numbers,
    /// notice, approval, offer and holding-record ids) and how to reach it; the answer is
    /// what it lacks.
    Sync {
        from: Provider,
        have: Vec<([u8; 32], u64, [u8; 32])>,
        notices: Vec<[u8; 32]>,
        approvals: Vec<[u8; 32]>,
        volunteers: Vec<[u8; 32]>,
        holdings: Vec<[u8; 32]>,
    },
    /// A publisher approval from this registry's operator (signed by the registry key).
    Approve { approval: Vec<u8> },
    /// Every approval this registry holds (its own and its peers').
    Approvals,
    /// A storage manager's offer (signed by its device key).
    Volunteer { offer: Vec<u8> },
    /// Holding records of a storage manager that volunteered here (signed by its device key).
    Hold { records: Vec<Vec<u8>> },
    /// The holding records of `dataset` (all of them when `None`).
    Holdings { dataset: Option<[u8; 32]> },
    /// Every storage offer this registry holds.
    Volunteers,
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
        volunteers: Vec<Vec<u8>>,
        holdings: Vec<Vec<u8>>,
        peers: Vec<Provider>,
    },
    Approvals(Vec<Vec<u8>>),
    Holdings(Vec<Vec<u8>>),
    /// Keep it the eighth variant: peers of older protocols decode it (see `OLD_ALPNS`).
    Error(String),
    Volunteers(Vec<Vec<u8>>),
}

/// What a registry holds, in short: (dataset id, entry seq, entry id), then the ids of its
/// notices, approvals, offers and holding records.
pub(super) struct Digest {
    pub(super) entries: Vec<([u8; 32], u64, [u8; 32])>,
    pub(super) notices: Vec<[u8; 32]>,
    pub(super) approvals: Vec<[u8; 32]>,
    pub(super) volunteers: Vec<[u8; 32]>,
    pub(super) holdings: Vec<[u8; 32]>,
}

/// Signed items registries replicate.
#[derive(Default)]
pub(super) struct Items {
    pub(super) entries: Vec<Vec<u8>>,
    pub(super) notices: Vec<Vec<u8>>,
    pub(super) approvals: Vec<Vec<u8>>,
    pub(super) volunteers: Vec<Vec<u8>>,
    pub(super) holdings: Vec<Vec<u8>>,
}

impl Items {
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(super) fn len(&self) -> usize {
        self.entries.len()
            + self.notices.len()
            + self.approvals.len()
            + self.volunteers.len()
            + self.holdings.len()
    }
}
