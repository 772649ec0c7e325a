//! Plain settings of a repository, kept in the `config-v1` table: the private flag, whether
//! it is a mirror, whether checkouts hard-link, a mirror's quota, and the objects it dropped
//! or deleted under a taint notice. Below `ops`, so that every operation can read them.

use crate::db::CONFIG;
use crate::error::Result;
use crate::repo::Repo;

pub(crate) fn get(repo: &Repo, key: &str) -> Result<Option<Vec<u8>>> {
    let db = repo.db()?;
    let tx = db.db.begin_read()?;
    crate::db::get_config(&tx, key)
}

pub(crate) fn list(repo: &Repo, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let db = repo.db()?;
    let tx = db.db.begin_read()?;
    let t = tx.open_table(CONFIG)?;
    let mut out = Vec::new();
    for item in t.range(prefix..)? {
        let (k, v) = item?;
        let Some(rest) = k.value().strip_prefix(prefix) else {
            break;
        };
        out.push((rest.to_string(), v.value().to_vec()));
    }
    Ok(out)
}

/// Writes config entries in one transaction (`None` removes). The caller holds the lock.
pub(crate) fn put(repo: &Repo, entries: &[(String, Option<Vec<u8>>)]) -> Result<()> {
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    {
        let mut t = tx.open_table(CONFIG)?;
        for (k, v) in entries {
            match v {
                Some(v) => {
                    t.insert(k.as_str(), v.as_slice())?;
                }
                None => {
                    t.remove(k.as_str())?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// True when the dataset is restricted: served only to ticket holders.
pub fn is_private(repo: &Repo) -> Result<bool> {
    Ok(get(repo, "private")?.is_some_and(|v| v == b"1"))
}

/// Marks the dataset restricted (or public).
pub fn set_private(repo: &Repo, private: bool) -> Result<()> {
    let _lock = repo.lock()?;
    put_private(repo, private)
}

/// [`set_private`] for a caller that holds the lock.
pub fn put_private(repo: &Repo, private: bool) -> Result<()> {
    put(repo, &[("private".into(), private.then(|| b"1".to_vec()))])
}

/// True for a mirror (`clone --mirror`): it fetches and serves, but never decrypts or checks
/// out.
pub fn is_mirror(repo: &Repo) -> Result<bool> {
    Ok(get(repo, "mirror")?.is_some())
}

/// Marks the repository a mirror.
pub fn set_mirror(repo: &Repo) -> Result<()> {
    let _lock = repo.lock()?;
    put(repo, &[("mirror".into(), Some(b"1".to_vec()))])
}

/// True for a lazy clone (`clone --lazy`): it holds every commit and tree but only the file
/// content fetched with `lode get PATH`; absent content is neither missing nor deleted.
pub fn is_lazy(repo: &Repo) -> Result<bool> {
    Ok(get(repo, "lazy")?.is_some())
}

/// Marks the repository a lazy clone.
pub fn set_lazy(repo: &Repo) -> Result<()> {
    let _lock = repo.lock()?;
    put(repo, &[("lazy".into(), Some(b"1".to_vec()))])
}

/// Whether checkouts hard-link files from the object store (set by `lode clone --link`).
pub fn checkout_links(repo: &Repo) -> Result<bool> {
    Ok(get(repo, "checkout-link")?.is_some())
}

/// Makes checkouts hard-link files from the object store instead of copying them.
pub fn set_checkout_links(repo: &Repo) -> Result<()> {
    let _lock = repo.lock()?;
    put(repo, &[("checkout-link".into(), Some(b"1".to_vec()))])
}

/// Objects a mirror dropped to stay within its quota (config `dropped/ID`): not served, not
/// reported missing by `verify`.
pub fn dropped(repo: &Repo) -> Result<std::collections::HashSet<crate::id::ObjectId>> {
    Ok(list(repo, "dropped/")?
        .into_iter()
        .filter_map(|(k, _)| k.parse().ok())
        .collect())
}

/// Records dropped objects and forgets those that came back. The caller holds the lock.
pub fn set_dropped(
    repo: &Repo,
    add: &[crate::id::ObjectId],
    back: &[crate::id::ObjectId],
) -> Result<()> {
    let mut entries: Vec<(String, Option<Vec<u8>>)> = add
        .iter()
        .map(|id| (format!("dropped/{}", id.to_hex()), Some(vec![1])))
        .collect();
    entries.extend(
        back.iter()
            .map(|id| (format!("dropped/{}", id.to_hex()), None)),
    );
    put(repo, &entries)
}

/// Objects a taint notice made this mirror delete (config `dropped/ID` = `t`): not served,
/// not reported missing, and never fetched again.
pub fn tainted(repo: &Repo) -> Result<std::collections::HashSet<crate::id::ObjectId>> {
    Ok(list(repo, "dropped/")?
        .into_iter()
        .filter(|(_, v)| v == b"t")
        .filter_map(|(k, _)| k.parse().ok())
        .collect())
}

/// Records objects deleted under a taint notice. The caller holds the lock.
pub fn set_tainted(repo: &Repo, ids: &[crate::id::ObjectId]) -> Result<()> {
    let entries: Vec<(String, Option<Vec<u8>>)> = ids
        .iter()
        .map(|id| (format!("dropped/{}", id.to_hex()), Some(b"t".to_vec())))
        .collect();
    put(repo, &entries)
}

/// A mirror's quota in bytes (config `quota`).
pub fn quota(repo: &Repo) -> Result<Option<u64>> {
    Ok(get(repo, "quota")?.and_then(|v| v.try_into().ok().map(u64::from_be_bytes)))
}

/// Sets a mirror's quota.
pub fn set_quota(repo: &Repo, bytes: u64) -> Result<()> {
    let _lock = repo.lock()?;
    put(
        repo,
        &[("quota".into(), Some(bytes.to_be_bytes().to_vec()))],
    )
}
