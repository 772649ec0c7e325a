//! The `lode add` command.

use std::path::PathBuf;

use clap::Args;
use lode::ops;
use lode::ops::add::AddOptions;
use lode::progress::Progress as _;
use lode::store::ImportMode;

use crate::cli::args::repo_paths;
use crate::cli::output::{human, Ui};
use crate::cli::{CliResult, Ctx};

/// Stage files and directories (recursively; honours .lodeignore).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode add .\n  lode add videos/ --link   # huge files: hard-link instead of copying"
)]
pub struct AddArgs {
    #[arg(required = true)]
    /// Files and directories to stage (`.` for everything; directories recursively).
    paths: Vec<PathBuf>,
    /// Hard-link files into the store instead of copying them (no second copy on disk;
    /// the files become read-only, and editing one in place damages the stored object).
    #[arg(long)]
    link: bool,
}

pub fn cmd_add(ctx: &Ctx, ui: &mut Ui, args: AddArgs) -> CliResult {
    let AddArgs { paths, link } = args;
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
    ui.report(&r, |r| {
        format!(
            "{} added, {} updated, {} removed; {} stored",
            r.added.len(),
            r.updated.len(),
            r.removed.len(),
            human(r.bytes_stored)
        )
    })?;
    Ok(())
}
