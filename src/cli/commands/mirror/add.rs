//! The `lode mirror add` command.

use clap::Args;
use lode::progress::Progress as _;
use lode::Error;

use crate::cli::args::{ticket_arg, CapArg, MirrorShareArgs, NetArgs};
use crate::cli::output::{human, print_transfer, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Start mirroring the dataset of TICKET (under $LODE_HOME/mirrors/).
#[derive(Args)]
pub struct AddArgs {
    /// The dataset's ticket: an address ticket (`lode1…`), or for a restricted dataset its relay ticket (`lodecap1…`, see --ticket).
    #[arg(value_parser = ticket_arg)]
    ticket: String,
    /// Disk to volunteer, e.g. 50G: beyond it, the files only old versions use are
    /// dropped, oldest first (other providers still serve them).
    #[arg(long, value_name = "SIZE")]
    quota: Option<String>,
    #[command(flatten)]
    cap: CapArg,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    share: MirrorShareArgs,
}

pub fn cmd_add(ctx: &Ctx, ui: &mut Ui, args: AddArgs) -> CliResult {
    let AddArgs {
        ticket,
        quota,
        cap,
        net,
        share,
    } = args;
    let quota = quota
        .map(|q| {
            lode::net::mirror::parse_size(&q).ok_or_else(|| {
                Error::Other(format!("--quota takes a size like 50G or 512M, not {q:?}"))
            })
        })
        .transpose()?;
    let (ticket, cap) = lode::net::fetch::resolve_ticket(&ticket, cap.capability.as_deref())?;
    let bar = ui.bar("mirror");
    let (repo, r) = runtime()?.block_on(lode::net::mirror::add(
        &ctx.home,
        &ticket,
        cap,
        &share.options(&net),
        &bar,
    ))?;
    bar.finish();
    drop(bar);
    if let Some(q) = quota {
        lode::config::set_quota(&repo, q)?;
        for d in lode::net::mirror::enforce_quota(&repo)? {
            ui.note(format!(
                "over quota: dropped {} ({})",
                &d.id[..12],
                human(d.bytes)
            ));
        }
    }
    let verb = format!("mirroring into {}:", repo.root().display());
    print_transfer(ui, &verb, &r)?;
    ui.note("serve it with `lode serve --mirrors`");
    Ok(())
}
