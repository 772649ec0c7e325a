//! Why a capability, card, head, revocation or catalog object was refused.

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

pub(crate) type TResult<T> = std::result::Result<T, TrustError>;
