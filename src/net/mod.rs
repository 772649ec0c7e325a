//! Peer-to-peer sync over iroh. Only this module imports iroh and iroh-blobs.
//!
//! - the copy-paste ticket is [`crate::ticket`]: plain types, below `net`, as trust and the
//!   catalog use them too.
//! - [`endpoint`]: endpoints from the device key; relays/discovery on for users, off for
//!   direct-address use.
//! - [`limit`]: per-peer request rate and concurrency bounds of a serving peer.
//! - [`proto`]: the `lode/2` protocol (ref listing), versioned by ALPN, bounded messages.
//! - [`serve`]: `lode serve`: iroh-blobs with every request checked against the served
//!   closure, plus `lode/2`.
//! - [`fetch`]: `clone`, `fetch`, `pull`, `get`: verified, resumable, multi-provider.
//! - [`pieces`]: verified chunk-range streaming; one big object from several providers.
//! - [`push`]: `push`, and sending revocations to known peers.
//! - [`mirror`]: `lode mirror add|list|remove` and following mirrored datasets.
//! - [`registry`]: `lode registry serve`, `publish`, `search`, clone by name; signed entries
//!   and taint notices, replicated between registries.
//! - [`swarm`]: every downloader serves the others: gossip membership, signed announcements,
//!   pieces from every peer that holds them.
//! - [`transfer_store`]: the resumable iroh-blobs stores downloads write into.
//! - [`uri`]: `lode://` referral URIs, resolved through the providers seen before.
//! - [`volunteer`]: `lode mirror volunteer`: storage managers offer registries to mirror a
//!   subject, adopt matching datasets at each follow round and send signed holding records.
//! - [`challenge`]: honesty challenges of holding records: a random range of a random file
//!   of the head claimed, verified against its BLAKE3 id.
//! - [`source`]: a URI or ticket argument resolved to providers, capability, paths, revision.

pub mod challenge;
pub mod endpoint;
pub mod fetch;
pub mod limit;
pub mod mirror;
pub mod pieces;
pub mod proto;
pub mod push;
pub mod registry;
pub mod serve;
pub mod source;
pub mod swarm;
pub mod transfer_store;
pub mod uri;
pub mod volunteer;
