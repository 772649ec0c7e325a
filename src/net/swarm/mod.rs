//! Swarm distribution: every downloader of a public dataset serves the other downloaders
//! while it fetches, so that a crowd is not limited by the publisher's uplink.
//!
//! - [`announce`]: signed announcements ("this endpoint takes part in dataset D's swarm") and
//!   the bounded [`announce::PeerBook`] they fill.
//! - [`membership`]: iroh-gossip topics (one per dataset, bootstrapped from the ticket's
//!   providers) and the tracker answer of serving peers (`Peers` on `lode/2`).
//! - [`meter`]: bytes sent to each peer and the upload cap.
//! - [`session`]: a downloader's sharing session: its blob store, gatekeeper and seeding.
//! - [`dial`]: the connections of one download: its origins and the swarm peers the book
//!   names, bounded.
//! - [`pieces`]: one big object from the origins and every swarm peer that holds its
//!   pieces: bitfields, rarest first, an end game, bad peers named and dropped.
//! - [`small`]: many small objects in `GetMany` batches dealt across the origins and the
//!   swarm peers that hold them.

pub mod announce;
pub mod dial;
pub mod membership;
pub mod meter;
pub mod pieces;
pub mod session;
pub mod small;

pub use session::{Session, SwarmReport};

pub use crate::net::endpoint::ShareOptions;
