//! The `lode tag` command.

use clap::Args;
use lode::ops;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// List tags, or create one at REV (default HEAD).
#[derive(Args)]
#[command(after_help = "Example:\n  lode tag v1.0")]
pub struct TagArgs {
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
}

pub fn cmd_tag(ctx: &Ctx, ui: &mut Ui, args: TagArgs) -> CliResult {
    let TagArgs {
        name,
        rev,
        force,
        delete,
    } = args;
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
    Ok(())
}
