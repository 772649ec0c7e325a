//! The `lode publish` command.

use clap::Args;
use lode::net::registry;
use lode::ticket::{RegistryTicket, Ticket};

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// List this dataset at a registry under NAME (default: the directory name), with its
/// title, description, license, keywords and the providers of its running `lode serve`.
#[derive(Args)]
#[command(after_help = "Example:\n  lode serve &\n  lode publish worm-tracks --registry lodereg1…")]
pub struct PublishArgs {
    /// The name to list the dataset under (default: the one it was published under before).
    name: Option<String>,
    /// The registry's ticket (lodereg1…), printed by `lode registry serve`.
    #[arg(long, value_name = "TICKET")]
    registry: String,
    /// Another ticket of this dataset (a mirror) whose providers to list too.
    #[arg(long = "provider", value_name = "TICKET")]
    providers: Vec<String>,
    /// For a restricted dataset: also list its title, description, license and
    /// keywords (otherwise only the name and providers are public).
    #[arg(long)]
    with_metadata: bool,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_publish(ctx: &Ctx, ui: &mut Ui, args: PublishArgs) -> CliResult {
    let PublishArgs {
        name,
        registry: reg,
        providers,
        with_metadata,
        net,
    } = args;
    publish(ctx, ui, name, &reg, &providers, with_metadata, &net)
}

fn publish(
    ctx: &Ctx,
    ui: &mut Ui,
    name: Option<String>,
    reg: &str,
    providers: &[String],
    with_metadata: bool,
    net: &NetArgs,
) -> CliResult {
    let repo = ctx.repo()?;
    let reg: RegistryTicket = reg.parse()?;
    let extra: Vec<Ticket> = providers
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()?;
    let name = match name {
        Some(n) => n,
        None => repo
            .root()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_lowercase(),
    };
    let r = runtime()?.block_on(registry::publish(
        &repo,
        &reg,
        &name,
        &extra,
        with_metadata,
        &net.options(),
    ))?;
    if ui.json {
        ui.json(&r)?;
    } else if r.new {
        ui.note(format!(
            "published {} as {:?} with {} provider(s)",
            &r.dataset[..16],
            r.name,
            r.providers
        ));
        if !r.metadata {
            ui.note("a restricted dataset: its metadata stays private (--with-metadata lists it)");
        }
    } else {
        ui.note(format!("the registry already lists {:?} as it is", r.name));
    }
    Ok(())
}
