//! The `lode clone` command.

use std::path::PathBuf;

use clap::Args;
use lode::progress::Progress as _;

use crate::cli::args::{ticket_arg, CapArg, NetArgs, ShareArgs};
use crate::cli::output::{print_transfer, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Copy a dataset from its providers into DIR and check out its main commit. With
/// --registry, TICKET is a dataset name listed there.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode clone lode1abc… worm-data\n  lode clone worm-tracks --registry lodereg1…\n  lode clone lode1abc… videos --link   # huge files: hard-link, no second copy\n  lode clone lode1abc… big --lazy   # history only; then `lode get PATH`"
)]
pub struct CloneArgs {
    /// A ticket: an address ticket (`lode1…` from `lode serve`), a capability ticket (`lodecap1…` from `lode grant`), or with --registry a dataset name.
    #[arg(value_parser = ticket_arg)]
    ticket: String,
    /// The directory to clone into (default: dataset-ID, the first 8 hex digits of its id).
    dir: Option<PathBuf>,
    /// Resolve TICKET as a dataset name at this registry (lodereg1…).
    #[arg(long, value_name = "TICKET")]
    registry: Option<String>,
    /// Fetch and keep what the dataset publishes, to serve it on, without checking out
    /// (for a restricted dataset: ciphertext only; needs a --relay or --read ticket).
    #[arg(long)]
    mirror: bool,
    /// Hard-link files from the object store into the working tree instead of copying
    /// them (no second copy on disk; the files are read-only, as with `lode add --link`);
    /// later checkouts and pulls of this clone link too.
    #[arg(long, conflicts_with = "mirror")]
    link: bool,
    /// Commits and trees only, no file content: `lode get PATH` fetches files later and
    /// `lode drop PATH` frees them again (for datasets bigger than the disk).
    #[arg(long, conflicts_with = "mirror")]
    lazy: bool,
    #[command(flatten)]
    cap: CapArg,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    share: ShareArgs,
}

pub fn cmd_clone(ctx: &Ctx, ui: &mut Ui, args: CloneArgs) -> CliResult {
    let CloneArgs {
        ticket,
        dir,
        registry,
        mirror,
        link,
        lazy,
        cap,
        net,
        share,
    } = args;
    let (ticket, cap) = match registry {
        Some(reg) => {
            let reg: lode::ticket::RegistryTicket = reg.parse()?;
            let t =
                runtime()?.block_on(lode::net::registry::resolve(&reg, &ticket, &net.options()))?;
            lode::net::registry::remember(&ctx.home, &reg);
            (t, cap.bundle()?)
        }
        None => lode::net::fetch::resolve_ticket(&ticket, cap.capability.as_deref())?,
    };
    let dir = ctx.cwd.join(dir.unwrap_or_else(|| {
        PathBuf::from(format!("dataset-{}", &hex::encode(ticket.dataset)[..8]))
    }));
    let bar = ui.bar("clone");
    let (repo, r) = runtime()?.block_on(lode::net::fetch::clone(
        &dir,
        ctx.home.clone(),
        ctx.opts.clone(),
        &ticket,
        lode::net::fetch::CloneOptions {
            cap,
            mirror,
            link,
            lazy,
        },
        &share.options(&net),
        &bar,
    ))?;
    bar.finish();
    drop(bar);
    {
        let verb = format!("cloned into {}:", repo.root().display());
        print_transfer(ui, &verb, &r)?;
    }
    Ok(())
}
