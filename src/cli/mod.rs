//! The command line: clap definitions, dispatch, output and error rendering.
//!
//! Only this module prints, reads the environment (`LODE_HOME`, `LODE_LOCK_TIMEOUT_MS`) or
//! draws progress. stdout carries data (text, or one JSON document with `--json`); stderr
//! carries messages. Errors are one line: `error: WHAT; hint: WHAT TO DO`.

mod progress;
mod registry;

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lode::keys::{key_to_hex, Home};
use lode::ops::{self, add::AddOptions, status::Change};
use lode::store::ImportMode;
use lode::{Error, Repo, RepoOptions};
use serde::Serialize;

use lode::progress::Progress as _;
use progress::Bar;

/// Version-control datasets like git; every file is named by its BLAKE3 hash.
#[derive(Parser)]
#[command(name = "lode", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    chdir: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text (fields: docs/JSON.md).
    #[arg(long, global = true)]
    json: bool,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Never draw progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository (and the dataset key) in DIR, default the current directory.
    #[command(
        after_help = "Examples:\n  lode init worm-tracks && cd worm-tracks\n  lode init --private patient-scans"
    )]
    Init {
        /// The directory to make the repository in (made if missing; default: the current one).
        dir: Option<PathBuf>,
        /// Make a restricted dataset: served only to holders of a ticket (`lode grant`).
        #[arg(long)]
        private: bool,
    },
    /// Print this device's public key (its identity) and its identity card.
    #[command(
        after_help = "Examples:\n  lode id\n  lode id --card   # send this to a dataset owner"
    )]
    Id {
        /// Print only the identity card (ed25519 key + age recipient, signed), as one string.
        #[arg(long)]
        card: bool,
    },
    /// Show or change repository settings (`private true|false`).
    #[command(after_help = "Examples:\n  lode config\n  lode config private true")]
    Config {
        /// The setting: `private` (without it: show all settings).
        key: Option<String>,
        /// The new value, e.g. true or false (without it: show KEY).
        value: Option<String>,
    },
    /// Issue a capability ticket bound to a peer (its identity card or device id).
    #[command(
        after_help = "Examples:\n  lode grant lodeid1… --read --expires 90d --note \"Lee lab\"\n  lode grant 5f2c…e1 --read --path tables/ --delegable 1\n  lode grant lodeid1… --relay   # a mirror: hosts ciphertext, cannot read"
    )]
    Grant {
        /// The holder: an identity card (`lode id --card`) or a device id.
        who: String,
        /// Fetch and read the dataset.
        #[arg(long)]
        read: bool,
        /// Push new commits.
        #[arg(long)]
        write: bool,
        /// Fetch and host the dataset for others without reading it (mirrors).
        #[arg(long)]
        relay: bool,
        /// Limit to a path prefix (repeatable; default the whole dataset).
        #[arg(long = "path", value_name = "PREFIX")]
        paths: Vec<String>,
        /// Validity, e.g. 30d, 12h, 1y.
        #[arg(long, default_value = "30d")]
        expires: String,
        /// Let the holder delegate narrower tickets, N levels deep.
        #[arg(long, value_name = "N", default_value_t = 0)]
        delegable: u8,
        /// A note kept in the ticket (who, why).
        #[arg(long, default_value = "")]
        note: String,
        /// Also write the ticket to FILE (mode 0600), to send as an attachment; the holder
        /// passes it as `--ticket @FILE`.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List the capability tickets this repository issued.
    #[command(after_help = "Example:\n  lode grants")]
    Grants,
    /// Revoke a ticket (whole, or by id from `lode grants`), or with --key every ticket of a device.
    #[command(
        after_help = "Examples:\n  lode revoke 3fa9c1\n  lode revoke --key 5f2c…e1\nData already downloaded cannot be recalled; new commits are encrypted to a new key."
    )]
    Revoke {
        /// The ticket to revoke: a `lodecap1…` ticket, or a grant id (or a unique prefix) from `lode grants`; with --key, a device id.
        what: String,
        /// WHAT is a device id: revoke every ticket issued to or by it.
        #[arg(long)]
        key: bool,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Stage files and directories (recursively; honours .lodeignore).
    #[command(
        after_help = "Examples:\n  lode add .\n  lode add videos/ --link   # huge files: hard-link instead of copying"
    )]
    Add {
        #[arg(required = true)]
        /// Files and directories to stage (`.` for everything; directories recursively).
        paths: Vec<PathBuf>,
        /// Hard-link files into the store instead of copying them (no second copy on disk;
        /// the files become read-only, and editing one in place damages the stored object).
        #[arg(long)]
        link: bool,
    },
    /// Unstage paths and delete them from the working tree.
    #[command(after_help = "Example:\n  lode rm old/ --cached")]
    Rm {
        #[arg(required = true)]
        /// Staged files or directories to unstage (and delete, unless --cached).
        paths: Vec<PathBuf>,
        /// Keep the files in the working tree.
        #[arg(long)]
        cached: bool,
        /// Delete even files that no commit holds or that differ from what is staged.
        #[arg(short, long)]
        force: bool,
    },
    /// Show staged, modified, deleted and untracked paths.
    #[command(after_help = "Example:\n  lode status --json")]
    Status,
    /// Record the staged tree and pending metadata as a commit signed by this device.
    #[command(after_help = "Example:\n  lode commit -m \"add day 3 recordings\"")]
    Commit {
        #[arg(short, long)]
        message: String,
        /// Commit even if nothing changed.
        #[arg(long)]
        allow_empty: bool,
    },
    /// List commits, newest first.
    #[command(after_help = "Example:\n  lode log -n 5")]
    Log {
        /// Where to start: a commit id (or a unique prefix), a tag, HEAD, HEAD~N (default HEAD).
        rev: Option<String>,
        /// Show at most N commits.
        #[arg(short = 'n', long, value_name = "N")]
        limit: Option<usize>,
        /// One line per commit: short id, tags and branch, first line of the message.
        #[arg(long)]
        oneline: bool,
    },
    /// Show the dataset id and a commit (default HEAD) with its changes.
    #[command(after_help = "Example:\n  lode show HEAD~1")]
    Show {
        /// The commit to show (default HEAD): an id (or a unique prefix), a tag, HEAD~N.
        rev: Option<String>,
    },
    /// List changed files: HEAD vs working tree, REV vs working tree, or REV vs REV.
    #[command(after_help = "Example:\n  lode diff v1 HEAD")]
    Diff {
        /// None: HEAD vs the working tree; one: REV vs the working tree; two: REV vs REV.
        revs: Vec<String>,
    },
    /// Write a revision (or some of its paths) into the working tree.
    #[command(
        after_help = "Examples:\n  lode checkout v1\n  lode checkout HEAD~2 tables/neurons.csv\n  lode checkout main"
    )]
    Checkout {
        /// The revision to write: a tag, a commit id (or a unique prefix), HEAD~N or main.
        rev: String,
        /// Only these paths (files or directories) of REV; HEAD does not move.
        paths: Vec<PathBuf>,
        /// Overwrite uncommitted changes.
        #[arg(short, long)]
        force: bool,
    },
    /// List tags, or create one at REV (default HEAD).
    #[command(after_help = "Example:\n  lode tag v1.0")]
    Tag {
        /// The tag's name (without it: list tags).
        name: Option<String>,
        /// The commit to tag (default HEAD).
        rev: Option<String>,
        /// Move an existing tag.
        #[arg(short, long)]
        force: bool,
        /// Delete the tag.
        #[arg(short, long)]
        delete: bool,
    },
    /// List the files of a revision (default HEAD) with sizes and BLAKE3 ids.
    #[command(after_help = "Example:\n  lode ls HEAD tables --json")]
    Ls {
        /// The revision to list (default HEAD).
        rev: Option<String>,
        /// Only this path (a file or directory) of REV.
        path: Option<PathBuf>,
        /// Exact sizes in bytes (default: human sizes, as `diff` prints them).
        #[arg(long)]
        bytes: bool,
    },
    /// Write a file of a revision to stdout (checked against its hash first).
    #[command(after_help = "Example:\n  lode cat v1:tables/neurons.csv | head")]
    Cat {
        /// REV:PATH
        spec: String,
    },
    /// Show or set dataset metadata (title, description, license, authors, keywords, any
    /// other key); the next commit records changes.
    #[command(
        after_help = "Examples:\n  lode meta\n  lode meta title \"C. elegans tracks\"\n  lode meta license CC-BY-4.0\n  lode meta authors \"Lee, Ana\" \"Ortiz, Ben\"      # or \"Lee, Ana; Ortiz, Ben\"\n  lode meta extra.strain N2\n  lode meta --unset extra.strain"
    )]
    Meta {
        /// The field: title, description, license (an SPDX identifier), authors, keywords, or
        /// extra.NAME for a field of your own. Without it: show all metadata.
        key: Option<String>,
        /// The value (without it: show KEY). authors and keywords take several values, each
        /// one item (`;` also separates items; keywords split on commas too).
        values: Vec<String>,
        /// Remove KEY.
        #[arg(long, value_name = "KEY", conflicts_with_all = ["key", "values"])]
        unset: Option<String>,
    },
    /// Re-hash every object; report damage by id and path; exit 1 on any.
    #[command(after_help = "Example:\n  lode verify")]
    Verify,
    /// Serve datasets to peers until Ctrl-C or SIGTERM; prints `ticket: TICKET` per dataset.
    #[command(
        after_help = "Examples:\n  lode serve\n  lode serve --bind 127.0.0.1:0 --relay disabled --no-discovery   # LAN / air-gapped"
    )]
    Serve {
        /// Repositories to serve (default: the current one).
        repos: Vec<PathBuf>,
        /// Also serve the public datasets read-only over HTTP on ADDR (listing pages, file
        /// downloads with Range support, BLAKE3 ids in headers); prints `http: URL`.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Also serve every mirror of this user (`lode mirror add`).
        #[arg(long)]
        mirrors: bool,
        /// With --mirrors: follow each mirrored dataset (subscribed to its origin, fetched as
        /// soon as it changes) and also poll every SECS seconds (0: do not follow).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        follow: u64,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Print the ticket of the `lode serve` running for this repository, optionally with
    /// the providers of other tickets of the same dataset (its mirrors) added.
    #[command(
        after_help = "Examples:\n  lode ticket\n  lode ticket --add lode1…mirror1 --add lode1…mirror2   # one ticket, three providers"
    )]
    Ticket {
        /// Another ticket of the same dataset whose providers to include.
        #[arg(long = "add", value_name = "TICKET")]
        add: Vec<String>,
    },
    /// Mirror datasets: keep a copy of what they publish, follow them, serve them
    /// (`lode serve --mirrors`).
    #[command(
        after_help = "Examples:\n  lode mirror add lode1…\n  lode mirror add lode1… --ticket lodecap1…   # a restricted dataset, with a relay ticket\n  lode mirror list\n  lode serve --mirrors --follow 60"
    )]
    Mirror {
        #[command(subcommand)]
        action: MirrorAction,
    },
    /// Copy a dataset from its providers into DIR and check out its main commit. With
    /// --registry, TICKET is a dataset name listed there.
    #[command(
        after_help = "Examples:\n  lode clone lode1abc… worm-data\n  lode clone worm-tracks --registry lodereg1…\n  lode clone lode1abc… videos --link   # huge files: hard-link, no second copy"
    )]
    Clone {
        /// A ticket: an address ticket (`lode1…` from `lode serve`), a capability ticket (`lodecap1…` from `lode grant`), or with --registry a dataset name.
        #[arg(value_parser = ticket_arg)]
        ticket: String,
        /// The directory to clone into (default: dataset-ID, the first 8 hex digits of its id).
        dir: Option<PathBuf>,
        /// Resolve TICKET as a dataset name at this registry (lodereg1…).
        #[arg(long, value_name = "TICKET")]
        registry: Option<String>,
        /// Fetch and keep what the dataset publishes, to serve it on, without checking out
        /// (for a restricted dataset: ciphertext only; needs a --relay or --read ticket).
        #[arg(long)]
        mirror: bool,
        /// Hard-link files from the object store into the working tree instead of copying
        /// them (no second copy on disk; the files are read-only, as with `lode add --link`);
        /// later checkouts and pulls of this clone link too.
        #[arg(long, conflicts_with = "mirror")]
        link: bool,
        #[command(flatten)]
        cap: CapArg,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Manage remotes (named tickets).
    #[command(after_help = "Examples:\n  lode remote add lab lode1abc…\n  lode remote list")]
    Remote {
        #[command(subcommand)]
        action: RemoteAction,
    },
    /// Fetch new commits and objects from a remote (default origin) without touching files.
    #[command(after_help = "Example:\n  lode fetch origin")]
    Fetch {
        /// The remote to fetch from (default: origin).
        remote: Option<String>,
        #[command(flatten)]
        cap: CapArg,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Fetch, then fast-forward main and the working tree (refuses to overwrite changes).
    #[command(after_help = "Example:\n  lode pull")]
    Pull {
        /// The remote to pull from (default: origin).
        remote: Option<String>,
        #[command(flatten)]
        cap: CapArg,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Offer main to a remote (default origin); the serving peer fetches what it lacks and
    /// fast-forwards (refused if it moved on: pull first, or --force).
    #[command(after_help = "Example:\n  lode push origin")]
    Push {
        /// The remote to push to (default: origin).
        remote: Option<String>,
        /// Move the remote's main even when it is not a fast-forward.
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        cap: CapArg,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Fetch only the named files or directories of a dataset, verified, into DIR. TICKET
    /// may be a lode:// URI (lode://DATASET-ID/PATH?rev=REV), resolved through the providers
    /// seen before for that dataset.
    #[command(
        after_help = "Examples:\n  lode get lode1abc… tables/connectome.csv --to data/\n  lode get lode://5f2c…e1/tables/connectome.csv?rev=v1"
    )]
    Get {
        /// Where from: an address ticket (`lode1…`), a capability ticket (`lodecap1…`), or a `lode://NAME-OR-ID/PATH?rev=REV` URI.
        #[arg(value_parser = ticket_arg)]
        ticket: String,
        /// Paths (files or directories) of the dataset to fetch (`""` for everything).
        paths: Vec<String>,
        /// Directory to write into.
        #[arg(long, default_value = ".")]
        to: PathBuf,
        /// A tag or full commit id of the dataset instead of its `main`.
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        /// Replace files in --to that differ from the dataset's (by default get refuses;
        /// files already identical are left as they are).
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        cap: CapArg,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Run a registry, or act on one: taint notices (takedowns), their public list.
    #[command(
        after_help = "Examples:\n  lode registry serve --peer lodereg1…other\n  lode registry taint --dataset 5f2c…e1 --reason \"court order 2026-117\" --registry lodereg1…\n  lode registry notices --registry lodereg1…"
    )]
    Registry {
        #[command(subcommand)]
        action: RegistryAction,
    },
    /// List this dataset at a registry under NAME (default: the directory name), with its
    /// title, description, license, keywords and the providers of its running `lode serve`.
    #[command(
        after_help = "Example:\n  lode serve &\n  lode publish worm-tracks --registry lodereg1…"
    )]
    Publish {
        /// The name to list the dataset under (default: the one it was published under before).
        name: Option<String>,
        /// The registry's ticket (lodereg1…), printed by `lode registry serve`.
        #[arg(long, value_name = "TICKET")]
        registry: String,
        /// Another ticket of this dataset (a mirror) whose providers to list too.
        #[arg(long = "provider", value_name = "TICKET")]
        providers: Vec<String>,
        /// For a restricted dataset: also list its title, description, license and
        /// keywords (otherwise only the name and providers are public).
        #[arg(long)]
        with_metadata: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Find datasets at a registry by name, title, description or keyword.
    #[command(after_help = "Example:\n  lode search elegans --registry lodereg1…")]
    Search {
        /// Words to look for in names, titles, descriptions, authors and keywords.
        term: String,
        #[arg(long, value_name = "TICKET")]
        registry: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Delete objects that no commit, tag or staged file uses.
    #[command(after_help = "Example:\n  lode gc --dry-run")]
    Gc {
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum MirrorAction {
    /// Start mirroring the dataset of TICKET (under $LODE_HOME/mirrors/).
    Add {
        /// The dataset's ticket: an address ticket (`lode1…`), or for a restricted dataset its relay ticket (`lodecap1…`, see --ticket).
        #[arg(value_parser = ticket_arg)]
        ticket: String,
        /// Disk to volunteer, e.g. 50G: beyond it, the files only old versions use are
        /// dropped, oldest first (other providers still serve them).
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
        #[command(flatten)]
        cap: CapArg,
        #[command(flatten)]
        net: NetArgs,
    },
    /// List the mirrors.
    List,
    /// Fetch every mirror from its origin now and keep each within its quota (what
    /// `lode serve --mirrors --follow` does periodically).
    Sync {
        #[command(flatten)]
        net: NetArgs,
    },
    /// Stop mirroring a dataset (by id or unique prefix) and delete its copy.
    Remove {
        /// The mirrored dataset's id (or a unique prefix, as `lode mirror list` shows it).
        dataset: String,
    },
    /// Obey the taint notices (takedowns) of a registry: at each sync round, mirrors delete
    /// what its notices name, and say so.
    Follow {
        /// The registry's ticket (lodereg1…).
        registry: String,
    },
    /// Stop obeying a registry's taint notices (by registry id or unique prefix, as
    /// `lode mirror list` shows); what was deleted stays deleted.
    Unfollow {
        /// The registry's id (or a unique prefix), as `lode mirror list` shows it.
        registry: String,
    },
}

#[derive(Subcommand)]
enum RegistryAction {
    /// Run a registry until Ctrl-C or SIGTERM; prints `registry: TICKET`.
    Serve {
        /// Where the registry keeps its key, entries and notices (default
        /// $LODE_HOME/registry).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Another registry to replicate with (repeatable); registries that sync with this
        /// one become its peers too.
        #[arg(long = "peer", value_name = "TICKET")]
        peers: Vec<String>,
        /// Ask every peer for what this registry lacks every SECS seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        sync: u64,
        /// List only publishers this registry's operator approved (`lode registry approve`);
        /// without it anyone may list datasets.
        #[arg(long)]
        curated: bool,
        /// Also honour the approvals of this registry (repeatable; implies --curated): a
        /// replica of a curated registry names it here.
        #[arg(long = "curated-by", value_name = "TICKET")]
        curated_by: Vec<String>,
        /// Most datasets one publisher may list here.
        #[arg(long, value_name = "N", default_value_t = lode::net::registry::DEFAULT_PER_PUBLISHER)]
        max_per_publisher: usize,
        /// Most entries one peer may bring here (a peer registry, or the endpoint that
        /// published them).
        #[arg(long, value_name = "N", default_value_t = lode::net::registry::DEFAULT_PER_PEER)]
        max_per_peer: usize,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Approve a publisher at the curated registry this user operates (or, with --revoke,
    /// withdraw the approval): a signed approval that replicas honour too.
    #[command(
        after_help = "Examples:\n  lode registry approve lodeid1… --note \"Lee lab\" --registry lodereg1…\n  lode registry approve 5f2c…e1 --revoke --registry lodereg1…"
    )]
    Approve {
        /// The publisher: an identity card (lodeid1…, from `lode id --card`) or device id.
        publisher: String,
        /// Withdraw the approval: the publisher's entries are no longer listed.
        #[arg(long)]
        revoke: bool,
        /// Who the publisher is (public, for the operator's records).
        #[arg(long, default_value = "")]
        note: String,
        /// The running registry's ticket.
        #[arg(long, value_name = "TICKET")]
        registry: String,
        /// The registry's directory (holds its key; default $LODE_HOME/registry).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// List a registry's publisher approvals (its own and its peers').
    Approvals {
        #[arg(long, value_name = "TICKET")]
        registry: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Publish a signed taint notice (takedown) at the registry this user operates: mirrors
    /// that follow it delete the dataset or blob.
    Taint {
        /// A dataset id to take down.
        #[arg(
            long,
            value_name = "ID",
            required_unless_present = "blob",
            conflicts_with = "blob"
        )]
        dataset: Option<String>,
        /// One blob (BLAKE3 id) to take down, in whatever dataset.
        #[arg(long, value_name = "ID")]
        blob: Option<String>,
        /// Why (public).
        #[arg(long)]
        reason: String,
        /// The running registry's ticket.
        #[arg(long, value_name = "TICKET")]
        registry: String,
        /// The registry's directory (holds its key; default $LODE_HOME/registry).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// List a registry's taint notices (public and signed: anyone can audit them).
    Notices {
        #[arg(long, value_name = "TICKET")]
        registry: String,
        #[command(flatten)]
        net: NetArgs,
    },
}

#[derive(Subcommand)]
enum RemoteAction {
    /// Add (or replace) a remote.
    Add {
        /// The remote's name, e.g. origin or lab.
        name: String,
        /// Its ticket: `lode1…` (from `lode serve`) or `lodecap1…` (from `lode grant`).
        #[arg(value_parser = ticket_arg)]
        ticket: String,
    },
    /// Remove a remote.
    Remove {
        /// The remote's name, as `lode remote` lists it.
        name: String,
    },
    /// List remotes.
    List,
}

/// The capability ticket a command presents (stored with the repository once used).
#[derive(Args, Clone)]
struct CapArg {
    /// Capability ticket (lodecap1…) from `lode grant`, or @FILE to read it from a file;
    /// kept for later fetches and pushes.
    #[arg(long = "ticket", value_name = "TICKET", value_parser = ticket_arg)]
    capability: Option<String>,
}

/// Writes `data` to `path` through a temp file beside it (mode 0600) and a rename.
fn write_private(path: &Path, data: &[u8]) -> Result<(), Error> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io("cannot create a temp file in", dir, e))?;
    tmp.write_all(data)
        .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("cannot write", path, e.error))?;
    Ok(())
}

/// The names that point at each commit, as `log` decorates it (git's order: where HEAD is,
/// the branch, then tags).
fn ref_names(repo: &Repo) -> Result<std::collections::HashMap<String, Vec<String>>, Error> {
    let mut names: std::collections::HashMap<String, Vec<String>> = Default::default();
    let head = repo.head()?;
    if let (Some(c), Some(b)) = (head.commit, &head.branch) {
        names
            .entry(c.to_hex())
            .or_default()
            .push(format!("HEAD -> {}", b.strip_prefix("heads/").unwrap_or(b)));
    } else if let Some(c) = head.commit {
        names.entry(c.to_hex()).or_default().push("HEAD".into());
    }
    for (name, id) in repo.refs("tags/")? {
        let tag = name.strip_prefix("tags/").unwrap_or(&name);
        names
            .entry(id.to_hex())
            .or_default()
            .push(format!("tag: {tag}"));
    }
    Ok(names)
}

/// A ticket argument: the ticket itself, or `@FILE` naming a file that holds it (tickets run
/// to hundreds of characters; `lode grant --output FILE` writes one).
fn ticket_arg(s: &str) -> Result<String, String> {
    match s.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("cannot read the ticket file {path}: {e}")),
        None => Ok(s.to_string()),
    }
}

