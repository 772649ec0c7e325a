//! The `lode remote` commands: named tickets.

use clap::{Args, Subcommand};

use crate::cli::args::{parse_ticket, ticket_arg};
use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Manage remotes (named tickets).
#[derive(Args)]
#[command(after_help = "Examples:\n  lode remote add lab lode1abc…\n  lode remote list")]
pub struct RemoteArgs {
    #[command(subcommand)]
    action: RemoteAction,
}

#[derive(Subcommand)]
enum RemoteAction {
    /// Add (or replace) a remote.
    Add {
        /// The remote's name, e.g. origin or lab.
        name: String,
        /// Its ticket: `lode1…` (from `lode serve`) or `lodecap1…` (from `lode grant`).
        #[arg(value_parser = ticket_arg)]
        ticket: String,
    },
    /// Remove a remote.
    Remove {
        /// The remote's name, as `lode remote` lists it.
        name: String,
    },
    /// List remotes.
    List,
}

pub fn cmd_remote(ctx: &Ctx, ui: &mut Ui, args: RemoteArgs) -> CliResult {
    let repo = ctx.repo()?;
    match args.action {
        RemoteAction::Add { name, ticket } => {
            lode::net::fetch::set_remote(&repo, &name, &parse_ticket(&ticket)?)?
        }
        RemoteAction::Remove { name } => lode::net::fetch::remove_remote(&repo, &name)?,
        RemoteAction::List => {
            let list = lode::net::fetch::remotes(&repo)?;
            if ui.json {
                let m: std::collections::BTreeMap<String, String> =
                    list.into_iter().map(|(n, t)| (n, t.to_string())).collect();
                ui.json(&m)?;
            } else {
                for (n, t) in list {
                    ui.line(format!("{n}\t{t}"))?;
                }
            }
        }
    }
    Ok(())
}
