//! The `lode mirror volunteer` command.

use clap::Args;
use lode::Error;

use crate::cli::args::NetArgs;
use crate::cli::output::{human, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Offer a registry to mirror its datasets of some subjects (or all): `lode serve --mirrors
/// --follow` then adopts each matching public dataset that fits, serves it and tells the
/// registry (`lode copies` counts it). Run it again to change the offer.
#[derive(Args)]
#[command(
    after_help = "Example:\n  lode mirror volunteer --registry lodereg1… --subject elegans --quota 500G --max-dataset 50G\n  lode serve --mirrors --follow 60"
)]
pub struct VolunteerArgs {
    /// The registry's ticket (lodereg1…).
    #[arg(long, value_name = "TICKET")]
    registry: String,
    /// Words a dataset's name, title, description, license or keywords must contain (any
    /// of them).
    #[arg(long = "subject", value_name = "WORDS", num_args = 1.., required_unless_present = "all")]
    subjects: Vec<String>,
    /// Every public dataset the registry lists.
    #[arg(long, conflicts_with = "subjects")]
    all: bool,
    /// Total disk offered, e.g. 500G: no dataset is adopted beyond it.
    #[arg(long, value_name = "SIZE")]
    quota: Option<String>,
    /// Largest dataset adopted (its current version), e.g. 50G; also each adopted mirror's
    /// quota.
    #[arg(long, value_name = "SIZE")]
    max_dataset: Option<String>,
    #[command(flatten)]
    net: NetArgs,
}

fn size(flag: &str, s: Option<String>) -> Result<Option<u64>, Error> {
    s.map(|q| {
        lode::net::mirror::parse_size(&q)
            .ok_or_else(|| Error::Other(format!("{flag} takes a size like 50G or 512M, not {q:?}")))
    })
    .transpose()
}

pub fn cmd_volunteer(ctx: &Ctx, ui: &mut Ui, args: VolunteerArgs) -> CliResult {
    let VolunteerArgs {
        registry,
        subjects,
        all,
        quota,
        max_dataset,
        net,
    } = args;
    let quota = size("--quota", quota)?;
    let max_dataset = size("--max-dataset", max_dataset)?;
    let reg: lode::ticket::RegistryTicket = registry.parse()?;
    let subjects = subjects
        .iter()
        .flat_map(|s| s.split_whitespace().map(str::to_string))
        .collect();
    let v = runtime()?.block_on(lode::net::volunteer::volunteer(
        &ctx.home,
        &reg,
        subjects,
        all,
        quota,
        max_dataset,
        &net.options(),
    ))?;
    if ui.json {
        ui.json(&v)?;
        return Ok(());
    }
    let what = if v.all {
        "every public dataset".to_string()
    } else {
        format!("datasets matching {}", v.subjects.join(", "))
    };
    let limits = [
        v.quota.map(|q| format!("within {}", human(q))),
        v.max_dataset.map(|m| format!("none over {}", human(m))),
    ];
    let limits: Vec<String> = limits.into_iter().flatten().collect();
    ui.note(format!(
        "volunteered at registry {} for {what}{}{}",
        &hex::encode(reg.key())[..16],
        if limits.is_empty() { "" } else { ", " },
        limits.join(", ")
    ));
    ui.note("this storage manager now obeys that registry's taint notices");
    ui.note("run `lode serve --mirrors --follow SECONDS` to adopt and serve what matches");
    Ok(())
}