impl CapArg {
    fn bundle(&self) -> Result<Option<lode::trust::Bundle>, Error> {
        Ok(self.capability.as_deref().map(str::parse).transpose()?)
    }
}

/// One issued ticket, as `grant --json` and `grants` show it.
#[derive(Serialize)]
struct GrantJson {
    id: String,
    holder: String,
    rights: String,
    scope: Vec<String>,
    not_before: u64,
    expires: u64,
    delegable: u8,
    note: String,
    ticket: String,
    status: String,
}

fn grant_json(b: &lode::trust::Bundle) -> GrantJson {
    let leaf = &b.leaf().body;
    GrantJson {
        id: hex::encode(b.leaf().id()),
        holder: hex::encode(leaf.audience),
        rights: leaf.rights.names(),
        scope: leaf.scope.clone(),
        not_before: leaf.not_before,
        expires: leaf.expires,
        delegable: leaf.max_depth,
        note: leaf.note.clone(),
        ticket: b.to_string(),
        status: "valid".into(),
    }
}

/// Network options shared by the commands that talk to peers.
#[derive(Args, Clone)]
struct NetArgs {
    /// Local socket address to bind, e.g. 127.0.0.1:0 (default: all interfaces, random port).
    #[arg(long, env = "LODE_BIND", value_name = "ADDR")]
    bind: Option<std::net::SocketAddr>,
    /// Relay servers: default (iroh's), disabled, or a relay URL.
    #[arg(
        long,
        env = "LODE_RELAY",
        default_value = "default",
        value_name = "default|disabled|URL"
    )]
    relay: String,
    /// Do not publish or look up addresses through DNS/pkarr (direct addresses only).
    #[arg(long, env = "LODE_NO_DISCOVERY")]
    no_discovery: bool,
}

