//! The `lode drop` command.

use std::path::PathBuf;

use clap::Args;

use crate::cli::args::{repo_paths, NetArgs};
use crate::cli::output::{human, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Free the content of files in a lazy clone (`clone --lazy`) once a provider of origin
/// has shown that it holds it; `lode get PATH` fetches it again. Refuses files changed or
/// staged since the last commit, and content no provider holds (it may be the only copy).
#[derive(Args)]
#[command(after_help = "Example:\n  lode drop video/")]
pub struct DropArgs {
    /// Files or directories whose content to free.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_drop(ctx: &Ctx, ui: &mut Ui, args: DropArgs) -> CliResult {
    let repo = ctx.repo()?;
    let paths = repo_paths(&repo, &ctx.cwd, &args.paths)?;
    let r = runtime()?.block_on(lode::net::fetch::drop_here(
        &repo,
        &paths,
        &args.net.options(),
    ))?;
    ui.report(&r, |r| {
        let kept = if r.kept.is_empty() {
            String::new()
        } else {
            format!(
                "; {} kept (same content as a file that stays)",
                r.kept.len()
            )
        };
        format!(
            "dropped {} file(s), {} freed{kept}",
            r.dropped.len(),
            human(r.bytes_freed)
        )
    })?;
    Ok(())
}
