//! Building iroh endpoints from the device key.
//!
//! Users get iroh's defaults (relays and address lookup) so that peers behind NAT meet.
//! With relays disabled and discovery off, the endpoint uses only its direct sockets and the
//! addresses carried by tickets (LAN, air-gapped clusters, and every test here); it then sends
//! nothing but to the peers it dials.

use std::net::SocketAddr;

use ed25519_dalek::SigningKey;
use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::{presets, PortmapperConfig};
use iroh::{Endpoint, EndpointAddr, NetReportConfig, RelayMode, SecretKey, TransportAddr};

use crate::error::{Error, Result};
use crate::ticket::Provider;

/// Which relay servers to use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Relay {
    /// iroh's public relays.
    #[default]
    Default,
    /// No relay: direct addresses only.
    Disabled,
    /// A relay of one's own.
    Url(String),
}

/// Network settings of one command.
#[derive(Clone, Debug, Default)]
pub struct NetOptions {
    /// Local socket address to bind (default: any address, a random port).
    pub bind: Option<SocketAddr>,
    pub relay: Relay,
    /// Whether to publish and look up addresses through iroh's address lookup (DNS/pkarr).
    pub discovery: bool,
    /// How a download takes part in its dataset's swarm (off unless asked for).
    pub share: ShareOptions,
}

/// How a downloader takes part in the swarm of a public dataset.
#[derive(Clone, Debug, Default)]
pub struct ShareOptions {
    /// Take part in the swarm at all (default off for library callers; the CLI turns it on,
    /// `--no-share` off).
    pub enabled: bool,
    /// Serve other peers; off, the download still takes pieces from the swarm (a fetch into a
    /// repository that `lode serve` serves: that process serves it).
    pub serve: bool,
    /// After its own download, serve for exactly this long (`--seed`); `None`: while others
    /// still fetch from it.
    pub seed: Option<std::time::Duration>,
    /// Upload cap in bytes per second (`--max-upload`).
    pub max_upload: Option<u64>,
}

impl ShareOptions {
    /// A mirror's follow round (`lode serve --mirrors --follow`, `lode mirror sync`,
    /// `lode mirror add`): pieces and batches from the swarm's peers, the origin asked only
    /// for the rest; the round itself serves nothing and does not linger (the mirror's
    /// `lode serve` serves what the round completed).
    pub fn mirror_round() -> ShareOptions {
        ShareOptions {
            enabled: true,
            serve: false,
            seed: Some(std::time::Duration::ZERO),
            max_upload: None,
        }
    }
}

/// An endpoint and the address book that tickets fill.
#[derive(Clone)]
pub struct Net {
    pub endpoint: Endpoint,
    pub lookup: MemoryLookup,
}

/// Converts a lode device key into an iroh secret key (same public key).
pub fn secret_key(key: &SigningKey) -> SecretKey {
    SecretKey::from_bytes(&key.to_bytes())
}

/// Binds an endpoint for `key` with `opts`.
pub async fn bind(key: &SigningKey, opts: &NetOptions) -> Result<Net> {
    let lookup = MemoryLookup::new();
    let net_err = |e: &dyn std::fmt::Display| Error::Net(format!("cannot start the endpoint: {e}"));
    let mut b = if opts.discovery {
        Endpoint::builder(presets::N0)
    } else {
        Endpoint::builder(presets::Minimal)
            .clear_address_lookup()
            .portmapper_config(PortmapperConfig::Disabled)
            .net_report_config(NetReportConfig::minimal())
    };
    b = b.secret_key(secret_key(key)).address_lookup(lookup.clone());
    b = match &opts.relay {
        Relay::Default if opts.discovery => b,
        Relay::Default => b.relay_mode(iroh::endpoint::default_relay_mode()),
        Relay::Disabled => b.relay_mode(RelayMode::Disabled),
        Relay::Url(u) => {
            let url: iroh::RelayUrl = u
                .parse()
                .map_err(|e| Error::Other(format!("invalid relay URL {u:?}: {e}")))?;
            b.relay_mode(RelayMode::custom([url]))
        }
    };
    if let Some(addr) = opts.bind {
        b = b
            .clear_ip_transports()
            .bind_addr(addr)
            .map_err(|e| net_err(&e))?;
    }
    let endpoint = b.bind().await.map_err(|e| net_err(&e))?;
    Ok(Net { endpoint, lookup })
}

