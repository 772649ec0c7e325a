//! The `lode id` command.

use clap::Args;
use lode::keys::key_to_hex;
use lode::person::Person;
use serde::Serialize;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Print this device's public key (its identity) and its identity card; name the person
/// behind it.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode id\n  lode id --card   # send this to a dataset owner\n  lode id --name \"Ana Lee\" --email ana@lab.org --orcid 0000-0002-1825-0097\n\nA name is signed into the identity card and recorded in each new commit, so `log`, `show`,\n`grants` and the HTTP gateway show `Ana Lee <ana@lab.org> (604a738c)`. It is a claim, not a\nproof: anyone can put any name on their own key. The key is what lode verifies."
)]
pub struct IdArgs {
    /// Print only the identity card (ed25519 key + age recipient, signed), as one string.
    #[arg(long)]
    card: bool,
    /// Set the display name this identity claims ("" removes the name, email and ORCID iD).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Set the email address shown beside the name ("" removes it).
    #[arg(long, value_name = "ADDRESS")]
    email: Option<String>,
    /// Set the ORCID iD (0000-0002-1825-0097, or its https://orcid.org/ URL; "" removes it).
    #[arg(long, value_name = "ID")]
    orcid: Option<String>,
}

pub fn cmd_id(ctx: &Ctx, ui: &mut Ui, args: IdArgs) -> CliResult {
    let IdArgs {
        card,
        name,
        email,
        orcid,
    } = args;
    if name.is_some() || email.is_some() || orcid.is_some() {
        set_person(ctx, name, email, orcid)?;
    }
    let key = ctx.home.device_key()?;
    let id = key_to_hex(&key.verifying_key());
    let c = ctx.home.card()?;
    if ui.json {
        #[derive(Serialize)]
        struct J {
            device: String,
            age_recipient: String,
            person: Option<Person>,
            card: String,
        }
        ui.json(&J {
            device: id,
            age_recipient: c.body.age.clone(),
            person: c.person().cloned(),
            card: c.to_string(),
        })?;
    } else if card {
        ui.line(c.to_string())?;
    } else {
        ui.line(id)?;
        if let Some(p) = c.person() {
            ui.line(format!("name: {}", p.label(&c.body.key)))?;
            if let Some(o) = &p.orcid {
                ui.line(format!("orcid: https://orcid.org/{o}"))?;
            }
        }
        ui.line(format!("age recipient: {}", c.body.age))?;
        ui.line(format!("identity card: {c}"))?;
    }
    Ok(())
}

/// Merges the given fields into the stored person: a given field replaces the stored one,
/// an empty one removes it; an empty name removes the whole person.
fn set_person(
    ctx: &Ctx,
    name: Option<String>,
    email: Option<String>,
    orcid: Option<String>,
) -> CliResult {
    let old = ctx.home.person()?;
    let keep = |new: Option<String>, old: Option<&String>| match new {
        Some(v) if v.trim().is_empty() => None,
        Some(v) => Some(v),
        None => old.cloned(),
    };
    let name = match name {
        Some(n) if n.trim().is_empty() => {
            ctx.home.set_person(None)?;
            return Ok(());
        }
        Some(n) => n,
        None => match &old {
            Some(p) => p.name.clone(),
            None => {
                return Err(lode::Error::Other(
                    "this identity has no name yet; give one with --name \"Ana Lee\" as well"
                        .into(),
                )
                .into())
            }
        },
    };
    let email = keep(email, old.as_ref().and_then(|p| p.email.as_ref()));
    let orcid = keep(orcid, old.as_ref().and_then(|p| p.orcid.as_ref()));
    let person = Person::new(&name, email.as_deref(), orcid.as_deref())
        .map_err(|e| lode::Error::Other(format!("{e}; nothing was changed")))?;
    ctx.home.set_person(Some(&person))?;
    Ok(())
}
