//! The `lode registry` commands: `serve|approve|approvals|taint|notices`.

pub mod approvals;
pub mod approve;
pub mod notices;
pub mod serve;
pub mod taint;

use clap::{Args, Subcommand};
use lode::Error;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

#[derive(Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    action: RegistryAction,
}

#[derive(Subcommand)]
enum RegistryAction {
    /// Run a registry until Ctrl-C or SIGTERM; prints `registry: TICKET`.
    Serve(serve::ServeArgs),
    /// Approve a publisher at the curated registry this user operates (or, with --revoke,
    /// withdraw the approval): a signed approval that replicas honour too.
    #[command(
        after_help = "Examples:\n  lode registry approve lodeid1… --note \"Lee lab\" --registry lodereg1…\n  lode registry approve 5f2c…e1 --revoke --registry lodereg1…"
    )]
    Approve(approve::ApproveArgs),
    /// List a registry's publisher approvals (its own and its peers').
    Approvals(approvals::ApprovalsArgs),
    /// Publish a signed taint notice (takedown) at the registry this user operates: mirrors
    /// that follow it delete the dataset or blob.
    Taint(taint::TaintArgs),
    /// List a registry's taint notices (public and signed: anyone can audit them).
    Notices(notices::NoticesArgs),
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
