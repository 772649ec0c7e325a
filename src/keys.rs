//! Device identity and dataset keys: ed25519 secret keys kept as files (mode 0600) under the
//! lode home directory (`$LODE_HOME`, else the user's config directory + `lode`).
//!
//! Layout: `HOME/identity.key` (this device; its public key is the device id and, later, the
//! iroh endpoint id) and `HOME/datasets/<dataset-id>.key` (the key made by `lode init`; its
//! public key is the dataset id). A key file is `lode-ed25519-secret-v1 <64 hex>\n`.
//! `HOME/person.json` holds the name (email, ORCID iD) the device's identity claims.
//!
//! Invariant: secret keys never implement `Debug`/`Display`; files are written to a temp file
//! with mode 0600, fsynced and renamed, so a key is either whole or absent. A key file that
//! group or others may read or write is refused, not used (as ssh refuses such keys).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::person::Person;

const KEY_PREFIX: &str = "lode-ed25519-secret-v1 ";

/// The directory that holds this user's keys.
#[derive(Clone, Debug)]
pub struct Home {
    dir: PathBuf,
}

/// Formats a public key the way lode prints ids (lowercase hex).
pub fn key_to_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

impl Home {
    /// Uses `dir` as the key directory (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Home {
        Home { dir: dir.into() }
    }

    /// Returns the key directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn device_path(&self) -> PathBuf {
        self.dir.join("identity.key")
    }

    fn dataset_path(&self, dataset: &VerifyingKey) -> PathBuf {
        self.dir
            .join("datasets")
            .join(format!("{}.key", key_to_hex(dataset)))
    }

    /// Loads the device key, creating it when missing.
    pub fn device_key(&self) -> Result<SigningKey> {
        self.device_key_at("identity.key")
    }

    /// Loads the key kept in file `name` of this directory (a device or registry key),
    /// creating it when missing.
    pub fn device_key_at(&self, name: &str) -> Result<SigningKey> {
        let path = self.dir.join(name);
        match read_key(&path)? {
            Some(k) => Ok(k),
            None => {
                let key = SigningKey::generate(&mut OsRng);
                write_key(&path, &key)?;
                Ok(key)
            }
        }
    }

    /// Loads the device key if it exists, without creating it.
    pub fn existing_device_key(&self) -> Result<Option<SigningKey>> {
        read_key(&self.device_path())
    }

    /// Loads the key kept in file `name` of this directory, if it exists.
    pub fn existing_key_at(&self, name: &str) -> Result<Option<SigningKey>> {
        read_key(&self.dir.join(name))
    }

    /// Loads this device's age X25519 identity (`HOME/identity.age`, 0600), creating it when
    /// missing. It decrypts restricted datasets shared with this device.
    pub fn age_identity(&self) -> Result<age::x25519::Identity> {
        use age::secrecy::ExposeSecret;
        let path = self.dir.join("identity.age");
        match read_secret(&path)? {
            Some(t) => t.trim().parse().map_err(|_| Error::Key {
                path: path.clone(),
                msg: "not an age identity".into(),
            }),
            None => {
                let id = age::x25519::Identity::generate();
                let text = Zeroizing::new(format!("{}\n", id.to_string().expose_secret()));
                write_secret(&path, text.as_bytes())?;
                Ok(id)
            }
        }
    }

    /// This device's identity card: its ed25519 key and age recipient, self-signed, dated
    /// when the device key was made, so printing it twice gives the same card.
    pub fn card(&self) -> Result<crate::trust::Card> {
        let key = self.device_key()?;
        let age = self.age_identity()?.to_public().to_string();
        // When the device key was made (its file's time), not when the card is printed: the
        // same identity gives the same card every time (ed25519 signatures are deterministic).
        let created = fs::metadata(self.device_path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let person = self.person()?;
        crate::trust::Card::sign(&key, &age, created, person.as_ref())
            .map_err(|e| Error::Other(e.to_string()))
    }

    fn person_path(&self) -> PathBuf {
        self.dir.join("person.json")
    }

    /// The person this device's identity names (`lode id --name`), if one was set: signed
    /// into its identity card and recorded in its commits.
    pub fn person(&self) -> Result<Option<Person>> {
        let path = self.person_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read the identity's name", &path, e)),
        };
        let bad = |msg: String| Error::Key {
            path: path.clone(),
            msg: format!("{msg}; set it again with `lode id --name …`"),
        };
        let p: Person = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        p.check().map_err(bad)?;
        Ok(Some(p))
    }

    /// Sets (or, with `None`, removes) the person this device's identity names.
    pub fn set_person(&self, person: Option<&Person>) -> Result<()> {
        let path = self.person_path();
        match person {
            Some(p) => {
                let text = serde_json::to_string_pretty(p).expect("a person encodes") + "\n";
                write_secret(&path, text.as_bytes())
            }
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io("cannot remove the identity's name", &path, e))
                }
                _ => Ok(()),
            },
        }
    }

    /// Makes and stores a new dataset key.
    pub fn new_dataset_key(&self) -> Result<SigningKey> {
        let key = SigningKey::generate(&mut OsRng);
        write_key(&self.dataset_path(&key.verifying_key()), &key)?;
        Ok(key)
    }

    /// Loads the secret key of a dataset, if this user holds it.
    pub fn dataset_key(&self, dataset: &VerifyingKey) -> Result<Option<SigningKey>> {
        read_key(&self.dataset_path(dataset))
    }
}

