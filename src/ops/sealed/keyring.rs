//! The keyring (every epoch's secret, as it travels encrypted to the readers) and the epoch
//! secrets and ciphertext records kept in the repository's config table.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::db::CONFIG;
use crate::error::Result;
use crate::repo::Repo;

/// Epoch secrets, as the keyring carries them (wiped from memory when dropped).
#[derive(Serialize, Deserialize)]
pub(super) struct Keyring {
    pub(super) epochs: Vec<(u32, String)>,
}

impl Drop for Keyring {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for (_, s) in &mut self.epochs {
            s.zeroize();
        }
    }
}

pub(super) fn config_get(repo: &Repo, key: &str) -> Result<Option<Vec<u8>>> {
    let db = repo.db()?;
    let tx = db.db.begin_read()?;
    crate::db::get_config(&tx, key)
}

pub(super) fn config_put(repo: &Repo, entries: &[(String, Vec<u8>)]) -> Result<()> {
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    {
        let mut t = tx.open_table(CONFIG)?;
        for (k, v) in entries {
            t.insert(k.as_str(), v.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn epoch_key(n: u32) -> String {
    format!("epoch-secret/{n:08}")
}

/// The epoch secrets this repository holds (made here, or learnt from a keyring).
pub(super) fn epoch_secrets(repo: &Repo) -> Result<BTreeMap<u32, age::x25519::Identity>> {
    let db = repo.db()?;
    let tx = db.db.begin_read()?;
    let t = tx.open_table(CONFIG)?;
    let mut out = BTreeMap::new();
    for item in redb::ReadableTable::range(&t, "epoch-secret/".."epoch-secret0")? {
        let (k, v) = item?;
        let n: u32 = k.value()["epoch-secret/".len()..].parse().unwrap_or(0);
        let text = Zeroizing::new(String::from_utf8_lossy(v.value()).to_string());
        if let Ok(id) = age::x25519::Identity::from_str(text.trim()) {
            out.insert(n, id);
        }
    }
    Ok(out)
}
