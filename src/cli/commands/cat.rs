//! The `lode cat` command.

use std::io::{self, Write};

use clap::Args;
use lode::{ops, Error};

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Write a file of a revision to stdout (checked against its hash first).
#[derive(Args)]
#[command(after_help = "Example:\n  lode cat v1:tables/neurons.csv | head")]
pub struct CatArgs {
    /// REV:PATH
    spec: String,
}

pub fn cmd_cat(ctx: &Ctx, ui: &mut Ui, args: CatArgs) -> CliResult {
    let CatArgs { spec } = args;
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
    Ok(())
}
