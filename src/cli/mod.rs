//! The command line: clap definitions and dispatch (here), one file per command
//! (`commands/`), shared argument types (`args.rs`), output and formatting (`output.rs`),
//! progress bars (`progress.rs`). A command parses, calls the library and prints.
//!
//! Only this module prints, reads the environment (`LODE_HOME`, `LODE_LOCK_TIMEOUT_MS`) or
//! draws progress. stdout carries data (text, or one JSON document with `--json`); stderr
//! carries messages. Errors are one line: `error: WHAT; hint: WHAT TO DO`.

mod args;
mod commands;
mod output;
mod progress;

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lode::keys::Home;
use lode::{Error, Repo, RepoOptions};

use output::{escape, Ui};

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
    Init(commands::init::InitArgs),
    /// Print this device's public key (its identity) and its identity card.
    #[command(
        after_help = "Examples:\n  lode id\n  lode id --card   # send this to a dataset owner"
    )]
    Id(commands::id::IdArgs),
    /// Show or change repository settings (`private true|false`).
    #[command(after_help = "Examples:\n  lode config\n  lode config private true")]
    Config(commands::config::ConfigArgs),
    /// Issue a capability ticket bound to a peer (its identity card or device id).
    #[command(
        after_help = "Examples:\n  lode grant lodeid1… --read --expires 90d --note \"Lee lab\"\n  lode grant 5f2c…e1 --read --path tables/ --delegable 1\n  lode grant lodeid1… --relay   # a mirror: hosts ciphertext, cannot read"
    )]
    Grant(commands::grant::GrantArgs),
    /// List the capability tickets this repository issued.
    #[command(after_help = "Example:\n  lode grants")]
    Grants,
    /// Revoke a ticket (whole, or by id from `lode grants`), or with --key every ticket of a device.
    #[command(
        after_help = "Examples:\n  lode revoke 3fa9c1\n  lode revoke --key 5f2c…e1\nData already downloaded cannot be recalled; new commits are encrypted to a new key."
    )]
    Revoke(commands::revoke::RevokeArgs),
    /// Stage files and directories (recursively; honours .lodeignore).
    #[command(
        after_help = "Examples:\n  lode add .\n  lode add videos/ --link   # huge files: hard-link instead of copying"
    )]
    Add(commands::add::AddArgs),
    /// Unstage paths and delete them from the working tree.
    #[command(after_help = "Example:\n  lode rm old/ --cached")]
    Rm(commands::rm::RmArgs),
    /// Show staged, modified, deleted and untracked paths.
    #[command(after_help = "Example:\n  lode status --json")]
    Status,
    /// Record the staged tree and pending metadata as a commit signed by this device.
    #[command(after_help = "Example:\n  lode commit -m \"add day 3 recordings\"")]
    Commit(commands::commit::CommitArgs),
    /// List commits, newest first.
    #[command(after_help = "Example:\n  lode log -n 5")]
    Log(commands::log::LogArgs),
    /// Show the dataset id and a commit (default HEAD) with its changes.
    #[command(after_help = "Example:\n  lode show HEAD~1")]
    Show(commands::show::ShowArgs),
    /// List changed files: HEAD vs working tree, REV vs working tree, or REV vs REV.
    #[command(after_help = "Example:\n  lode diff v1 HEAD")]
    Diff(commands::diff::DiffArgs),
    /// Write a revision (or some of its paths) into the working tree.
    #[command(
        after_help = "Examples:\n  lode checkout v1\n  lode checkout HEAD~2 tables/neurons.csv\n  lode checkout main"
    )]
    Checkout(commands::checkout::CheckoutArgs),
    /// List tags, or create one at REV (default HEAD).
    #[command(after_help = "Example:\n  lode tag v1.0")]
    Tag(commands::tag::TagArgs),
    /// List the files of a revision (default HEAD) with sizes and BLAKE3 ids.
    #[command(after_help = "Example:\n  lode ls HEAD tables --json")]
    Ls(commands::ls::LsArgs),
    /// Write a file of a revision to stdout (checked against its hash first).
    #[command(after_help = "Example:\n  lode cat v1:tables/neurons.csv | head")]
    Cat(commands::cat::CatArgs),
    /// Show or set dataset metadata (title, description, license, authors, keywords, any
    /// other key); the next commit records changes.
    #[command(
        after_help = "Examples:\n  lode meta\n  lode meta title \"C. elegans tracks\"\n  lode meta license CC-BY-4.0\n  lode meta authors \"Lee, Ana\" \"Ortiz, Ben\"      # or \"Lee, Ana; Ortiz, Ben\"\n  lode meta extra.strain N2\n  lode meta --unset extra.strain"
    )]
    Meta(commands::meta::MetaArgs),
    /// Re-hash every object; report damage by id and path; exit 1 on any.
    #[command(after_help = "Example:\n  lode verify")]
    Verify,
    /// Serve datasets to peers until Ctrl-C or SIGTERM; prints `ticket: TICKET` per dataset.
    #[command(
        after_help = "Examples:\n  lode serve\n  lode serve --bind 127.0.0.1:0 --relay disabled --no-discovery   # LAN / air-gapped"
    )]
    Serve(commands::serve::ServeArgs),
    /// Print the ticket of the `lode serve` running for this repository, optionally with
    /// the providers of other tickets of the same dataset (its mirrors) added.
    #[command(
        after_help = "Examples:\n  lode ticket\n  lode ticket --add lode1…mirror1 --add lode1…mirror2   # one ticket, three providers"
    )]
    Ticket(commands::ticket::TicketArgs),
    /// Mirror datasets: keep a copy of what they publish, follow them, serve them
    /// (`lode serve --mirrors`).
    #[command(
        after_help = "Examples:\n  lode mirror add lode1…\n  lode mirror add lode1… --ticket lodecap1…   # a restricted dataset, with a relay ticket\n  lode mirror list\n  lode serve --mirrors --follow 60"
    )]
    Mirror(commands::mirror::MirrorArgs),
    /// Copy a dataset from its providers into DIR and check out its main commit. With
    /// --registry, TICKET is a dataset name listed there.
    #[command(
        after_help = "Examples:\n  lode clone lode1abc… worm-data\n  lode clone worm-tracks --registry lodereg1…\n  lode clone lode1abc… videos --link   # huge files: hard-link, no second copy"
    )]
    Clone(commands::clone::CloneArgs),
    /// Manage remotes (named tickets).
    #[command(after_help = "Examples:\n  lode remote add lab lode1abc…\n  lode remote list")]
    Remote(commands::remote::RemoteArgs),
    /// Fetch new commits and objects from a remote (default origin) without touching files.
    #[command(after_help = "Example:\n  lode fetch origin")]
    Fetch(commands::fetch::FetchArgs),
    /// Fetch, then fast-forward main and the working tree (refuses to overwrite changes).
    #[command(after_help = "Example:\n  lode pull")]
    Pull(commands::pull::PullArgs),
    /// Offer main to a remote (default origin); the serving peer fetches what it lacks and
    /// fast-forwards (refused if it moved on: pull first, or --force).
    #[command(after_help = "Example:\n  lode push origin")]
    Push(commands::push::PushArgs),
    /// Fetch only the named files or directories of a dataset, verified, into DIR. TICKET
    /// may be a lode:// URI (lode://DATASET-ID/PATH?rev=REV), resolved through the providers
    /// seen before for that dataset.
    #[command(
        after_help = "Examples:\n  lode get lode1abc… tables/connectome.csv --to data/\n  lode get lode://5f2c…e1/tables/connectome.csv?rev=v1"
    )]
    Get(commands::get::GetArgs),
    /// Run a registry, or act on one: taint notices (takedowns), their public list.
    #[command(
        after_help = "Examples:\n  lode registry serve --peer lodereg1…other\n  lode registry taint --dataset 5f2c…e1 --reason \"court order 2026-117\" --registry lodereg1…\n  lode registry notices --registry lodereg1…"
    )]
    Registry(commands::registry::RegistryArgs),
    /// List this dataset at a registry under NAME (default: the directory name), with its
    /// title, description, license, keywords and the providers of its running `lode serve`.
    #[command(
        after_help = "Example:\n  lode serve &\n  lode publish worm-tracks --registry lodereg1…"
    )]
    Publish(commands::publish::PublishArgs),
    /// Find datasets at a registry by name, title, description or keyword.
    #[command(after_help = "Example:\n  lode search elegans --registry lodereg1…")]
    Search(commands::search::SearchArgs),
    /// Delete objects that no commit, tag or staged file uses.
    #[command(after_help = "Example:\n  lode gc --dry-run")]
    Gc(commands::gc::GcArgs),
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
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
    let ctx = &context(&cli.global)?;
    let ui = &mut ui;
    match cli.command {
        Command::Init(args) => commands::init::cmd_init(ctx, ui, args),
        Command::Id(args) => commands::id::cmd_id(ctx, ui, args),
        Command::Config(args) => commands::config::cmd_config(ctx, ui, args),
        Command::Grant(args) => commands::grant::cmd_grant(ctx, ui, args),
        Command::Grants => commands::grants::cmd_grants(ctx, ui),
        Command::Revoke(args) => commands::revoke::cmd_revoke(ctx, ui, args),
        Command::Add(args) => commands::add::cmd_add(ctx, ui, args),
        Command::Rm(args) => commands::rm::cmd_rm(ctx, ui, args),
        Command::Status => commands::status::cmd_status(ctx, ui),
        Command::Commit(args) => commands::commit::cmd_commit(ctx, ui, args),
        Command::Log(args) => commands::log::cmd_log(ctx, ui, args),
        Command::Show(args) => commands::show::cmd_show(ctx, ui, args),
        Command::Diff(args) => commands::diff::cmd_diff(ctx, ui, args),
        Command::Checkout(args) => commands::checkout::cmd_checkout(ctx, ui, args),
        Command::Tag(args) => commands::tag::cmd_tag(ctx, ui, args),
        Command::Ls(args) => commands::ls::cmd_ls(ctx, ui, args),
        Command::Cat(args) => commands::cat::cmd_cat(ctx, ui, args),
        Command::Meta(args) => commands::meta::cmd_meta(ctx, ui, args),
        Command::Verify => commands::verify::cmd_verify(ctx, ui),
        Command::Serve(args) => commands::serve::cmd_serve(ctx, ui, args),
        Command::Ticket(args) => commands::ticket::cmd_ticket(ctx, ui, args),
        Command::Clone(args) => commands::clone::cmd_clone(ctx, ui, args),
        Command::Fetch(args) => commands::fetch::cmd_fetch(ctx, ui, args),
        Command::Pull(args) => commands::pull::cmd_pull(ctx, ui, args),
        Command::Push(args) => commands::push::cmd_push(ctx, ui, args),
        Command::Get(args) => commands::get::cmd_get(ctx, ui, args),
        Command::Mirror(args) => commands::mirror::cmd_mirror(ctx, ui, args),
        Command::Remote(args) => commands::remote::cmd_remote(ctx, ui, args),
        Command::Registry(args) => commands::registry::cmd_registry(ctx, ui, args),
        Command::Publish(args) => commands::publish::cmd_publish(ctx, ui, args),
        Command::Search(args) => commands::search::cmd_search(ctx, ui, args),
        Command::Gc(args) => commands::gc::cmd_gc(ctx, ui, args),
    }
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
