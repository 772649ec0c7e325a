//! The lode protocol (ALPN `lode/2`): ref listing and push negotiation between peers. One request per
//! bidirectional stream: the client writes one postcard-encoded [`Request`] and finishes the
//! stream; the server answers with one [`Response`]. Messages are bounded to
//! [`MAX_MESSAGE`] bytes. Blob bytes never travel here: they move over iroh-blobs.
//!
//! A peer that speaks another version has another ALPN: the QUIC handshake then fails and the
//! client reports that the peer does not speak `lode/2`. Version 2 added capability tickets
//! and signed heads.

use serde::{Deserialize, Serialize};

use crate::id::ObjectId;

/// ALPN of this protocol version.
pub const ALPN: &[u8] = b"lode/2";
/// The protocol name, for messages.
pub const NAME: &str = "lode/2";
/// Longest a `WaitHead` is held, in seconds.
pub const MAX_WAIT: u64 = 60;
/// Largest request or response.
pub const MAX_MESSAGE: usize = 1 << 20;

/// What a client asks.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The signed head and revocations of a served dataset. `ticket` is the client's
    /// capability ticket (required for a restricted dataset).
    ListRefs {
        dataset: [u8; 32],
        ticket: Option<Vec<u8>>,
    },
    /// Asks the server to fetch `new` (and what it lacks of its closure) from `from` and
    /// move its `main` from `old` to `new`: fast-forward only unless `force`; refused when
    /// `main` is no longer `old` (another push won).
    Push {
        dataset: [u8; 32],
        old: Option<ObjectId>,
        new: ObjectId,
        force: bool,
        from: crate::ticket::Provider,
        /// The pusher's capability ticket: it must hold WRITE.
        ticket: Option<Vec<u8>>,
        /// The sequence number of the newest head the pusher has seen.
        seq: u64,
    },
    /// New revocations of a dataset (each signed by its owner), sent by `lode revoke` to
    /// known peers so that they apply them at once rather than with their next fetch.
    Revoke {
        dataset: [u8; 32],
        revocations: Vec<Vec<u8>>,
    },
    /// A subscription (long poll): answered with the listing as soon as the served head's
    /// sequence number exceeds `seq`, or after `wait` seconds (at most 60) with the current
    /// one. Mirrors use it to follow a dataset as it changes. A peer that predates it answers
    /// `Error`, and the follower falls back to polling.
    WaitHead {
        dataset: [u8; 32],
        ticket: Option<Vec<u8>>,
        seq: u64,
        wait: u64,
    },
    /// The swarm peers this server heard announce themselves for a public dataset (signed
    /// announcements, `net::swarm::announce`): what a tracker hands out. A peer that predates
    /// it answers `Error`.
    Peers {
        dataset: [u8; 32],
        ticket: Option<Vec<u8>>,
    },
}

/// What a server answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Refs(Listing),
    /// The push landed: `main` is now `head`; the server fetched `objects` objects,
    /// `bytes` payload bytes, from the pusher.
    Pushed {
        head: ObjectId,
        objects: u64,
        bytes: u64,
    },
    /// The push was refused (stale, not a fast-forward, dirty working tree...).
    Rejected(String),
    /// The revocations were checked and stored; `new` of them were not known before.
    Revoked {
        new: u64,
    },
    /// The request was refused or failed; the text says why.
    Error(String),
    /// The request is not authorized (checked before any lookup); the text says why.
    Denied(String),
    /// Signed swarm announcements (an answer to `Peers`).
    Peers(Vec<Vec<u8>>),
}

/// A dataset's signed head (`trust::SignedHead` bytes) and every revocation the server
/// knows (`trust::Revocation` bytes): the head lists the revocations that must be among them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    pub head: Vec<u8>,
    pub revocations: Vec<Vec<u8>>,
}

/// Encodes a message.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    postcard::to_stdvec(msg).expect("postcard encodes in-memory values")
}

/// Decodes a message, rejecting trailing bytes.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let (v, rest) = postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(v)
}
