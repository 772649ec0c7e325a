//! The `lode log` command.

use clap::Args;
use lode::{ops, Error, Repo};

use crate::cli::output::{fmt_time, Ui};
use crate::cli::{CliResult, Ctx};

/// List commits, newest first.
#[derive(Args)]
#[command(after_help = "Example:\n  lode log -n 5")]
pub struct LogArgs {
    /// Where to start: a commit id (or a unique prefix), a tag, HEAD, HEAD~N (default HEAD).
    rev: Option<String>,
    /// Show at most N commits.
    #[arg(short = 'n', long, value_name = "N")]
    limit: Option<usize>,
    /// One line per commit: short id, tags and branch, first line of the message.
    #[arg(long)]
    oneline: bool,
}

pub fn cmd_log(ctx: &Ctx, ui: &mut Ui, args: LogArgs) -> CliResult {
    let LogArgs {
        rev,
        limit,
        oneline,
    } = args;
    let repo = ctx.repo()?;
    let commits = ops::history::log(&repo, rev.as_deref(), limit)?;
    if ui.json {
        ui.json(&commits)?;
    } else {
        let names = ref_names(&repo)?;
        for c in commits {
            let deco = names
                .get(&c.id)
                .map(|n| format!(" ({})", n.join(", ")))
                .unwrap_or_default();
            let bad = if c.signature_valid {
                ""
            } else {
                " (BAD SIGNATURE)"
            };
            if oneline {
                let first = c.message.lines().next().unwrap_or("");
                ui.line(format!("{}{deco} {first}{bad}", &c.id[..12]))?;
                continue;
            }
            ui.line(format!("commit {}{deco}", c.id))?;
            ui.line(format!("Author: {}{bad}", c.author_label))?;
            ui.line(format!("Date:   {}", fmt_time(c.time)))?;
            ui.line("")?;
            for l in c.message.lines() {
                ui.line(format!("    {l}"))?;
            }
            ui.line("")?;
        }
    }
    Ok(())
}

/// The names that point at each commit, as `log` decorates it (git's order: where HEAD is,
/// the branch, then tags).
fn ref_names(repo: &Repo) -> Result<std::collections::HashMap<String, Vec<String>>, Error> {
    let mut names: std::collections::HashMap<String, Vec<String>> = Default::default();
    let head = repo.head()?;
    if let (Some(c), Some(b)) = (head.commit, &head.branch) {
        names
            .entry(c.to_hex())
            .or_default()
            .push(format!("HEAD -> {}", b.strip_prefix("heads/").unwrap_or(b)));
    } else if let Some(c) = head.commit {
        names.entry(c.to_hex()).or_default().push("HEAD".into());
    }
    for (name, id) in repo.refs("tags/")? {
        let tag = name.strip_prefix("tags/").unwrap_or(&name);
        names
            .entry(id.to_hex())
            .or_default()
            .push(format!("tag: {tag}"));
    }
    Ok(names)
}
