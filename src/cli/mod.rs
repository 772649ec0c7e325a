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
    Init(commands::init::InitArgs),
    Id(commands::id::IdArgs),
    Config(commands::config::ConfigArgs),
    Grant(commands::grant::GrantArgs),
    /// List the capability tickets this repository issued.
    #[command(after_help = "Example:\n  lode grants")]
    Grants,
    Revoke(commands::revoke::RevokeArgs),
    Add(commands::add::AddArgs),
    Rm(commands::rm::RmArgs),
    /// Show staged, modified, deleted and untracked paths.
    #[command(after_help = "Example:\n  lode status --json")]
    Status,
    Commit(commands::commit::CommitArgs),
    Log(commands::log::LogArgs),
    Show(commands::show::ShowArgs),
    Diff(commands::diff::DiffArgs),
    Checkout(commands::checkout::CheckoutArgs),
    Tag(commands::tag::TagArgs),
    Ls(commands::ls::LsArgs),
    Cat(commands::cat::CatArgs),
    Meta(commands::meta::MetaArgs),
    /// Re-hash every object; report damage by id and path; exit 1 on any.
    #[command(after_help = "Example:\n  lode verify")]
    Verify,
    Serve(commands::serve::ServeArgs),
    Ticket(commands::ticket::TicketArgs),
    Mirror(commands::mirror::MirrorArgs),
    Clone(commands::clone::CloneArgs),
    Remote(commands::remote::RemoteArgs),
    Fetch(commands::fetch::FetchArgs),
    Pull(commands::pull::PullArgs),
    Push(commands::push::PushArgs),
    Get(commands::get::GetArgs),
    Drop(commands::drop::DropArgs),
    Registry(commands::registry::RegistryArgs),
    Publish(commands::publish::PublishArgs),
    Search(commands::search::SearchArgs),
    Copies(commands::copies::CopiesArgs),
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
        let repo = Repo::discover(&self.cwd, self.home.clone(), self.opts.clone())?;
        if let Some(v) = repo.upgraded_from() {
            eprintln!(
                "note: upgraded the repository at {} from format {v} to {} (files of 4 MiB \
                 and more are now stored in chunks; lode versions before it cannot open it)",
                output::escape(&repo.root().display().to_string()),
                lode::db::FORMAT_VERSION
            );
        }
        Ok(repo)
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
pub fn main() -> ExitCode {
    ExitCode::from(run_args(std::env::args_os()))
}

/// Runs the command line `args` (the program name first) and returns the exit status (the
/// Python package's `lode` command calls this).
#[allow(clippy::print_stderr)]
pub fn run_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
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
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code() as u8;
        }
    };
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
        Ok(()) | Err(CliError::BrokenPipe) => 0,
        Err(CliError::Failed) => 1,
        Err(CliError::Core(e)) if json => {
            // One JSON object on stderr (stdout carries only results).
            let v = serde_json::json!({ "error": e.to_string(), "hint": e.hint() });
            eprintln!("{v}");
            1
        }
        Err(CliError::Core(e)) => {
            let hint = e.hint().map(|h| format!("; hint: {h}")).unwrap_or_default();
            eprintln!("error: {}", escape(&format!("{e}{hint}")));
            1
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
        Command::Drop(args) => commands::drop::cmd_drop(ctx, ui, args),
        Command::Push(args) => commands::push::cmd_push(ctx, ui, args),
        Command::Get(args) => commands::get::cmd_get(ctx, ui, args),
        Command::Mirror(args) => commands::mirror::cmd_mirror(ctx, ui, args),
        Command::Remote(args) => commands::remote::cmd_remote(ctx, ui, args),
        Command::Registry(args) => commands::registry::cmd_registry(ctx, ui, args),
        Command::Publish(args) => commands::publish::cmd_publish(ctx, ui, args),
        Command::Search(args) => commands::search::cmd_search(ctx, ui, args),
        Command::Copies(args) => commands::copies::cmd_copies(ctx, ui, args),
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