impl NetArgs {
    fn options(&self) -> lode::net::endpoint::NetOptions {
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

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
}

/// The HTTP gateway's bounds: the defaults, or `LODE_HTTP_TIMEOUT_MS` and
/// `LODE_HTTP_MAX_CONNECTIONS` from the environment.
#[allow(clippy::disallowed_methods)]
fn gateway_limits() -> lode::gateway::Limits {
    let mut limits = lode::gateway::Limits::default();
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(ms) = var("LODE_HTTP_TIMEOUT_MS").filter(|ms| *ms > 0) {
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(n) = var("LODE_HTTP_MAX_CONNECTIONS").filter(|n| *n > 0) {
        limits.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    limits
}

fn parse_ticket(s: &str) -> Result<lode::ticket::Ticket, Error> {
    Ok(s.parse()?)
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
fn shutdown_signal(rt: &tokio::runtime::Runtime) -> impl std::future::Future<Output = ()> {
    // The handlers are registered now, before the caller announces that it listens, so a
    // SIGTERM sent right after the announcement is never lost to the default action.
    let _in_runtime = rt.enter();
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// A failed command, as the user sees it.
enum CliError {
    Core(Error),
    /// Output already printed; just exit 1 (verify found damage).
    Failed,
    /// stdout was closed by the reader (`lode cat | head`): not an error.
    BrokenPipe,
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        match &e {
            Error::Io { path, source, .. }
                if source.kind() == io::ErrorKind::BrokenPipe && path == Path::new("stdout") =>
            {
                CliError::BrokenPipe
            }
            _ => CliError::Core(e),
        }
    }
}

impl From<lode::ticket::TicketError> for CliError {
    fn from(e: lode::ticket::TicketError) -> Self {
        CliError::Core(e.into())
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Core(Error::io("cannot write", "stdout", e))
        }
    }
}

type CliResult = Result<(), CliError>;

/// Output: data on stdout, messages on stderr, as text or JSON.
struct Ui {
    json: bool,
    quiet: bool,
    progress: bool,
    out: io::StdoutLock<'static>,
}

impl Ui {
    /// Writes one line of text output, its control characters escaped (see [`escape`]).
    fn line(&mut self, s: impl AsRef<str>) -> io::Result<()> {
        writeln!(self.out, "{}", escape(s.as_ref()))
    }
    fn json<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.out, v).map_err(io::Error::other)?;
        writeln!(self.out)
    }
    #[allow(clippy::print_stderr)]
    fn note(&self, s: impl AsRef<str>) {
        if !self.quiet && !self.json {
            eprintln!("{}", escape(s.as_ref()));
        }
    }
    fn bar(&self, label: &str) -> Bar {
        Bar::new(label, self.progress)
    }
}

/// Reports one round of mirror following on stderr: taint notices obeyed or ignored, what
/// was fetched, what was dropped over quota, what failed (errors even when `quiet`).
#[allow(clippy::print_stderr)]
fn report_round(round: &lode::net::mirror::Round, quiet: bool) {
    // Notice reasons and peers' errors are written by others: escaped like all output.
    let say = |s: String| eprintln!("{}", escape(&s));
    for n in &round.notices {
        let short = &n.notice[..12.min(n.notice.len())];
        if n.obeyed {
            say(format!(
                "taint notice {short} ({}: {}): {}",
                n.target, n.reason, n.action
            ));
        } else {
            say(format!("taint notice {short}: {}", n.action));
        }
    }
    for (id, r) in &round.mirrors {
        let id = &id[..12.min(id.len())];
        match r {
            Ok(f) => {
                if f.fetched.objects > 0 && !quiet {
                    say(format!(
                        "mirror {id}: fetched {} objects, {}",
                        f.fetched.objects,
                        human(f.fetched.bytes)
                    ));
                }
                for d in &f.dropped {
                    say(format!(
                        "mirror {id}: over quota, dropped {} ({}; last used by commit {})",
                        &d.id[..12],
                        human(d.bytes),
                        &d.last_used_by[..12]
                    ));
                }
            }
            Err(e) => say(format!("mirror {id}: {e}")),
        }
    }
}

/// Escapes what a terminal would act on: every control character (C0 including newline
/// and carriage return, DEL, C1 such as the 8-bit CSI) and the bidirectional overrides that
/// reorder what is shown, each as `\u{..}` (`\n`, `\r` for those two). Tabs pass. Every
/// line of human-readable output goes through it (`Ui::line`, `Ui::note`, the error line,
/// the mirror reports): commit messages, titles, authors, names, notices and error texts come
/// from peers, and an `ESC[2J` or OSC sequence in them must not reach the terminal. JSON
/// output does not (serde escapes control characters itself).
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
    };
    if !s.contains(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if bad(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Quotes a path for text output when it holds control characters or quotes.
fn qp(p: &str) -> String {
    if p.chars().any(|c| c.is_control() || c == '"') {
        format!("{p:?}")
    } else {
        p.to_string()
    }
}

fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

struct Ctx {
    cwd: PathBuf,
    home: Home,
    opts: RepoOptions,
}

impl Ctx {
    fn repo(&self) -> Result<Repo, Error> {
        Repo::discover(&self.cwd, self.home.clone(), self.opts.clone())
    }
}

#[allow(clippy::disallowed_methods)]
fn context(global: &Global) -> Result<Ctx, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("cannot read", ".", e))?;
    let cwd = match &global.chdir {
        Some(d) => cwd.join(d),
        None => cwd,
    };
    let home = match std::env::var_os("LODE_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => dirs::config_dir()
            .map(|d| d.join("lode"))
            .ok_or_else(|| Error::Other("cannot find a config directory; set LODE_HOME".into()))?,
    };
    let mut opts = RepoOptions::default();
    if let Some(ms) = std::env::var("LODE_LOCK_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.lock_timeout = Duration::from_millis(ms);
    }
    Ok(Ctx {
        cwd,
        home: Home::new(home),
        opts,
    })
}

