//! The `lode ls` command.

use std::path::PathBuf;

use clap::Args;
use lode::ops;

use crate::cli::output::{human, qp, Ui};
use crate::cli::{CliResult, Ctx};

/// List the files of a revision (default HEAD) with sizes and BLAKE3 ids.
#[derive(Args)]
#[command(after_help = "Example:\n  lode ls HEAD tables --json")]
pub struct LsArgs {
    /// The revision to list (default HEAD).
    rev: Option<String>,
    /// Only this path (a file or directory) of REV.
    path: Option<PathBuf>,
    /// Exact sizes in bytes (default: human sizes, as `diff` prints them).
    #[arg(long)]
    bytes: bool,
}

pub fn cmd_ls(ctx: &Ctx, ui: &mut Ui, args: LsArgs) -> CliResult {
    let LsArgs { rev, path, bytes } = args;
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
    Ok(())
}
