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
            share: Default::default(),
        }
    }
}

/// How a download (clone, fetch, pull) takes part in its dataset's swarm.
#[derive(Args, Clone, Debug)]
pub(crate) struct ShareArgs {
    /// Stay out of the dataset's swarm: serve no other downloader and announce nothing;
    /// download from the ticket's providers only (as lode did before swarms).
    #[arg(long, env = "LODE_NO_SHARE")]
    pub(crate) no_share: bool,
    /// After the download, keep serving the swarm for this long (30s, 10m, 2h; 0s: not at
    /// all). Default: while other peers still fetch from this one, at most 10 minutes.
    #[arg(long, value_name = "DURATION", value_parser = seed_arg)]
    pub(crate) seed: Option<u64>,
    /// Cap the upload to other peers, in bytes per second (5M = 5 MiB/s).
    #[arg(long, value_name = "RATE", value_parser = rate_arg)]
    pub(crate) max_upload: Option<u64>,
}

impl ShareArgs {
    /// Network options of `net` with this swarm participation.
    pub(crate) fn options(&self, net: &NetArgs) -> lode::net::endpoint::NetOptions {
        let mut opts = net.options();
        opts.share = lode::net::swarm::ShareOptions {
            enabled: !self.no_share,
            serve: true,
            seed: self.seed.map(std::time::Duration::from_secs),
            max_upload: self.max_upload,
        };
        opts
    }
}

/// How a mirror's round by hand (`mirror add`, `mirror sync`) takes part in the swarm: as
/// `lode serve --mirrors --follow` does, it takes pieces from the other peers and serves
/// nothing itself (the mirror's `lode serve` does).
#[derive(Args, Clone, Debug)]
pub(crate) struct MirrorShareArgs {
    /// Stay out of the dataset's swarm: fetch from the origin's providers only.
    #[arg(long, env = "LODE_NO_SHARE")]
    pub(crate) no_share: bool,
}

impl MirrorShareArgs {
    /// Network options of `net` for a mirror's round.
    pub(crate) fn options(&self, net: &NetArgs) -> lode::net::endpoint::NetOptions {
        let mut opts = net.options();
        if !self.no_share {
            opts.share = lode::net::swarm::ShareOptions::mirror_round();
        }
        opts
    }
}

fn seed_arg(s: &str) -> Result<u64, String> {
    lode::trust::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration such as 30s, 10m or 2h"))
}

fn rate_arg(s: &str) -> Result<u64, String> {
    let s = s.trim_end_matches("/s");
    lode::net::mirror::parse_size(s)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a rate such as 512k or 5M (bytes per second)"))
}

pub(crate) fn parse_ticket(s: &str) -> Result<lode::ticket::Ticket, Error> {
    Ok(s.parse()?)
}

pub(crate) fn repo_paths(repo: &Repo, cwd: &Path, paths: &[PathBuf]) -> Result<Vec<String>, Error> {
    paths.iter().map(|p| repo.repo_path(cwd, p)).collect()
}
