//! The lode protocol (ALPN `lode/1`): ref listing between peers. One request per
//! bidirectional stream: the client writes one postcard-encoded [`Request`] and finishes the
//! stream; the server answers with one [`Response`]. Messages are bounded to
//! [`MAX_MESSAGE`] bytes. Blob bytes never travel here: they move over iroh-blobs.
//!
//! A peer that speaks another version has another ALPN: the QUIC handshake then fails and the
//! client reports that the peer does not speak `lode/1`.

use serde::{Deserialize, Serialize};

use crate::id::ObjectId;

/// ALPN of this protocol version.
pub const ALPN: &[u8] = b"lode/1";
/// Largest request or response.
pub const MAX_MESSAGE: usize = 1 << 20;

/// What a client asks.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The refs of a served dataset.
    ListRefs { dataset: [u8; 32] },
    /// Asks the server to fetch `new` (and what it lacks of its closure) from `from` and
    /// move its `main` from `old` to `new`: fast-forward only unless `force`; refused when
    /// `main` is no longer `old` (another push won).
    Push {
        dataset: [u8; 32],
        old: Option<ObjectId>,
        new: ObjectId,
        force: bool,
        from: crate::net::ticket::Provider,
    },
}

/// What a server answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Refs(Refs),
    /// The push landed: `main` is now `head`; the server fetched `objects` objects,
    /// `bytes` payload bytes, from the pusher.
    Pushed {
        head: ObjectId,
        objects: u64,
        bytes: u64,
    },
    /// The push was refused (stale, not a fast-forward, dirty working tree...).
    Rejected(String),
    /// The request was refused or failed; the text says why.
    Error(String),
}

/// A dataset's published refs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refs {
    /// The commit of the `main` branch, if any.
    pub head: Option<ObjectId>,
    /// Tags, by name.
    pub tags: Vec<(String, ObjectId)>,
}

impl Refs {
    /// Returns the commits the refs name: `main`, then the tags.
    pub fn roots(&self) -> Vec<ObjectId> {
        self.head
            .iter()
            .copied()
            .chain(self.tags.iter().map(|(_, id)| *id))
            .collect()
    }
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
