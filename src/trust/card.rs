//! Identity cards (`lodeid1…`): a device's ed25519 key and its age recipient, signed by the
//! key.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::error::{TResult, TrustError};
use super::signed::{decode_text, encode_text, Body, Signed, VERSION};

/// Context of identity cards.
pub const CARD_CONTEXT: &[u8] = b"lode/idcard/v1\0";

const CARD_PREFIX: &str = "lodeid1";

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

/// A device's public identity: its ed25519 key and its age recipient, signed by the key.
pub type Card = Signed<CardBody>;

impl Body for CardBody {
    const WHAT: &'static str = "identity card";
    const CONTEXT: &'static [u8] = CARD_CONTEXT;
    const SIGNER_AT: usize = 1;
}

impl Card {
    /// Makes the card of `key` with its age recipient.
    pub fn sign(key: &SigningKey, age: &str, created: u64) -> TResult<Card> {
        let body = CardBody {
            version: VERSION,
            key: key.verifying_key().to_bytes(),
            age: age.to_string(),
            created,
        };
        Card::check(&body)?;
        Ok(Signed::seal(body, key))
    }

    fn check(body: &CardBody) -> TResult<()> {
        if body.version != VERSION {
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

    /// Decodes a card and checks its self-signature.
    pub fn decode(bytes: &[u8]) -> TResult<Card> {
        if bytes.len() < 64 || bytes.len() > 1024 {
            return Err(TrustError::Malformed("identity card", "bad length".into()));
        }
        let card: Card = Signed::open_bytes(bytes)?;
        Card::check(&card.body)?;
        Ok(card)
    }
}

impl fmt::Display for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_text(CARD_PREFIX, &self.encode()))
    }
}

impl FromStr for Card {
    type Err = TrustError;
    fn from_str(s: &str) -> TResult<Card> {
        Card::decode(&decode_text(CARD_PREFIX, "identity card", s)?)
    }
}
