//! The `lode checkout` command.

use std::path::PathBuf;

use clap::Args;
use lode::ops;
use lode::progress::Progress as _;

use crate::cli::args::repo_paths;
use crate::cli::output::{human, Ui};
use crate::cli::{CliResult, Ctx};

/// Write a revision (or some of its paths) into the working tree.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode checkout v1\n  lode checkout HEAD~2 tables/neurons.csv\n  lode checkout main"
)]
pub struct CheckoutArgs {
    /// The revision to write: a tag, a commit id (or a unique prefix), HEAD~N or main.
    rev: String,
    /// Only these paths (files or directories) of REV; HEAD does not move.
    paths: Vec<PathBuf>,
    /// Overwrite uncommitted changes.
    #[arg(short, long)]
    force: bool,
}

pub fn cmd_checkout(ctx: &Ctx, ui: &mut Ui, args: CheckoutArgs) -> CliResult {
    let CheckoutArgs { rev, paths, force } = args;
    let repo = ctx.repo()?;
    let rels = repo_paths(&repo, &ctx.cwd, &paths)?;
    let bar = ui.bar("checkout");
    let r = ops::checkout::checkout(&repo, &rev, &rels, force, &bar)?;
    bar.finish();
    drop(bar);
    ui.report(&r, |r| {
        format!(
            "checked out {} ({} written, {} removed, {})",
            &r.commit[..12],
            r.written,
            r.removed,
            human(r.bytes_written)
        )
    })?;
    Ok(())
}
