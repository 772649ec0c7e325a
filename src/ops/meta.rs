//! `meta`: the dataset's editable metadata. Content is immutable; metadata changes are
//! pending in the database until the next commit records them.

use crate::db::CONFIG;
use crate::error::{Error, Result};
use crate::object::Metadata;
use crate::repo::Repo;

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
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

/// Sets (`Some`) or clears (`None`) one field. `authors` and `keywords` take a
/// comma-separated list; any other key is a free `key=value` pair.
pub fn set(repo: &Repo, key: &str, value: Option<&str>) -> Result<Metadata> {
    let _lock = repo.lock()?;
    let mut m = repo.pending_metadata()?;
    let text = value.map(str::to_string);
    match key {
        "title" => m.title = text,
        "description" => m.description = text,
        "license" => m.license = text,
        "authors" => m.authors = value.map(split_list).unwrap_or_default(),
        "keywords" => m.keywords = value.map(split_list).unwrap_or_default(),
        other => {
            let k = other.strip_prefix("extra.").unwrap_or(other);
            if !valid_extra_key(k) {
                return Err(Error::BadMetaKey(other.to_string()));
            }
            match text {
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
        "authors" => Some(m.authors.join(", ")).filter(|s| !s.is_empty()),
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
