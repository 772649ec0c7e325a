//! The `lode show` command.

use clap::Args;
use lode::ops;

use crate::cli::output::{fmt_time, human, print_changes, print_meta, Ui};
use crate::cli::{CliResult, Ctx};

/// Show the dataset id and a commit (default HEAD) with its changes.
#[derive(Args)]
#[command(after_help = "Example:\n  lode show HEAD~1")]
pub struct ShowArgs {
    /// The commit to show (default HEAD): an id (or a unique prefix), a tag, HEAD~N.
    rev: Option<String>,
}

pub fn cmd_show(ctx: &Ctx, ui: &mut Ui, args: ShowArgs) -> CliResult {
    let ShowArgs { rev } = args;
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
                c.author_label,
                if c.signature_valid {
                    ""
                } else {
                    " (BAD SIGNATURE)"
                }
            ))?;
            if let Some(o) = c.person.as_ref().and_then(|p| p.orcid.as_ref()) {
                ui.line(format!("orcid   https://orcid.org/{o}"))?;
            }
            ui.line(format!("date    {}", fmt_time(c.time)))?;
            ui.line(format!("files   {} ({})", s.files, human(s.bytes)))?;
            print_meta(ui, &c.metadata)?;
            ui.line("")?;
            for l in c.message.lines() {
                ui.line(format!("    {l}"))?;
            }
            ui.line("")?;
            print_changes(ui, &s.changes)?;
        } else {
            ui.line("no commits yet")?;
        }
    }
    Ok(())
}
