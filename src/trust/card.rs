//! Identity cards (`lodeid1…`): a device's ed25519 key and its age recipient, signed by the
//! key.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::error::{TResult, TrustError};
use super::signed::{decode_text, encode_text, Body, Signed, VERSION};
use crate::person::Person;

/// Context of identity cards.
pub const CARD_CONTEXT: &[u8] = b"lode/idcard/v1\0";

const CARD_PREFIX: &str = "lodeid1";

/// The version of a card that carries a person: its payload is version 1's body followed by
/// the postcard encoding of the [`Person`].
pub const CARD_PERSON_VERSION: u8 = 2;

/// The signed part of an identity card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardBody {
    pub version: u8,
    /// The device's ed25519 public key (its endpoint id).
    pub key: [u8; 32],
    /// The device's age X25519 recipient (`age1…`).
    pub age: String,
    /// When the device key was made (seconds since the epoch; 0 when unknown).
    pub created: u64,
    /// The name (email, ORCID iD) signed into a version-2 card; `None` in version 1.
    pub person: Option<Person>,
}

// Encoded as the tuple (version, key, age, created) and, in version 2 only, the person after
// it: a version-1 card is byte for byte what it always was.
impl Serialize for CardBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(4 + usize::from(self.person.is_some()))?;
        t.serialize_element(&self.version)?;
        t.serialize_element(&self.key)?;
        t.serialize_element(&self.age)?;
        t.serialize_element(&self.created)?;
        if let Some(p) = &self.person {
            t.serialize_element(p)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for CardBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CardBody, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CardBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identity card body")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CardBody, A::Error> {
                use serde::de::Error;
                let missing = || A::Error::custom("truncated identity card");
                let version: u8 = seq.next_element()?.ok_or_else(missing)?;
                let key: [u8; 32] = seq.next_element()?.ok_or_else(missing)?;
                let age: String = seq.next_element()?.ok_or_else(missing)?;
                let created: u64 = seq.next_element()?.ok_or_else(missing)?;
                let person = if version == CARD_PERSON_VERSION {
                    Some(seq.next_element::<Person>()?.ok_or_else(missing)?)
                } else {
                    None
                };
                Ok(CardBody {
                    version,
                    key,
                    age,
                    created,
                    person,
                })
            }
        }
        d.deserialize_tuple(5, V)
    }
}

/// A device's public identity: its ed25519 key and its age recipient, signed by the key;
/// from version 2 on, also the [`Person`] its holder claims to be.
pub type Card = Signed<CardBody>;

impl Body for CardBody {
    const WHAT: &'static str = "identity card";
    const CONTEXT: &'static [u8] = CARD_CONTEXT;
    const SIGNER_AT: usize = 1;
}

impl Card {
    /// Makes the card of `key` with its age recipient, and the person its holder claims to
    /// be if any (a version-2 card; without one, version 1 as before).
    pub fn sign(
        key: &SigningKey,
        age: &str,
        created: u64,
        person: Option<&Person>,
    ) -> TResult<Card> {
        let body = CardBody {
            version: if person.is_some() {
                CARD_PERSON_VERSION
            } else {
                VERSION
            },
            key: key.verifying_key().to_bytes(),
            age: age.to_string(),
            created,
            person: person.cloned(),
        };
        Card::check(&body)?;
        Ok(Signed::seal(body, key))
    }

    /// The person the card's holder claims to be (version 2), if any.
    pub fn person(&self) -> Option<&Person> {
        self.body.person.as_ref()
    }

    fn check(body: &CardBody) -> TResult<()> {
        if let Some(p) = &body.person {
            p.check()
                .map_err(|e| TrustError::Malformed("identity card", e))?;
        }
        let want = if body.person.is_some() {
            CARD_PERSON_VERSION
        } else {
            VERSION
        };
        if body.version != want {
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

#[cfg(test)]
mod tests {
    use super::super::signed::sign_payload;
    use super::*;

    #[test]
    fn cards_carry_a_person_only_as_version_2() {
        let k = SigningKey::from_bytes(&[4u8; 32]);
        let age = "age1gfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpqxkm8f4";
        let ana = Person::new("Ana Lee", Some("ana@lab.org"), None).unwrap();
        let plain = Card::sign(&k, age, 5, None).unwrap();
        assert_eq!(plain.body.version, 1);
        assert_eq!(Card::decode(&plain.encode()).unwrap().person(), None);
        let named = Card::sign(&k, age, 5, Some(&ana)).unwrap();
        assert_eq!(named.body.version, 2);
        let back: Card = named.to_string().parse().unwrap();
        assert_eq!(back.person(), Some(&ana));
        // Signed correctly but with the wrong version for what follows: refused.
        let mut body = named.body.clone();
        body.version = 1;
        let (p, sig) = sign_payload(CARD_CONTEXT, &(&body, &ana), &k);
        assert!(Card::decode(&[&p[..], &sig[..]].concat()).is_err());
        let mut body = plain.body.clone();
        body.version = 2;
        let (p, sig) = sign_payload(CARD_CONTEXT, &body, &k);
        assert!(Card::decode(&[&p[..], &sig[..]].concat()).is_err());
    }
}