/// Runs the command line and returns the process exit code.
#[allow(clippy::print_stderr)]
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        if lode::db::opening_guarded() {
            return; // a damaged database file: reported as such by the caller
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {msg}{at}; hint: this is a bug, please report it");
    }));
    let cli = Cli::parse();
    let json = cli.global.json;
    let ui = Ui {
        json: cli.global.json,
        quiet: cli.global.quiet,
        progress: !cli.global.quiet
            && !cli.global.json
            && !cli.global.no_progress
            && io::stderr().is_terminal(),
        out: io::stdout().lock(),
    };
    match run(cli, ui) {
        Ok(()) | Err(CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(CliError::Failed) => ExitCode::from(1),
        Err(CliError::Core(e)) if json => {
            // One JSON object on stderr (stdout carries only results).
            let v = serde_json::json!({ "error": e.to_string(), "hint": e.hint() });
            eprintln!("{v}");
            ExitCode::from(1)
        }
        Err(CliError::Core(e)) => {
            let hint = e.hint().map(|h| format!("; hint: {h}")).unwrap_or_default();
            eprintln!("error: {}", escape(&format!("{e}{hint}")));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, mut ui: Ui) -> CliResult {
    let ctx = context(&cli.global)?;
    match cli.command {
        Command::Init { dir, private } => {
            let dir = ctx.cwd.join(dir.unwrap_or_else(|| PathBuf::from(".")));
            let repo = Repo::init(&dir, ctx.home.clone(), ctx.opts.clone())?;
            if private {
                lode::config::set_private(&repo, true)?;
            }
            let dataset = key_to_hex(&repo.dataset_id()?);
            let device = key_to_hex(&repo.device_key()?.verifying_key());
            if ui.json {
                #[derive(Serialize)]
                struct J<'a> {
                    root: String,
                    dataset: &'a str,
                    device: &'a str,
                }
                ui.json(&J {
                    root: repo.root().display().to_string(),
                    dataset: &dataset,
                    device: &device,
                })?;
            } else if !ui.quiet {
                ui.line(format!(
                    "Initialized lode repository in {}",
                    repo.root().join(".lode").display()
                ))?;
                ui.line(format!("dataset id: {dataset}"))?;
            }
        }
        Command::Id { card } => {
            let key = ctx.home.device_key()?;
            let id = key_to_hex(&key.verifying_key());
            let c = ctx.home.card()?;
            if ui.json {
                #[derive(Serialize)]
                struct J {
                    device: String,
                    age_recipient: String,
                    card: String,
                }
                ui.json(&J {
                    device: id,
                    age_recipient: c.body.age.clone(),
                    card: c.to_string(),
                })?;
            } else if card {
                ui.line(c.to_string())?;
            } else {
                ui.line(id)?;
                ui.line(format!("age recipient: {}", c.body.age))?;
                ui.line(format!("identity card: {c}"))?;
            }
        }
        Command::Config { key, value } => {
            let repo = ctx.repo()?;
            match (key.as_deref(), value.as_deref()) {
                (None, _) | (Some("private"), None) => {
                    let private = lode::config::is_private(&repo)?;
                    if ui.json {
                        #[derive(Serialize)]
                        struct J {
                            private: bool,
                        }
                        ui.json(&J { private })?;
                    } else {
                        ui.line(format!("private\t{private}"))?;
                    }
                }
                (Some("private"), Some(v)) => {
                    let on = match v {
                        "true" | "yes" | "on" | "1" => true,
                        "false" | "no" | "off" | "0" => false,
                        _ => {
                            return Err(Error::Other(format!(
                                "private takes true or false, not {v:?}"
                            ))
                            .into())
                        }
                    };
                    lode::config::set_private(&repo, on)?;
                    if ui.json {
                        #[derive(Serialize)]
                        struct J {
                            private: bool,
                        }
                        ui.json(&J { private: on })?;
                    }
                }
                (Some(k), _) => {
                    return Err(
                        Error::Other(format!("unknown setting {k:?} (settings: private)")).into(),
                    )
                }
            }
        }
        Command::Grant {
            who,
            read,
            write,
            relay,
            paths,
            expires,
            delegable,
            note,
            output,
        } => {
            use lode::trust::Rights;
            let repo = ctx.repo()?;
            let mut rights = Rights(0);
            for (on, r) in [
                (read, Rights::READ),
                (write, Rights::WRITE),
                (relay, Rights::RELAY),
            ] {
                if on {
                    rights = rights.with(r);
                }
            }
            if rights.0 == 0 {
                return Err(Error::Other(
                    "say what the ticket allows: --read, --write and/or --relay".into(),
                )
                .into());
            }
            if delegable > 0 {
                rights = rights.with(Rights::GRANT);
            }
            let expires_in = lode::trust::parse_duration(&expires).ok_or_else(|| {
                Error::Other(format!(
                    "--expires takes a duration like 30d, 12h or 1y, not {expires:?}"
                ))
            })?;
            let hints = lode::net::fetch::served_ticket(&repo)?
                .map(|t| t.providers)
                .unwrap_or_default();
            let opts = ops::access::GrantOptions {
                rights,
                scope: paths,
                expires_in,
                depth: delegable,
                note,
            };
            let bundle = ops::access::grant(&repo, &who, opts, hints)?;
            if let Some(file) = &output {
                let file = ctx.cwd.join(file);
                write_private(&file, format!("{bundle}\n").as_bytes())?;
            }
            if ui.json {
                ui.json(&grant_json(&bundle))?;
            } else {
                ui.line(bundle.to_string())?;
                let leaf = &bundle.leaf().body;
                ui.note(format!(
                    "ticket {} for {}: {}, expires in {expires}",
                    &hex::encode(bundle.leaf().id())[..12],
                    &hex::encode(leaf.audience)[..12],
                    leaf.rights.names()
                ));
                if bundle.hints.is_empty() {
                    ui.note("no `lode serve` runs here, so the ticket carries no address: the holder also needs the dataset's address ticket (clone ADDRESS --ticket TICKET)");
                }
            }
        }
        Command::Grants => {
            let repo = ctx.repo()?;
            let list = ops::access::grants(&repo)?;
            let revoked = ops::access::revoked_set(&ops::access::revocations(&repo)?);
            let ds = repo.dataset_id()?.to_bytes();
            let now = ops::access::now();
            let rows: Vec<GrantJson> = list
                .iter()
                .map(|b| {
                    let mut j = grant_json(b);
                    j.status = match lode::trust::verify_chain(b, &ds, now, &revoked) {
                        Ok(_) => "valid".into(),
                        Err(e) => e.to_string(),
                    };
                    j
                })
                .collect();
            if ui.json {
                ui.json(&rows)?;
            } else {
                for r in rows {
                    ui.line(format!(
                        "{}  {}  {:<16} {:<12} expires {}  {}{}",
                        &r.id[..12],
                        &r.holder[..12],
                        r.rights,
                        if r.scope.is_empty() {
                            "/".to_string()
                        } else {
                            r.scope.join(",")
                        },
                        fmt_time(r.expires as i64),
                        r.status,
                        if r.note.is_empty() {
                            String::new()
                        } else {
                            format!("  {:?}", r.note)
                        }
                    ))?;
                }
            }
        }
        Command::Revoke {
            what,
            key,
            note,
            net,
        } => {
            let repo = ctx.repo()?;
            let r = ops::access::revoke(&repo, &what, key, &note)?;
            // Tell the known peers (the remotes) at once; the others learn it with the next
            // head they fetch.
            let told =
                runtime()?.block_on(lode::net::push::push_revocations(&repo, &net.options()))?;
            if ui.json {
                #[derive(Serialize)]
                struct J<'a> {
                    #[serde(flatten)]
                    revoked: &'a ops::access::RevokeReport,
                    peers: &'a [lode::net::push::RevocationPush],
                }
                ui.json(&J {
                    revoked: &r,
                    peers: &told,
                })?;
            } else {
                ui.note(format!("revoked {} {}", r.kind, &r.target[..12]));
                for t in &told {
                    match (&t.new, &t.error) {
                        (Some(_), _) => ui.note(format!("told {} ({})", t.remote, t.peer)),
                        (None, e) => ui.note(format!(
                            "could not tell {} ({}): {}; it learns the revocation with its next fetch",
                            t.remote,
                            t.peer,
                            e.as_deref().unwrap_or("no answer")
                        )),
                    }
                }
                ui.note("other peers learn it with the next head they fetch; data already downloaded cannot be recalled");
            }
        }
        Command::Add { paths, link } => {
            let repo = ctx.repo()?;
            let rels = repo_paths(&repo, &ctx.cwd, &paths)?;
            let opts = AddOptions {
                mode: if link {
                    ImportMode::Link
                } else {
                    ImportMode::Copy
                },
            };
            let bar = ui.bar("add");
            let r = ops::add::add(&repo, &rels, opts, &bar)?;
            bar.finish();
            drop(bar);
            if ui.json {
                ui.json(&r)?;
            } else {
                ui.note(format!(
                    "{} added, {} updated, {} removed; {} stored",
                    r.added.len(),
                    r.updated.len(),
                    r.removed.len(),
                    human(r.bytes_stored)
                ));
            }
        }
        Command::Rm {
            paths,
            cached,
            force,
        } => {
            let repo = ctx.repo()?;
            let rels = repo_paths(&repo, &ctx.cwd, &paths)?;
            let r = ops::add::rm(&repo, &rels, cached, force)?;
            if ui.json {
                ui.json(&r)?;
            } else if !ui.quiet {
                for p in &r.removed {
                    ui.line(format!("rm {}", qp(p)))?;
                }
            }
        }
        Command::Status => {
            let repo = ctx.repo()?;
            let s = ops::status::status(&repo)?;
            if ui.json {
                ui.json(&s)?;
            } else {
                print_status(&mut ui, &s)?;
            }
        }
        Command::Commit {
            message,
            allow_empty,
        } => {
            let repo = ctx.repo()?;
            let r = ops::commit::commit(&repo, &message, allow_empty)?;
            if ui.json {
                ui.json(&r)?;
            } else if !ui.quiet {
                ui.line(format!(
                    "[{}] {} ({} files, {})",
                    &r.commit[..12],
                    first_line(&message),
                    r.files,
                    human(r.bytes)
                ))?;
            }
        }
        Command::Log {
            rev,
            limit,
            oneline,
        } => {
            let repo = ctx.repo()?;
            let commits = ops::history::log(&repo, rev.as_deref(), limit)?;
            if ui.json {
                ui.json(&commits)?;
            } else {
                let names = ref_names(&repo)?;
                for c in commits {
                    let deco = names
                        .get(&c.id)
                        .map(|n| format!(" ({})", n.join(", ")))
                        .unwrap_or_default();
                    let bad = if c.signature_valid {
                        ""
                    } else {
                        " (BAD SIGNATURE)"
                    };
                    if oneline {
                        let first = c.message.lines().next().unwrap_or("");
                        ui.line(format!("{}{deco} {first}{bad}", &c.id[..12]))?;
                        continue;
                    }
                    ui.line(format!("commit {}{deco}", c.id))?;
                    ui.line(format!("Author: {}{bad}", c.author))?;
                    ui.line(format!("Date:   {}", fmt_time(c.time)))?;
                    ui.line("")?;
                    for l in c.message.lines() {
                        ui.line(format!("    {l}"))?;
                    }
                    ui.line("")?;
                }
            }
        }
        Command::Show { rev } => {
            let repo = ctx.repo()?;
            let s = ops::history::show(&repo, rev.as_deref())?;
            if ui.json {
                ui.json(&s)?;
            } else {
                ui.line(format!("dataset {}", s.dataset))?;
                if let Some(c) = &s.commit {
                    ui.line(format!("commit  {}", c.id))?;
                    ui.line(format!("tree    {}", c.tree))?;
                    for p in &c.parents {
                        ui.line(format!("parent  {p}"))?;
                    }
                    ui.line(format!(
                        "author  {}{}",
                        c.author,
                        if c.signature_valid {
                            ""
                        } else {
                            " (BAD SIGNATURE)"
                        }
                    ))?;
                    ui.line(format!("date    {}", fmt_time(c.time)))?;
                    ui.line(format!("files   {} ({})", s.files, human(s.bytes)))?;
                    print_meta(&mut ui, &c.metadata)?;
                    ui.line("")?;
                    for l in c.message.lines() {
                        ui.line(format!("    {l}"))?;
                    }
                    ui.line("")?;
                    print_changes(&mut ui, &s.changes)?;
                } else {
                    ui.line("no commits yet")?;
                }
            }
        }
        Command::Diff { revs } => {
            if revs.len() > 2 {
                return Err(Error::Other("diff takes at most two revisions".into()).into());
            }
            let repo = ctx.repo()?;
            let changes = ops::history::diff(
                &repo,
                revs.first().map(String::as_str),
                revs.get(1).map(String::as_str),
            )?;
            if ui.json {
                ui.json(&changes)?;
            } else {
                print_changes(&mut ui, &changes)?;
            }
        }
        Command::Checkout { rev, paths, force } => {
            let repo = ctx.repo()?;
            let rels = repo_paths(&repo, &ctx.cwd, &paths)?;
            let bar = ui.bar("checkout");
            let r = ops::checkout::checkout(&repo, &rev, &rels, force, &bar)?;
            bar.finish();
            drop(bar);
            if ui.json {
                ui.json(&r)?;
            } else {
                ui.note(format!(
                    "checked out {} ({} written, {} removed, {})",
                    &r.commit[..12],
                    r.written,
                    r.removed,
                    human(r.bytes_written)
                ));
            }
        }
        Command::Tag {
            name,
            rev,
            force,
            delete,
        } => {
            let repo = ctx.repo()?;
            match (name, delete) {
                (None, _) => {
                    let tags = ops::history::tags(&repo)?;
                    if ui.json {
                        let m: std::collections::BTreeMap<String, String> =
                            tags.into_iter().map(|(k, v)| (k, v.to_hex())).collect();
                        ui.json(&m)?;
                    } else {
                        for (t, _) in tags {
                            ui.line(t)?;
                        }
                    }
                }
                (Some(n), true) => ops::history::delete_tag(&repo, &n)?,
                (Some(n), false) => {
                    let id = ops::history::tag(&repo, &n, rev.as_deref(), force)?;
                    ui.note(format!("tag {n} -> {}", id.short()));
                }
            }
        }
        Command::Ls { rev, path, bytes } => {
            let repo = ctx.repo()?;
            let prefix = match &path {
                Some(p) => repo.repo_path(&ctx.cwd, p)?,
                None => String::new(),
            };
            let entries = ops::history::ls(&repo, rev.as_deref(), &prefix)?;
            if ui.json {
                ui.json(&entries)?;
            } else {
                for e in entries {
                    let size = if bytes {
                        e.size.to_string()
                    } else {
                        human(e.size)
                    };
                    ui.line(format!(
                        "{} {:>7} {:>10}  {}",
                        &e.id[..12],
                        e.kind,
                        size,
                        qp(&e.path)
                    ))?;
                }
            }
        }
        Command::Cat { spec } => {
            let repo = ctx.repo()?;
            let (rev, path) = spec.split_once(':').ok_or_else(|| {
                Error::Other(format!(
                    "{spec:?} is not REV:PATH (for example HEAD:data.csv)"
                ))
            })?;
            let rev = if rev.is_empty() { "HEAD" } else { rev };
            let mut out = io::BufWriter::with_capacity(1 << 20, &mut ui.out);
            ops::history::cat(&repo, rev, path.trim_start_matches("./"), &mut out)?;
            out.flush()?;
        }
        Command::Meta { key, values, unset } => {
            let repo = ctx.repo()?;
            let value = (!values.is_empty()).then_some(());
            let m = match (&key, &value, &unset) {
                (_, _, Some(k)) => Some(ops::meta::set(&repo, k, &[])?),
                (Some(k), Some(()), None) => Some(ops::meta::set(&repo, k, &values)?),
                _ => None,
            };
            let m = match m {
                Some(m) => m,
                None => repo.pending_metadata()?,
            };
            match (&key, &value, &unset) {
                (Some(k), None, None) => {
                    let v = ops::meta::get(&m, k)?;
                    if ui.json {
                        ui.json(&v)?;
                    } else if let Some(v) = v {
                        ui.line(v)?;
                    }
                }
                _ if ui.json => ui.json(&m)?,
                (None, None, None) => print_meta(&mut ui, &m)?,
                _ => {}
            }
        }
        Command::Verify => {
            let repo = ctx.repo()?;
            let bar = ui.bar("verify");
            let r = ops::maintain::verify(&repo, &bar)?;
            bar.finish();
            drop(bar);
            if ui.json {
                ui.json(&r)?;
            } else {
                for d in &r.damaged {
                    ui.line(format!(
                        "damaged {} {}: {}",
                        d.id,
                        d.path
                            .as_deref()
                            .map(qp)
                            .unwrap_or_else(|| "(no path)".into()),
                        d.problem
                    ))?;
                }
                ui.note(format!(
                    "{} objects ({}) checked, {} damaged",
                    r.objects,
                    human(r.bytes),
                    r.damaged.len()
                ));
            }
            if !r.damaged.is_empty() {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("error: {} damaged object(s) in {}; hint: fetch them again from a peer or restore .lode from a backup", r.damaged.len(), repo.root().display());
                }
                return Err(CliError::Failed);
            }
        }
        Command::Serve {
            repos,
            http,
            mirrors,
            follow,
            net,
        } => {
            let mirror_paths = if mirrors {
                lode::net::mirror::paths(&ctx.home)?
            } else {
                vec![]
            };
            let open = || -> Result<Vec<Repo>, Error> {
                let mut out: Vec<Repo> = if repos.is_empty() && mirrors {
                    vec![]
                } else if repos.is_empty() {
                    vec![ctx.repo()?]
                } else {
                    repos
                        .iter()
                        .map(|r| {
                            Repo::discover(&ctx.cwd.join(r), ctx.home.clone(), ctx.opts.clone())
                        })
                        .collect::<Result<_, _>>()?
                };
                for p in &mirror_paths {
                    out.push(Repo::discover(p, ctx.home.clone(), ctx.opts.clone())?);
                }
                if out.is_empty() {
                    return Err(Error::Other(
                        "nothing to serve: no repository given and no mirror (`lode mirror add`)"
                            .into(),
                    ));
                }
                Ok(out)
            };
            let served = open()?;
            for r in &served {
                r.release_db();
            }
            let opts = net.options();
            let json = ui.json;
            let quiet = ui.quiet;
            let out = &mut ui.out;
            let mut printed: io::Result<()> = Ok(());
            let rt = runtime()?;
            // The gateway reads its own handles of the repositories.
            let gateway = match http {
                None => None,
                Some(addr) => {
                    let listener = rt.block_on(lode::gateway::bind(addr))?;
                    let url = listener
                        .local_addr()
                        .map_err(|e| Error::Net(format!("HTTP listener: {e}")))?;
                    let gw = std::sync::Arc::new(lode::gateway::Gateway::new(open()?)?);
                    Some((listener, gw, url))
                }
            };
            let http_url = gateway.as_ref().map(|(_, _, u)| *u);
            if let Some((listener, gw, _)) = gateway {
                rt.spawn(lode::gateway::run(listener, gw, gateway_limits()));
            }
            let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
            if mirrors && follow > 0 {
                // Follow the mirrored datasets: a subscription per mirror wakes the follower
                // as soon as its origin publishes a new head; a round also runs every
                // `follow` seconds (the polling fallback). A round obeys the taint notices
                // of the followed registries, fetches each dataset from its origin, then has
                // the server re-read what it serves.
                let home = ctx.home.clone();
                let opts = net.options();
                let quiet = ui.quiet;
                let wake = std::sync::Arc::new(tokio::sync::Notify::new());
                for p in &mirror_paths {
                    rt.spawn(lode::net::mirror::watch(
                        home.clone(),
                        p.clone(),
                        opts.clone(),
                        wake.clone(),
                        Duration::from_secs(follow),
                    ));
                }
                rt.spawn(async move {
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(follow)) => {}
                            _ = wake.notified() => {}
                        }
                        let reload_now = || {
                            let _ = reload_tx.send(());
                        };
                        let round = lode::net::mirror::follow_once(&home, &opts, &reload_now).await;
                        report_round(&round, quiet);
                        if reload_tx.send(()).is_err() {
                            break;
                        }
                    }
                });
            }
            let setup = lode::net::serve::ServeSetup {
                // Serving mirrors only: the blob store lives beside them, not inside one
                // (a taint notice may remove any mirror).
                store_dir: (repos.is_empty() && mirrors)
                    .then(|| lode::net::mirror::mirrors_dir(&ctx.home).join(".serve-store")),
                reload: Some(reload_rx),
            };
            let shutdown = shutdown_signal(&rt);
            rt.block_on(lode::net::serve::serve(
                served,
                &opts,
                setup,
                |tickets, notes| {
                    if !quiet && !json {
                        for n in notes {
                            #[allow(clippy::print_stderr)]
                            {
                                eprintln!("note: {n}");
                            }
                        }
                    }
                    printed = (|| {
                        for t in tickets {
                            if json {
                                writeln!(out, "{{\"ticket\": \"{t}\"}}")?;
                            } else {
                                writeln!(out, "ticket: {t}")?;
                            }
                        }
                        if let Some(u) = http_url {
                            if json {
                                writeln!(out, "{{\"http\": \"http://{u}/\"}}")?;
                            } else {
                                writeln!(out, "http: http://{u}/")?;
                            }
                        }
                        out.flush()
                    })();
                    if !quiet && !json {
                        #[allow(clippy::print_stderr)]
                        {
                            eprintln!("serving {} dataset(s); Ctrl-C to stop", tickets.len());
                        }
                    }
                },
                shutdown,
            ))?;
            printed?;
        }
        Command::Mirror { action } => match action {
            MirrorAction::Add {
                ticket,
                quota,
                cap,
                net,
            } => {
                let quota = quota
                    .map(|q| {
                        lode::net::mirror::parse_size(&q).ok_or_else(|| {
                            Error::Other(format!(
                                "--quota takes a size like 50G or 512M, not {q:?}"
                            ))
                        })
                    })
                    .transpose()?;
                let (ticket, cap) =
                    lode::net::fetch::resolve_ticket(&ticket, cap.capability.as_deref())?;
                let bar = ui.bar("mirror");
                let (repo, r) = runtime()?.block_on(lode::net::mirror::add(
                    &ctx.home,
                    &ticket,
                    cap,
                    &net.options(),
                    &bar,
                ))?;
                bar.finish();
                drop(bar);
                if let Some(q) = quota {
                    lode::config::set_quota(&repo, q)?;
                    for d in lode::net::mirror::enforce_quota(&repo)? {
                        ui.note(format!(
                            "over quota: dropped {} ({})",
                            &d.id[..12],
                            human(d.bytes)
                        ));
                    }
                }
                let verb = format!("mirroring into {}:", repo.root().display());
                print_transfer(&mut ui, &verb, &r)?;
                ui.note("serve it with `lode serve --mirrors`");
            }
            MirrorAction::Sync { net } => {
                let round = runtime()?.block_on(lode::net::mirror::follow_once(
                    &ctx.home,
                    &net.options(),
                    &|| {},
                ));
                report_round(&round, ui.quiet || ui.json);
                let mut failed = None;
                let mut done = Vec::new();
                for (_, r) in round.mirrors {
                    match r {
                        Ok(f) => done.push(f),
                        Err(e) => failed = Some(e),
                    }
                }
                if ui.json {
                    ui.json(&serde_json::json!({ "mirrors": done, "notices": round.notices }))?;
                }
                if let Some(e) = failed {
                    return Err(e.into());
                }
            }
            MirrorAction::Follow { registry } => {
                let reg: lode::ticket::RegistryTicket = registry.parse()?;
                let new = lode::net::mirror::follow_registry(&ctx.home, &reg)?;
                ui.note(if new {
                    format!(
                        "mirrors now obey the taint notices of registry {} (checked at each sync round)",
                        &hex::encode(reg.key())[..16]
                    )
                } else {
                    "this registry was already followed".to_string()
                });
            }
            MirrorAction::Unfollow { registry } => {
                let key = lode::net::mirror::unfollow_registry(&ctx.home, &registry)?;
                ui.note(format!("mirrors no longer obey registry {}", &key[..16]));
            }
            MirrorAction::List => {
                let list = lode::net::mirror::list(&ctx.home)?;
                if ui.json {
                    ui.json(&list)?;
                } else {
                    for r in lode::net::mirror::followed(&ctx.home) {
                        ui.line(format!(
                            "obeys the taint notices of registry {}",
                            hex::encode(r.key())
                        ))?;
                    }
                    for m in list {
                        ui.line(format!(
                            "{}  seq {}  {}{}  from {}",
                            &m.dataset[..16],
                            m.seq.map_or("-".into(), |s| s.to_string()),
                            human(m.bytes),
                            if m.restricted {
                                "  restricted (ciphertext)"
                            } else {
                                ""
                            },
                            m.origin.join(",")
                        ))?;
                    }
                }
            }
            MirrorAction::Remove { dataset } => {
                let id = lode::net::mirror::remove(&ctx.home, &dataset)?;
                ui.note(format!("stopped mirroring {id} and deleted its copy"));
            }
        },
        Command::Ticket { add } => {
            let repo = ctx.repo()?;
            let merged = |mut t: lode::ticket::Ticket| -> Result<_, Error> {
                for other in &add {
                    let o = parse_ticket(other)?;
                    if o.dataset != t.dataset {
                        return Err(Error::Other(
                            "--add takes tickets of the same dataset".into(),
                        ));
                    }
                    for p in o.providers {
                        if !t.providers.iter().any(|q| q.id == p.id) {
                            t.providers.push(p);
                        }
                    }
                }
                Ok(t)
            };
            match lode::net::fetch::served_ticket(&repo)?
                .map(merged)
                .transpose()?
            {
                Some(t) if ui.json => ui.json(&serde_json::json!({ "ticket": t.to_string() }))?,
                Some(t) => ui.line(t.to_string())?,
                None => {
                    return Err(Error::Other(format!(
                        "no `lode serve` is running for {}; start one with `lode serve`",
                        repo.root().display()
                    ))
                    .into())
                }
            }
        }
        Command::Clone {
            ticket,
            dir,
            registry,
            mirror,
            link,
            cap,
            net,
        } => {
            let (ticket, cap) = match registry {
                Some(reg) => {
                    let reg: lode::ticket::RegistryTicket = reg.parse()?;
                    let t = runtime()?.block_on(lode::net::registry::resolve(
                        &reg,
                        &ticket,
                        &net.options(),
                    ))?;
                    lode::net::registry::remember(&ctx.home, &reg);
                    (t, cap.bundle()?)
                }
                None => lode::net::fetch::resolve_ticket(&ticket, cap.capability.as_deref())?,
            };
            let dir = ctx.cwd.join(dir.unwrap_or_else(|| {
                PathBuf::from(format!("dataset-{}", &hex::encode(ticket.dataset)[..8]))
            }));
            let bar = ui.bar("clone");
            let (repo, r) = runtime()?.block_on(lode::net::fetch::clone(
                &dir,
                ctx.home.clone(),
                ctx.opts.clone(),
                &ticket,
                lode::net::fetch::CloneOptions { cap, mirror, link },
                &net.options(),
                &bar,
            ))?;
            bar.finish();
            drop(bar);
            {
                let verb = format!("cloned into {}:", repo.root().display());
                print_transfer(&mut ui, &verb, &r)?;
            }
        }
        Command::Remote { action } => {
            let repo = ctx.repo()?;
            match action {
                RemoteAction::Add { name, ticket } => {
                    lode::net::fetch::set_remote(&repo, &name, &parse_ticket(&ticket)?)?
                }
                RemoteAction::Remove { name } => lode::net::fetch::remove_remote(&repo, &name)?,
                RemoteAction::List => {
                    let list = lode::net::fetch::remotes(&repo)?;
                    if ui.json {
                        let m: std::collections::BTreeMap<String, String> =
                            list.into_iter().map(|(n, t)| (n, t.to_string())).collect();
                        ui.json(&m)?;
                    } else {
                        for (n, t) in list {
                            ui.line(format!("{n}\t{t}"))?;
                        }
                    }
                }
            }
        }
        Command::Fetch { remote, cap, net } => {
            let repo = ctx.repo()?;
            let name = remote.unwrap_or_else(|| "origin".into());
            let bar = ui.bar("fetch");
            let r = runtime()?.block_on(lode::net::fetch::fetch(
                &repo,
                &name,
                cap.bundle()?,
                &net.options(),
                &bar,
            ))?;
            bar.finish();
            drop(bar);
            print_transfer(&mut ui, "fetched", &r)?;
        }
        Command::Pull { remote, cap, net } => {
            let repo = ctx.repo()?;
            let name = remote.unwrap_or_else(|| "origin".into());
            let bar = ui.bar("pull");
            let r = runtime()?.block_on(lode::net::fetch::pull(
                &repo,
                &name,
                cap.bundle()?,
                &net.options(),
                &bar,
            ))?;
            bar.finish();
            drop(bar);
            print_transfer(&mut ui, "pulled", &r)?;
        }
        Command::Push {
            remote,
            force,
            cap,
            net,
        } => {
            let repo = ctx.repo()?;
            if let Some(c) = cap.bundle()? {
                lode::net::fetch::use_capability(&repo, &c)?;
            }
            let name = remote.unwrap_or_else(|| "origin".into());
            let r =
                runtime()?.block_on(lode::net::push::push(&repo, &name, force, &net.options()))?;
            if ui.json {
                ui.json(&r)?;
            } else {
                ui.note(format!(
                    "pushed {} to {}: it fetched {} objects, {}",
                    &r.commit[..12],
                    r.peer,
                    r.objects_sent,
                    human(r.bytes_sent)
                ));
            }
        }
        Command::Get {
            ticket,
            paths: paths_arg,
            to,
            rev: rev_arg,
            force,
            cap,
            net,
        } => {
            // A lode:// referral names the dataset (and maybe a path and a revision); its
            // providers are those seen before.
            let (ticket, cap, mut paths, rev) = if lode::net::uri::is_referral(&ticket) {
                let r = lode::net::uri::parse(&ticket)?;
                let t = match &r.dataset {
                    lode::net::uri::Named::Id(id) => lode::net::uri::resolve(&ctx.home, id)?,
                    lode::net::uri::Named::Name(name) => runtime()?.block_on(
                        lode::net::registry::resolve_known(&ctx.home, name, &net.options()),
                    )?,
                };
                let cap: Option<lode::trust::Bundle> = cap.bundle()?;
                (t, cap, r.path.into_iter().collect::<Vec<_>>(), r.rev)
            } else {
                let (t, c) = lode::net::fetch::resolve_ticket(&ticket, cap.capability.as_deref())?;
                (t, c, vec![], None)
            };
            paths.extend(paths_arg.iter().map(|p| p.trim_matches('/').to_string()));
            if paths.is_empty() {
                return Err(Error::Other(
                    "name the files or directories to get (after the ticket, or in the lode:// URI)"
                        .into(),
                )
                .into());
            }
            let rev = rev_arg.or(rev);
            let bar = ui.bar("get");
            let r = runtime()?.block_on(lode::net::fetch::get(
                &ctx.home,
                &ticket,
                lode::net::fetch::GetOptions { cap, rev, force },
                &paths,
                &ctx.cwd.join(to),
                &net.options(),
                &bar,
            ))?;
            bar.finish();
            drop(bar);
            if ui.json {
                ui.json(&r)?;
            } else {
                ui.note(format!(
                    "got {} file(s), {} in {:.2}s",
                    r.files.len(),
                    human(r.transfer.bytes),
                    r.transfer.seconds
                ));
            }
        }
        Command::Registry { action } => registry::run(&ctx, &mut ui, action)?,
        Command::Publish {
            name,
            registry: reg,
            providers,
            with_metadata,
            net,
        } => registry::publish(&ctx, &mut ui, name, &reg, &providers, with_metadata, &net)?,
        Command::Search {
            term,
            registry: reg,
            net,
        } => registry::search(&ctx, &mut ui, &term, &reg, &net)?,
        Command::Gc { dry_run } => {
            let repo = ctx.repo()?;
            let r = ops::maintain::gc(&repo, dry_run)?;
            if ui.json {
                ui.json(&r)?;
            } else if !ui.quiet {
                let verb = if dry_run { "would free" } else { "freed" };
                ui.line(format!(
                    "{verb} {} ({} objects, {} temp files); {} objects kept",
                    human(r.bytes_freed),
                    r.objects_removed,
                    r.temp_files_removed,
                    r.objects_kept
                ))?;
            }
        }
    }
    Ok(())
}

