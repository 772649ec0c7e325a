//! The `lode mirror list` command.

use crate::cli::output::{human, Ui};
use crate::cli::{CliResult, Ctx};

pub fn cmd_list(ctx: &Ctx, ui: &mut Ui) -> CliResult {
    let list = lode::net::mirror::list(&ctx.home)?;
    if ui.json {
        ui.json(&list)?;
    } else {
        for r in lode::net::mirror::followed(&ctx.home) {
            ui.line(format!(
                "obeys the taint notices of registry {}",
                hex::encode(r.key())
            ))?;
        }
        for v in lode::net::volunteer::volunteered(&ctx.home) {
            let reg: Option<lode::ticket::RegistryTicket> = v.registry.parse().ok();
            ui.line(format!(
                "volunteers at registry {} for {}{}",
                reg.map_or("?".into(), |r| hex::encode(r.key())),
                if v.all {
                    "every public dataset".to_string()
                } else {
                    v.subjects.join(", ")
                },
                v.quota
                    .map_or(String::new(), |q| format!(" within {}", human(q)))
            ))?;
        }
        for m in list {
            ui.line(format!(
                "{}  seq {}  {}{}  from {}",
                &m.dataset[..16],
                m.seq.map_or("-".into(), |s| s.to_string()),
                human(m.bytes),
                if m.restricted {
                    "  restricted (ciphertext)"
                } else {
                    ""
                },
                m.origin.join(",")
            ))?;
        }
    }
    Ok(())
}