impl Net {
    /// Remembers a provider's addresses so it can be dialled by id.
    pub fn learn(&self, p: &Provider) -> Result<iroh::EndpointId> {
        let id = iroh::PublicKey::from_bytes(&p.id)
            .map_err(|_| Error::Other("ticket holds an invalid endpoint id".into()))?;
        self.lookup.add_endpoint_info(provider_addr(id, p));
        Ok(id)
    }

    /// Describes this endpoint as a provider for tickets.
    pub fn provider(&self) -> Provider {
        let addr = self.endpoint.addr();
        let mut addrs: Vec<SocketAddr> = self.endpoint.bound_sockets();
        let mut relay = None;
        for a in addr.addrs {
            match a {
                TransportAddr::Ip(s) if !addrs.contains(&s) => addrs.push(s),
                TransportAddr::Relay(u) => relay = Some(u.to_string()),
                _ => {}
            }
        }
        // An unspecified bind address (0.0.0.0) is not dialable; keep only concrete ones.
        addrs.retain(|a| !a.ip().is_unspecified());
        addrs.truncate(16);
        Provider {
            id: *self.endpoint.id().as_bytes(),
            addrs,
            relay,
        }
    }
}

fn provider_addr(id: iroh::EndpointId, p: &Provider) -> EndpointAddr {
    let mut addr = EndpointAddr::new(id);
    for a in &p.addrs {
        addr = addr.with_ip_addr(*a);
    }
    if let Some(url) = p
        .relay
        .as_ref()
        .and_then(|u| u.parse::<iroh::RelayUrl>().ok())
    {
        addr = addr.with_relay_url(url);
    }
    addr
}

/// How long dialling a peer may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Dials `id` on protocol `alpn`, sends one request on a bidirectional stream and returns
/// the answer (at most `max` bytes), waiting up to `wait` for it. A peer that does not speak
/// the protocol gets a message that says so.
pub async fn exchange(
    net: &Net,
    id: iroh::EndpointId,
    alpn: &[u8],
    request: &[u8],
    max: usize,
    wait: std::time::Duration,
) -> Result<Vec<u8>> {
    let peer = peer_name(id.as_bytes());
    let unreachable = |msg: String| Error::Unreachable {
        peer: peer.clone(),
        msg,
    };
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, net.endpoint.connect(id, alpn))
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| {
            let text = e.to_string();
            if text.to_lowercase().contains("alpn")
                || text.contains("no_application_protocol")
                || text.contains("any known protocol")
                || text.contains("error 120")
            {
                Error::Peer {
                    peer: peer.clone(),
                    msg: format!(
                        "it does not speak {} (another lode version, or another kind of peer?)",
                        String::from_utf8_lossy(alpn)
                    ),
                }
            } else {
                unreachable(text)
            }
        })?;
    let talk = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(request).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        recv.read_to_end(max).await.map_err(|e| e.to_string())
    };
    let bytes = tokio::time::timeout(wait, talk)
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", wait.as_secs())))?
        .map_err(|msg| Error::Peer {
            peer: peer.clone(),
            msg,
        })?;
    conn.close(iroh::endpoint::VarInt::from_u32(0), b"done");
    Ok(bytes)
}

/// Answers every request a peer sends on `conn` — one per bidirectional stream, read up to
/// `max` bytes — with the bytes `answer` returns for it (given the request, or why it could
/// not be read, and the peer's id), until the peer closes the connection. Shared by `lode/2`
/// and the registry protocol.
pub async fn answer_requests<F, Fut>(
    conn: iroh::endpoint::Connection,
    max: usize,
    answer: F,
) -> std::result::Result<(), iroh::protocol::AcceptError>
where
    F: Fn(std::result::Result<Vec<u8>, String>, iroh::EndpointId) -> Fut,
    Fut: std::future::Future<Output = Vec<u8>>,
{
    loop {
        let Ok((mut send, mut recv)) = conn.accept_bi().await else {
            return Ok(()); // the client closed the connection
        };
        let request = recv.read_to_end(max).await.map_err(|e| e.to_string());
        let response = answer(request, conn.remote_id()).await;
        send.write_all(&response)
            .await
            .map_err(iroh::protocol::AcceptError::from_err)?;
        send.finish()?;
    }
}

/// Returns a short printable form of an endpoint id, for messages.
pub fn peer_name(id: &[u8; 32]) -> String {
    hex::encode(&id[..5])
}
