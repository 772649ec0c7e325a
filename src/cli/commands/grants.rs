//! The `lode grants` command.

use lode::ops;

use crate::cli::output::{fmt_time, grant_json, GrantJson, Ui};
use crate::cli::{CliResult, Ctx};

pub fn cmd_grants(ctx: &Ctx, ui: &mut Ui) -> CliResult {
    let repo = ctx.repo()?;
    let list = ops::access::grants(&repo)?;
    let revoked = ops::access::revoked_set(&ops::access::revocations(&repo)?);
    let ds = repo.dataset_id()?.to_bytes();
    let now = ops::access::now();
    let people = ops::access::holder_people(&repo)?;
    let rows: Vec<GrantJson> = list
        .iter()
        .map(|b| {
            let mut j = grant_json(b);
            j.holder_person = people.get(&b.leaf().body.audience).cloned();
            j.status = match lode::trust::verify_chain(b, &ds, now, &revoked) {
                Ok(_) => "valid".into(),
                Err(e) => e.to_string(),
            };
            j
        })
        .collect();
    if ui.json {
        ui.json(&rows)?;
    } else {
        for r in rows {
            ui.line(format!(
                "{}  {}  {:<16} {:<12} expires {}  {}{}",
                &r.id[..12],
                match &r.holder_person {
                    Some(p) => {
                        let mut key = [0u8; 32];
                        let _ = hex::decode_to_slice(&r.holder, &mut key);
                        p.label(&key)
                    }
                    None => r.holder[..12].to_string(),
                },
                r.rights,
                if r.scope.is_empty() {
                    "/".to_string()
                } else {
                    r.scope.join(",")
                },
                fmt_time(r.expires as i64),
                r.status,
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!("  {:?}", r.note)
                }
            ))?;
        }
    }
    Ok(())
}