fn print_transfer(ui: &mut Ui, verb: &str, r: &lode::net::fetch::FetchReport) -> io::Result<()> {
    if ui.json {
        return ui.json(r);
    }
    ui.note(format!(
        "{verb} {} objects, {} in {:.2}s from {}",
        r.objects,
        human(r.bytes),
        r.seconds,
        r.peers.join(", ")
    ));
    Ok(())
}

fn repo_paths(repo: &Repo, cwd: &Path, paths: &[PathBuf]) -> Result<Vec<String>, Error> {
    paths.iter().map(|p| repo.repo_path(cwd, p)).collect()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn fmt_time(t: i64) -> String {
    // Seconds since the epoch to a UTC date, without a time-zone database.
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn print_changes(ui: &mut Ui, changes: &[Change]) -> io::Result<()> {
    use lode::ops::status::ChangeKind::*;
    for c in changes {
        let (tag, size) = match c.change {
            Added => ("added:   ", human(c.new_size.unwrap_or(0))),
            Deleted => ("deleted: ", human(c.old_size.unwrap_or(0))),
            Modified => (
                "modified:",
                format!(
                    "{} -> {}",
                    human(c.old_size.unwrap_or(0)),
                    human(c.new_size.unwrap_or(0))
                ),
            ),
        };
        ui.line(format!("{tag} {} ({size})", qp(&c.path)))?;
    }
    Ok(())
}

fn print_change_list(ui: &mut Ui, changes: &[Change]) -> io::Result<()> {
    for c in changes {
        let tag = format!("{:?}:", c.change).to_lowercase();
        ui.line(format!("  {tag:<9} {}", qp(&c.path)))?;
    }
    Ok(())
}

fn print_status(ui: &mut Ui, s: &ops::status::StatusReport) -> io::Result<()> {
    match (&s.branch, &s.head) {
        (Some(b), _) => ui.line(format!("On branch {b}"))?,
        (None, Some(h)) => ui.line(format!("HEAD detached at {}", &h[..12]))?,
        _ => {}
    }
    if s.head.is_none() {
        ui.line("No commits yet")?;
    }
    if !s.staged.is_empty() || s.metadata_changed {
        ui.line("")?;
        ui.line("Changes to be committed:")?;
        if s.metadata_changed {
            ui.line("  metadata changed (lode meta)")?;
        }
        print_change_list(ui, &s.staged)?;
    }
    if !s.unstaged.is_empty() {
        ui.line("")?;
        ui.line("Changes not staged for commit (use `lode add`):")?;
        print_change_list(ui, &s.unstaged)?;
    }
    if !s.untracked.is_empty() {
        ui.line("")?;
        ui.line("Untracked files (use `lode add`):")?;
        for p in &s.untracked {
            ui.line(format!("  {}", qp(p)))?;
        }
    }
    if !s.leftovers.is_empty() {
        ui.line("\nTemp files of an interrupted lode (removed by `lode gc`):")?;
        for p in &s.leftovers {
            ui.line(format!("  {}", qp(p)))?;
        }
    }
    if s.is_clean() && s.untracked.is_empty() && s.leftovers.is_empty() {
        ui.line("nothing to commit, working tree clean")?;
    }
    Ok(())
}

fn print_meta(ui: &mut Ui, m: &lode::object::Metadata) -> io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    ui.line(format!("title:       {}", opt(&m.title)))?;
    ui.line(format!("description: {}", opt(&m.description)))?;
    ui.line(format!("license:     {}", opt(&m.license)))?;
    ui.line(format!("authors:     {}", m.authors.join("; ")))?;
    ui.line(format!("keywords:    {}", m.keywords.join(", ")))?;
    for (k, v) in &m.extra {
        ui.line(format!("{k}: {v}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    /// Every positional argument of every command says what it takes in `--help`.
    #[test]
    fn every_positional_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_positionals() {
                if a.get_help().is_none() {
                    missing.push(format!("{path} <{}>", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "lode", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:#?}");
    }
}
