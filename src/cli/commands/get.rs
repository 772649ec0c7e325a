//! The `lode get` command.

use std::path::PathBuf;

use clap::Args;
use lode::progress::Progress as _;
use lode::Error;

use crate::cli::args::{repo_paths, ticket_arg, CapArg, NetArgs, ShareArgs};
use crate::cli::output::{human, print_swarm, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Fetch only the named files or directories of a dataset, verified, into DIR. TICKET
/// may be a lode:// URI (lode://DATASET-ID/PATH?rev=REV), resolved through its
/// `provider=TICKET` hints and the providers seen before for that dataset. Inside a lazy
/// clone, `lode get PATH…` (no ticket) fetches those files' content from origin and checks
/// them out.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode get lode1abc… tables/connectome.csv --to data/\n  lode get lode://5f2c…e1/tables/connectome.csv?rev=v1\n  lode get video/day1.bin   # inside a lazy clone"
)]
pub struct GetArgs {
    /// Where from: an address ticket (`lode1…`), a capability ticket (`lodecap1…`), or a `lode://NAME-OR-ID/PATH?rev=REV` URI; inside a lazy clone, the first path instead.
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
    #[command(flatten)]
    share: ShareArgs,
}

pub fn cmd_get(ctx: &Ctx, ui: &mut Ui, args: GetArgs) -> CliResult {
    let GetArgs {
        ticket,
        paths: paths_arg,
        to,
        rev: rev_arg,
        force,
        cap,
        net,
        share,
    } = args;
    // Inside a clone, paths without a ticket: fetch their content from origin.
    let is_source = |s: &str| {
        s.starts_with("lode1") || lode::trust::is_capability(s) || lode::net::uri::is_referral(s)
    };
    if !is_source(&ticket) {
        if let Ok(repo) = ctx.repo() {
            if rev_arg.is_some() || to != std::path::Path::new(".") {
                return Err(Error::Other(
                    "inside a clone, `lode get PATH…` fetches the checked-out revision's files in place: --rev and --to go with a ticket (or `lode checkout REV` first)".into(),
                )
                .into());
            }
            let given: Vec<PathBuf> = std::iter::once(&ticket)
                .chain(paths_arg.iter())
                .map(PathBuf::from)
                .collect();
            let paths = repo_paths(&repo, &ctx.cwd, &given)?;
            let bar = ui.bar("get");
            let r = runtime()?.block_on(lode::net::fetch::get_here(
                &repo,
                &paths,
                cap.bundle()?,
                force,
                &share.options(&net),
                &bar,
            ))?;
            bar.finish();
            drop(bar);
            ui.report(&r, |r| {
                format!(
                    "got {} file(s), {}",
                    r.checkout.written,
                    human(r.checkout.bytes_written)
                )
            })?;
            if !ui.json {
                print_swarm(ui, r.swarm.as_ref());
            }
            return Ok(());
        }
    }
    // A lode:// referral names the dataset (and maybe a path and a revision); its
    // providers are its hints and those seen before.
    let lode::net::source::Source {
        ticket,
        cap,
        mut paths,
        rev,
    } = runtime()?.block_on(lode::net::source::resolve_source(
        &ctx.home,
        &ticket,
        cap.capability.as_deref(),
        &net.options(),
    ))?;
    paths.extend(paths_arg.iter().map(|p| p.trim_matches('/').to_string()));
    if paths.is_empty() {
        return Err(Error::Other(
            "name the files or directories to get (after the ticket, or in the lode:// URI)".into(),
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
        &share.options(&net),
        &bar,
    ))?;
    bar.finish();
    drop(bar);
    ui.report(&r, |r| {
        format!(
            "got {} file(s), {} in {:.2}s",
            r.files.len(),
            human(r.transfer.bytes),
            r.transfer.seconds
        )
    })?;
    if !ui.json {
        print_swarm(ui, r.transfer.swarm.as_ref());
    }
    Ok(())
}