/// Reads a secret file, refusing one that other users can read or write (as ssh does): a
/// key that leaked to them is no longer this device's alone, and lode will not use it
/// silently. `None` when the file does not exist.
fn read_secret(path: &Path) -> Result<Option<Zeroizing<String>>> {
    use std::io::Read;
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read key file", path, e)),
    };
    let mode = f
        .metadata()
        .map_err(|e| Error::io("cannot read key file", path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::Key {
            path: path.to_path_buf(),
            msg: format!(
                "permissions {:04o} are too open: other users can read or change this secret key, so it is not used. Run `chmod 600 {}` (and replace the key if others may have copied it)",
                mode & 0o7777,
                path.display()
            ),
        });
    }
    let mut text = Zeroizing::new(String::new());
    f.read_to_string(&mut text)
        .map_err(|e| Error::io("cannot read key file", path, e))?;
    Ok(Some(text))
}

fn read_key(path: &Path) -> Result<Option<SigningKey>> {
    let Some(text) = read_secret(path)? else {
        return Ok(None);
    };
    let bad = |msg: &str| Error::Key {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    };
    let hex_part = text
        .trim_end()
        .strip_prefix(KEY_PREFIX)
        .ok_or_else(|| bad("not a lode key file"))?;
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_part, &mut bytes[..]).map_err(|_| bad("malformed key"))?;
    Ok(Some(SigningKey::from_bytes(&bytes)))
}

fn write_key(path: &Path, key: &SigningKey) -> Result<()> {
    let text = Zeroizing::new(format!("{KEY_PREFIX}{}\n", hex::encode(key.to_bytes())));
    write_secret(path, text.as_bytes())
}

/// Writes a secret file: temp file with mode 0600, fsync, rename.
fn write_secret(path: &Path, text: &[u8]) -> Result<()> {
    let dir = path.parent().expect("key paths have a parent");
    fs::create_dir_all(dir).map_err(|e| Error::io("cannot create key directory", dir, e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // Whatever the umask, and even over a temp file left by a killed run.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(text)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot write key file", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("h"));
        let a = home.device_key().unwrap();
        let b = home.device_key().unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let mode = fs::metadata(home.device_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let d = home.new_dataset_key().unwrap();
        let again = home.dataset_key(&d.verifying_key()).unwrap().unwrap();
        assert_eq!(again.to_bytes(), d.to_bytes());
    }
}
