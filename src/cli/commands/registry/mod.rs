//! The `lode registry` commands: `serve|approve|approvals|taint|notices`.

pub mod approvals;
pub mod approve;
pub mod notices;
pub mod serve;
pub mod taint;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use lode::net::endpoint::NetOptions;
use lode::ticket::RegistryTicket;
use lode::Error;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Run a registry, or act on one: taint notices (takedowns), their public list.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode registry serve --peer lodereg1…other\n  lode registry taint --dataset 5f2c…e1 --reason \"court order 2026-117\" --registry lodereg1…\n  lode registry notices --registry lodereg1…"
)]
pub struct RegistryArgs {
    #[command(subcommand)]
    action: RegistryAction,
}

#[derive(Subcommand)]
enum RegistryAction {
    Serve(serve::ServeArgs),
    Approve(approve::ApproveArgs),
    Approvals(approvals::ApprovalsArgs),
    Taint(taint::TaintArgs),
    Notices(notices::NoticesArgs),
}

/// What an operator's command (`approve`, `taint`) needs: the running registry and the
/// directory that holds its key.
#[derive(Args)]
pub(crate) struct OperatorArgs {
    /// The running registry's ticket.
    #[arg(long, value_name = "TICKET")]
    registry: String,
    /// The registry's directory (holds its key; default $LODE_HOME/registry).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
}

impl OperatorArgs {
    /// The registry's directory, its ticket and the network options.
    pub(crate) fn open(self, ctx: &Ctx) -> Result<(PathBuf, RegistryTicket, NetOptions), Error> {
        let reg: RegistryTicket = self.registry.parse()?;
        let dir = self
            .dir
            .map(|d| ctx.cwd.join(d))
            .unwrap_or_else(|| lode::net::registry::default_dir(&ctx.home));
        Ok((dir, reg, self.net.options()))
    }
}

pub(crate) fn parse_id(what: &str, s: &str) -> Result<[u8; 32], Error> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut id)
        .map_err(|_| Error::Other(format!("{what} is 64 hex digits, not {s:?}")))?;
    Ok(id)
}

pub fn cmd_registry(ctx: &Ctx, ui: &mut Ui, args: RegistryArgs) -> CliResult {
    match args.action {
        RegistryAction::Serve(args) => serve::cmd_serve(ctx, ui, args),
        RegistryAction::Approve(args) => approve::cmd_approve(ctx, ui, args),
        RegistryAction::Approvals(args) => approvals::cmd_approvals(ctx, ui, args),
        RegistryAction::Taint(args) => taint::cmd_taint(ctx, ui, args),
        RegistryAction::Notices(args) => notices::cmd_notices(ctx, ui, args),
    }
}
