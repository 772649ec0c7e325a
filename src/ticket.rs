//! Tickets: one copy-paste string naming a dataset and the peers that provide it.
//!
//! Format: `lode1` followed by lowercase unpadded base32 of a postcard-encoded
//! [`Ticket`] (docs/FORMAT.md). Decoding is strict and bounded: at most 16 providers, 16
//! addresses each, a 256-byte relay URL, 4 KiB in all; the bytes must re-encode identically.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const PREFIX: &str = "lode1";
const REGISTRY_PREFIX: &str = "lodereg1";
const MAX_TICKET_CHARS: usize = 4096;
const MAX_PROVIDERS: usize = 16;
const MAX_ADDRS: usize = 16;
const MAX_RELAY: usize = 256;

/// A peer that serves a dataset: its endpoint id and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// The peer's ed25519 public key (its iroh endpoint id).
    pub id: [u8; 32],
    /// Direct socket addresses.
    pub addrs: Vec<SocketAddr>,
    /// A relay URL, when the peer uses one.
    pub relay: Option<String>,
}

/// A dataset and its providers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The dataset id (public key of the dataset key).
    pub dataset: [u8; 32],
    pub providers: Vec<Provider>,
}

/// A ticket string could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("a ticket starts with {PREFIX:?}")]
    Prefix,
    #[error("a registry ticket starts with {REGISTRY_PREFIX:?}")]
    RegistryPrefix,
    #[error("this is a registry ticket (lodereg1…): pass it with --registry")]
    IsRegistry,
    #[error("ticket is longer than {MAX_TICKET_CHARS} characters")]
    TooLong,
    #[error("ticket is not valid base32 (was it cut or changed while copying?)")]
    Encoding,
    #[error("ticket is malformed: {0}")]
    Body(String),
    #[error("ticket names no provider")]
    NoProvider,
}

impl Ticket {
    fn check(&self) -> Result<(), TicketError> {
        let valid_key = |k: &[u8; 32]| ed25519_dalek::VerifyingKey::from_bytes(k).is_ok();
        if !valid_key(&self.dataset) || !self.providers.iter().all(|p| valid_key(&p.id)) {
            return Err(TicketError::Body("invalid dataset or endpoint id".into()));
        }
        if self.providers.is_empty() {
            return Err(TicketError::NoProvider);
        }
        if self.providers.len() > MAX_PROVIDERS {
            return Err(TicketError::Body("too many providers".into()));
        }
        for p in &self.providers {
            if p.addrs.len() > MAX_ADDRS || p.relay.as_ref().is_some_and(|r| r.len() > MAX_RELAY) {
                return Err(TicketError::Body("provider entry too large".into()));
            }
        }
        Ok(())
    }
}

impl Ticket {
    fn write(&self, prefix: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = postcard::to_stdvec(self).map_err(|_| fmt::Error)?;
        let text = data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase();
        write!(f, "{prefix}{text}")
    }

    fn read(prefix: &str, s: &str) -> Result<Ticket, TicketError> {
        let s = s.trim();
        if s.len() > MAX_TICKET_CHARS {
            return Err(TicketError::TooLong);
        }
        if prefix == PREFIX && s.starts_with(REGISTRY_PREFIX) {
            return Err(TicketError::IsRegistry);
        }
        let body = s.strip_prefix(prefix).ok_or(if prefix == PREFIX {
            TicketError::Prefix
        } else {
            TicketError::RegistryPrefix
        })?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| TicketError::Encoding)?;
        let (ticket, rest): (Ticket, _) =
            postcard::take_from_bytes(&bytes).map_err(|e| TicketError::Body(e.to_string()))?;
        if !rest.is_empty() {
            return Err(TicketError::Body(format!("{} trailing bytes", rest.len())));
        }
        ticket.check()?;
        if postcard::to_stdvec(&ticket).ok().as_deref() != Some(&bytes[..]) {
            return Err(TicketError::Body("non-canonical encoding".into()));
        }
        Ok(ticket)
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(PREFIX, f)
    }
}

impl FromStr for Ticket {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Ticket, TicketError> {
        Ticket::read(PREFIX, s)
    }
}

/// A registry's ticket (`lodereg1…`): the same encoding as a dataset ticket, where the id is
/// the registry's key (which signs its taint notices) and the providers are its endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryTicket(pub Ticket);

impl RegistryTicket {
    /// The registry's key.
    pub fn key(&self) -> [u8; 32] {
        self.0.dataset
    }
}

impl fmt::Display for RegistryTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(REGISTRY_PREFIX, f)
    }
}

impl FromStr for RegistryTicket {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<RegistryTicket, TicketError> {
        Ticket::read(REGISTRY_PREFIX, s).map(RegistryTicket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ticket {
        Ticket {
            dataset: ed25519_dalek::SigningKey::from_bytes(&[5; 32])
                .verifying_key()
                .to_bytes(),
            providers: vec![Provider {
                id: ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                    .verifying_key()
                    .to_bytes(),
                addrs: vec![
                    "127.0.0.1:4433".parse().unwrap(),
                    "[::1]:4433".parse().unwrap(),
                ],
                relay: None,
            }],
        }
    }

    #[test]
    fn roundtrip_and_rejects() {
        let t = sample();
        let s = t.to_string();
        assert!(s.starts_with("lode1"));
        assert_eq!(s.parse::<Ticket>().unwrap(), t);
        assert!(matches!("nope".parse::<Ticket>(), Err(TicketError::Prefix)));
        assert!(s[..s.len() - 5].parse::<Ticket>().is_err(), "truncated");
        assert!(format!("{s}aa").parse::<Ticket>().is_err(), "padded");
        assert!("lode1!!!".parse::<Ticket>().is_err());
        let empty = Ticket {
            dataset: [0; 32],
            providers: vec![],
        };
        assert!(matches!(
            empty.to_string().parse::<Ticket>(),
            Err(TicketError::NoProvider)
        ));
    }
}
