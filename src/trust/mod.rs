//! Capabilities: identity cards, capability tickets (chains of signed links), revocations and
//! signed heads. Pure: no I/O, no clock (callers pass `now`). See docs/SECURITY.md.
//!
//! Files, by role: `signed` — the one signed-object encoding (`Signed<B>`: body, payload,
//! signature), shared with `catalog`; `error` — `TrustError`; `rights` — rights and path
//! scopes; `chain` — links, tickets (`Bundle`), the chain rules and issuing; `revoke` —
//! revocations; `head` — signed heads; `card` — identity cards.

mod card;
mod chain;
mod error;
mod head;
mod revoke;
mod rights;
mod signed;

pub use card::{Card, CardBody, CARD_CONTEXT};
pub use chain::{
    authorize, is_capability, issue, parse_duration, verify_chain, Bundle, Capability, Grant, Link,
    LinkBody, CLOCK_SKEW, MAX_LINKS, TICKET_CONTEXT,
};
pub use error::TrustError;
pub use head::{HeadBody, SignedHead, HEAD_CONTEXT, MAX_REVOCATIONS, MAX_TAGS};
pub use revoke::{Revocation, RevocationBody, Revoked, Target, REVOKE_CONTEXT};
pub use rights::{
    in_scope, normalize_scope, on_scope_path, path_under, valid_prefix, Rights, MAX_SCOPE,
};
#[cfg(test)]
pub(crate) use signed::sign_payload;
pub use signed::{Body, Signed, MAX_BUNDLE, MAX_SIGNED, MAX_TEXT};
