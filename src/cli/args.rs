//! Argument types and parsers shared by several commands.

use std::path::{Path, PathBuf};

use clap::Args;
use lode::{Error, Repo};

/// The capability ticket a command presents (stored with the repository once used).
#[derive(Args, Clone)]
pub(crate) struct CapArg {
    /// Capability ticket (lodecap1…) from `lode grant`, or @FILE to read it from a file;
    /// kept for later fetches and pushes.
    #[arg(long = "ticket", value_name = "TICKET", value_parser = ticket_arg)]
    pub(crate) capability: Option<String>,
}

/// A ticket argument: the ticket itself, or `@FILE` naming a file that holds it (tickets run
/// to hundreds of characters; `lode grant --output FILE` writes one).
pub(crate) fn ticket_arg(s: &str) -> Result<String, String> {
    match s.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("cannot read the ticket file {path}: {e}")),
        None => Ok(s.to_string()),
    }
}

impl CapArg {
    pub(crate) fn bundle(&self) -> Result<Option<lode::trust::Bundle>, Error> {
        Ok(self.capability.as_deref().map(str::parse).transpose()?)
    }
}

/// Network options shared by the commands that talk to peers.
#[derive(Args, Clone)]
pub(crate) struct NetArgs {
    /// Local socket address to bind, e.g. 127.0.0.1:0 (default: all interfaces, random port).
    #[arg(long, env = "LODE_BIND", value_name = "ADDR")]
    pub(crate) bind: Option<std::net::SocketAddr>,
    /// Relay servers: default (iroh's), disabled, or a relay URL.
    #[arg(
        long,
        env = "LODE_RELAY",
        default_value = "default",
        value_name = "default|disabled|URL"
    )]
    pub(crate) relay: String,
    /// Do not publish or look up addresses through DNS/pkarr (direct addresses only).
    #[arg(long, env = "LODE_NO_DISCOVERY")]
    pub(crate) no_discovery: bool,
}

impl NetArgs {
    pub(crate) fn options(&self) -> lode::net::endpoint::NetOptions {
        use lode::net::endpoint::Relay;
        let relay = match self.relay.as_str() {
            "default" => Relay::Default,
            "disabled" | "off" | "none" => Relay::Disabled,
            url => Relay::Url(url.to_string()),
        };
        lode::net::endpoint::NetOptions {
            bind: self.bind,
            relay,
            discovery: !self.no_discovery,
        }
    }
}

pub(crate) fn parse_ticket(s: &str) -> Result<lode::ticket::Ticket, Error> {
    Ok(s.parse()?)
}

pub(crate) fn repo_paths(repo: &Repo, cwd: &Path, paths: &[PathBuf]) -> Result<Vec<String>, Error> {
    paths.iter().map(|p| repo.repo_path(cwd, p)).collect()
}
