//! `meta`: the dataset's editable metadata. Content is immutable; metadata changes are
//! pending in the database until the next commit records them.

use crate::db::CONFIG;
use crate::error::{Error, Result};
use crate::object::Metadata;
use crate::repo::Repo;

/// The fields lode knows; any other key is a free `extra` pair.
pub const KNOWN_KEYS: &[&str] = &["title", "description", "license", "authors", "keywords"];

/// Each value is one item; a value may hold several separated by `;` (so that
/// `"Lee, Ana; Ortiz, Ben"` is two authors: commas belong to names). Keywords also split on
/// commas.
fn list(values: &[String], commas: bool) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(|c| c == ';' || (commas && c == ',')))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn valid_extra_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The known key `key` is one or two edits away from (`licence` → `license`), for a key
/// given without `extra.`.
fn near_known(key: &str) -> Option<&'static str> {
    KNOWN_KEYS
        .iter()
        .copied()
        .find(|k| strsim::damerau_levenshtein(key, k) <= 2.min(k.len() / 3))
}

/// Checks that `v` is an SPDX license expression (`CC-BY-4.0`, `MIT OR Apache-2.0`,
/// `LicenseRef-lab-terms` for a license SPDX does not list).
pub fn check_license(v: &str) -> Result<()> {
    match spdx::Expression::parse(v) {
        Ok(_) => Ok(()),
        Err(_) => {
            let guess = spdx::imprecise_license_id(v)
                .map(|(id, _)| format!(" (did you mean {}?)", id.name))
                .unwrap_or_default();
            Err(Error::BadLicense(format!(
                "{v:?} is not an SPDX license identifier{guess}"
            )))
        }
    }
}

/// Sets (non-empty `values`) or clears (empty) one field. `authors` and `keywords` take
/// several values (see [`list`]); every other key takes one. Refuses an unknown key that is
/// a near miss of a known one (use `extra.NAME` to mean it) and a license that is not SPDX.
pub fn set(repo: &Repo, key: &str, values: &[String]) -> Result<Metadata> {
    let one = || -> Result<Option<String>> {
        match values {
            [] => Ok(None),
            [v] => Ok(Some(v.clone())),
            _ => Err(Error::Other(format!(
                "`{key}` takes one value, {} were given; quote it: lode meta {key} \"...\"",
                values.len()
            ))),
        }
    };
    let _lock = repo.lock()?;
    let mut m = repo.pending_metadata()?;
    match key {
        "title" => m.title = one()?,
        "description" => m.description = one()?,
        "license" => {
            let v = one()?;
            if let Some(v) = &v {
                check_license(v)?;
            }
            m.license = v;
        }
        "authors" => m.authors = list(values, false),
        "keywords" => m.keywords = list(values, true),
        other => {
            if !other.starts_with("extra.") && values.len() <= 1 {
                if let Some(k) = near_known(other) {
                    return Err(Error::NearMetaKey {
                        given: other.to_string(),
                        known: k,
                    });
                }
            }
            let k = other.strip_prefix("extra.").unwrap_or(other);
            if !valid_extra_key(k) {
                return Err(Error::BadMetaKey(other.to_string()));
            }
            match one()? {
                Some(v) => m.extra.insert(k.to_string(), v),
                None => m.extra.remove(k),
            };
        }
    }
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    {
        let bytes = postcard::to_stdvec(&m).expect("postcard encodes in-memory values");
        tx.open_table(CONFIG)?
            .insert("metadata", bytes.as_slice())?;
    }
    tx.commit()?;
    Ok(m)
}

/// Reads one field as text (lists joined with ", ").
pub fn get(m: &Metadata, key: &str) -> Result<Option<String>> {
    Ok(match key {
        "title" => m.title.clone(),
        "description" => m.description.clone(),
        "license" => m.license.clone(),
        "authors" => Some(m.authors.join("; ")).filter(|s| !s.is_empty()),
        "keywords" => Some(m.keywords.join(", ")).filter(|s| !s.is_empty()),
        other => {
            let k = other.strip_prefix("extra.").unwrap_or(other);
            if !valid_extra_key(k) {
                return Err(Error::BadMetaKey(other.to_string()));
            }
            m.extra.get(k).cloned()
        }
    })
}
