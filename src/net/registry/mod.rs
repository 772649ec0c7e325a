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
//! Volunteers: a storage manager offers to mirror datasets of some subjects (or all) within a
//! quota (`lode mirror volunteer`, an offer signed by its device key); once it adopts a
//! dataset it sends holding records (signed, the head it holds), which `lode copies` counts.
//! Both replicate like entries: the newest offer per device, the newest record per (dataset,
//! device), records only from devices that volunteered, at most 10,000 per device.
//! A publisher asks for N copies in its entry (`lode publish --copies N`); volunteers stop
//! adopting once N others hold the head. Every `--challenge` seconds a registry challenges a
//! few random holding records (`net::challenge`) and drops those that fail, for good.
//!
//! Names: a registry refuses to list a name another dataset already holds there (first come);
//! replication may still bring two datasets under one name from two registries, and then
//! `clone NAME` refuses to choose and lists both.

mod client;
mod node;
mod store;
mod wire;

pub use client::{
    approvals, approve, copies, hold_raw, holdings, holdings_of, known, notices, notices_raw,
    publish, publish_signed, remember, resolve, resolve_known, search, taint, volunteer_raw,
    Copies, CopiesAsked, HeadCopies, Published,
};
pub use node::serve;
pub use store::{
    default_dir, registry_key, Policy, Registry, DEFAULT_CHALLENGE, DEFAULT_PER_PEER,
    DEFAULT_PER_PUBLISHER,
};
pub(crate) use store::{read_tickets, write_atomic, write_tickets};
pub use wire::{Request, Response, ALPN};
