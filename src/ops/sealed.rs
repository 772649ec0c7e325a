//! Restricted datasets: what a serving peer publishes instead of plaintext, and how a reader
//! opens it. See docs/SECURITY.md ("Restricted datasets").
//!
//! For each epoch the owner keeps an age X25519 key E (a new one whenever a reader is
//! removed). Every object of the published closure (commits, trees, blobs) is age-encrypted
//! to E with its own random file key, once, into a *ciphertext object* (a plain object of the
//! store, named by the BLAKE3 of the ciphertext). Two more ciphertext objects go with each
//! head: the *keyring* (the secrets of every epoch, age-encrypted to each current reader's
//! recipient from its identity card) and the *manifest* (the plaintext refs, and for every
//! plaintext object its ciphertext id and epoch, encrypted to E). The public *envelope*
//! object names the keyring, the manifest and every ciphertext id with its size; the signed
//! head's `main` names the envelope. A mirror can therefore fetch, verify and serve every
//! byte without any key, and a reader verifies each decrypted object against the plaintext
//! id the manifest gives (authenticated, through the envelope, by the writer's signed head).
//!
//! Decryption writes to a temp file and renames only after age authenticated the last chunk
//! and the plaintext hashes to the expected id.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::db::CONFIG;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::MAX_OBJECT_META_SIZE;
use crate::repo::Repo;

const ENVELOPE_MAGIC: &[u8; 5] = b"LODE\x01";
/// Most ciphertext objects one envelope lists.
const MAX_ENVELOPE_OBJECTS: usize = 4 << 20;

/// The public part of a restricted head: what to fetch, and where the keys are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub dataset: [u8; 32],
    /// The epoch of the manifest's key.
    pub epoch: u32,
    pub keyring: ObjectId,
    pub manifest: ObjectId,
    /// Every ciphertext object of the closure, with its size.
    pub objects: Vec<(ObjectId, u64)>,
}

impl Envelope {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = ENVELOPE_MAGIC.to_vec();
        v.extend(postcard::to_stdvec(self).expect("encodes"));
        v
    }

    /// Decodes strictly (magic, no trailing bytes, canonical, bounded).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Envelope, String> {
        let body = bytes
            .strip_prefix(&ENVELOPE_MAGIC[..])
            .ok_or("not an envelope object")?;
        let (env, rest): (Envelope, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| format!("malformed envelope: {e}"))?;
        if !rest.is_empty() || env.encode() != bytes {
            return Err("non-canonical envelope".into());
        }
        if env.objects.len() > MAX_ENVELOPE_OBJECTS {
            return Err("envelope too large".into());
        }
        Ok(env)
    }

    /// Every object a mirror holds for this envelope, with sizes (the envelope itself first).
    pub fn closure(&self, id: ObjectId, size: u64) -> Vec<(ObjectId, u64)> {
        let mut v = vec![(id, size)];
        v.extend(self.objects.iter().copied());
        v
    }
}

/// The encrypted part of a restricted head.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub main: Option<ObjectId>,
    pub tags: Vec<(String, ObjectId)>,
    /// plaintext id -> (ciphertext id, epoch), for every object of the closure.
    pub map: BTreeMap<ObjectId, (ObjectId, u32)>,
}

/// Epoch secrets, as the keyring carries them (wiped from memory when dropped).
#[derive(Serialize, Deserialize)]
struct Keyring {
    epochs: Vec<(u32, String)>,
}

impl Drop for Keyring {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for (_, s) in &mut self.epochs {
            s.zeroize();
        }
    }
}

fn age_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("{what}: {e}"))
}

/// Encrypts `data` to `recipients` (a fresh random file key each time).
fn encrypt_bytes(data: &[u8], recipients: &[age::x25519::Recipient]) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| age_err("cannot encrypt", e))?;
    let mut out = Vec::with_capacity(data.len() + 256);
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| age_err("cannot encrypt", e))?;
    w.write_all(data)
        .map_err(|e| age_err("cannot encrypt", e))?;
    w.finish().map_err(|e| age_err("cannot encrypt", e))?;
    Ok(out)
}

/// Decrypts a small ciphertext object with any of `ids`.
fn decrypt_bytes(repo: &Repo, id: &ObjectId, ids: &[age::x25519::Identity]) -> Result<Vec<u8>> {
    let data = repo.store().read_verified(id, MAX_OBJECT_META_SIZE)?;
    let dec = age::Decryptor::new_buffered(&data[..]).map_err(|e| age_err("cannot decrypt", e))?;
    let mut r = dec
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| age_err("cannot decrypt", e))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .map_err(|e| age_err("ciphertext does not authenticate", e))?;
    Ok(out)
}

/// Encrypts the stored object `plain` to `recipient`, streaming; returns the ciphertext id.
fn encrypt_object(
    repo: &Repo,
    plain: &ObjectId,
    recipient: &age::x25519::Recipient,
) -> Result<ObjectId> {
    let store = repo.store();
    let mut input = BufReader::with_capacity(1 << 20, store.open(plain)?);
    let tmp = tempfile::NamedTempFile::new_in(store.tmp_dir())
        .map_err(|e| Error::io("cannot create a temp file in", store.tmp_dir(), e))?;
    let hasher = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, tmp.as_file()),
        hasher: blake3::Hasher::new(),
    };
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(|e| age_err("cannot encrypt", e))?;
    let mut w = enc
        .wrap_output(hasher)
        .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    std::io::copy(&mut input, &mut w)
        .map_err(|e| Error::io("cannot encrypt into", tmp.path(), e))?;
    let mut hasher = w
        .finish()
        .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    hasher
        .inner
        .flush()
        .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    let id = ObjectId(*hasher.hasher.finalize().as_bytes());
    drop(hasher);
    let (_, path) = tmp
        .keep()
        .map_err(|e| Error::io("cannot keep", store.tmp_dir(), e.error))?;
    store.adopt(&path, &id)?;
    Ok(id)
}

/// Decrypts ciphertext object `cipher` into the plaintext object `plain`, streaming through
/// a temp file that becomes the object only when age authenticated every chunk and the
/// plaintext hashes to `plain`.
fn decrypt_object(
    repo: &Repo,
    cipher: &ObjectId,
    plain: &ObjectId,
    ids: &[age::x25519::Identity],
) -> Result<()> {
    let store = repo.store();
    let input = BufReader::with_capacity(1 << 20, store.open(cipher)?);
    decrypt_from(store, input, cipher, plain, ids)
}

/// Decrypts the ciphertext `cipher` read from `input` (a stored object, or bytes verified
/// while they stream in) into the plaintext object `plain`; see [`decrypt_object`].
pub fn decrypt_from(
    store: &crate::store::Store,
    input: impl std::io::BufRead,
    cipher: &ObjectId,
    plain: &ObjectId,
    ids: &[age::x25519::Identity],
) -> Result<()> {
    let dec = age::Decryptor::new_buffered(input).map_err(|e| {
        age_err(
            &format!("ciphertext {} is not an age file", cipher.short()),
            e,
        )
    })?;
    let mut r = dec
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| age_err(&format!("cannot decrypt {}", cipher.short()), e))?;
    let tmp = tempfile::NamedTempFile::new_in(store.tmp_dir())
        .map_err(|e| Error::io("cannot create a temp file in", store.tmp_dir(), e))?;
    // Decryption on this thread, hashing and writing on another: the two overlap.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let file = tmp.as_file();
    let (read, hashed) = std::thread::scope(|s| {
        let writer = s.spawn(move || -> std::io::Result<blake3::Hasher> {
            let mut hasher = blake3::Hasher::new();
            let mut out = file;
            for buf in rx {
                hasher.update(&buf);
                out.write_all(&buf)?;
            }
            Ok(hasher)
        });
        let read = (|| -> std::io::Result<()> {
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let mut filled = 0;
                while filled < buf.len() {
                    let n = r.read(&mut buf[filled..])?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(());
                }
                buf.truncate(filled);
                if tx.send(buf).is_err() {
                    return Ok(()); // the writer failed; its error is reported below
                }
            }
        })();
        drop(tx);
        let hashed = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("writer thread failed")));
        (read, hashed)
    });
    read.map_err(|e| {
        Error::Other(format!(
            "ciphertext {} does not authenticate (tampered?): {e}",
            cipher.short()
        ))
    })?;
    let hasher = hashed.map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    let got = ObjectId(*hasher.finalize().as_bytes());

    if got != *plain {
        return Err(Error::Other(format!(
            "ciphertext {} decrypts to {}, not to {} as the signed manifest says",
            cipher.short(),
            got.short(),
            plain.short()
        )));
    }
    let (_, path) = tmp
        .keep()
        .map_err(|e| Error::io("cannot keep", store.tmp_dir(), e.error))?;
    store.adopt(&path, plain)
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn config_get(repo: &Repo, key: &str) -> Result<Option<Vec<u8>>> {
    let db = repo.db()?;
    let tx = db.db.begin_read()?;
    crate::db::get_config(&tx, key)
}

fn config_put(repo: &Repo, entries: &[(String, Vec<u8>)]) -> Result<()> {
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

fn epoch_key(n: u32) -> String {
    format!("epoch-secret/{n:08}")
}

/// The epoch secrets this repository holds (made here, or learnt from a keyring).
fn epoch_secrets(repo: &Repo) -> Result<BTreeMap<u32, age::x25519::Identity>> {
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

/// Seals the current refs of a restricted dataset for publishing: encrypts what has no
/// ciphertext yet, writes the keyring (to the current `readers`, from
/// `ops::access::reader_recipients`, and this device), the manifest and the envelope; opens
/// a new epoch when a reader was removed since the last one. Returns the envelope id. The
/// caller holds the writer lock.
pub fn seal(repo: &Repo, readers: &BTreeMap<[u8; 32], String>) -> Result<ObjectId> {
    let dataset = repo.dataset_id()?.to_bytes();
    let reader_keys: Vec<u8> = readers.keys().flatten().copied().collect();
    let mut secrets = epoch_secrets(repo)?;
    let current =
        config_get(repo, "epoch")?.and_then(|v| v.try_into().ok().map(u32::from_be_bytes));
    // A new epoch when there is none, or when someone of the current epoch's readers is gone.
    let need_new = match current {
        None => true,
        Some(n) => {
            let was = config_get(repo, &format!("epoch-readers/{n:08}"))?.unwrap_or_default();
            was.chunks(32)
                .any(|k| !readers.contains_key(&<[u8; 32]>::try_from(k).unwrap_or_default()))
                || !secrets.contains_key(&n)
        }
    };
    let epoch = if need_new {
        let n = current.map_or(0, |n| n + 1);
        let id = age::x25519::Identity::generate();
        config_put(
            repo,
            &[
                (
                    epoch_key(n),
                    id.to_string().expose_secret().as_bytes().to_vec(),
                ),
                ("epoch".into(), n.to_be_bytes().to_vec()),
                (format!("epoch-readers/{n:08}"), reader_keys.clone()),
            ],
        )?;
        secrets.insert(n, id);
        n
    } else {
        // Everyone who ever got this epoch's key is remembered, so that removing any of them
        // opens the next epoch.
        let n = current.unwrap_or(0);
        let key = format!("epoch-readers/{n:08}");
        let mut was: Vec<[u8; 32]> = config_get(repo, &key)?
            .unwrap_or_default()
            .chunks(32)
            .filter_map(|k| k.try_into().ok())
            .collect();
        was.extend(readers.keys().copied());
        was.sort();
        was.dedup();
        config_put(repo, &[(key, was.concat())])?;
        n
    };
    let recipient = secrets[&epoch].to_public();

    // Every plaintext object of the refs' closure, encrypted once.
    let main = repo.main()?;
    let tags: Vec<(String, ObjectId)> = repo
        .refs("tags/")?
        .into_iter()
        .map(|(n, id)| (n.trim_start_matches("tags/").to_string(), id))
        .collect();
    let roots: Vec<ObjectId> = main
        .iter()
        .copied()
        .chain(tags.iter().map(|(_, id)| *id))
        .collect();
    let plain = crate::ops::graph::closure(repo, &roots, &HashSet::new())?;
    let mut manifest = Manifest {
        main,
        tags,
        map: BTreeMap::new(),
    };
    let mut new_entries = Vec::new();
    for (p, _) in &plain {
        let key = format!("cipher/{}", p.to_hex());
        let known = config_get(repo, &key)?.and_then(|v| {
            let id: [u8; 32] = v.get(..32)?.try_into().ok()?;
            let ep: [u8; 4] = v.get(32..36)?.try_into().ok()?;
            Some((ObjectId(id), u32::from_be_bytes(ep)))
        });
        let entry = match known {
            Some((c, ep)) if repo.store().has(&c) => (c, ep),
            _ => {
                let c = encrypt_object(repo, p, &recipient)?;
                let mut v = c.0.to_vec();
                v.extend(epoch.to_be_bytes());
                new_entries.push((key, v));
                (c, epoch)
            }
        };
        manifest.map.insert(*p, entry);
    }
    // Keyring: every epoch's secret, to every current reader and to this device.
    let mut recipients: Vec<age::x25519::Recipient> = readers
        .values()
        .filter_map(|r| age::x25519::Recipient::from_str(r).ok())
        .collect();
    recipients.push(repo.home().age_identity()?.to_public());
    let ring = Keyring {
        epochs: secrets
            .iter()
            .map(|(n, id)| (*n, id.to_string().expose_secret().to_string()))
            .collect(),
    };
    let ring_plain = Zeroizing::new(postcard::to_stdvec(&ring).expect("encodes"));
    let keyring = repo
        .store()
        .put_bytes(&encrypt_bytes(&ring_plain, &recipients)?)?;
    let manifest_id = repo.store().put_bytes(&encrypt_bytes(
        &postcard::to_stdvec(&manifest).expect("encodes"),
        std::slice::from_ref(&recipient),
    )?)?;
    let mut objects: Vec<(ObjectId, u64)> = Vec::new();
    let mut seen = HashSet::new();
    for id in [keyring, manifest_id]
        .into_iter()
        .chain(manifest.map.values().map(|(c, _)| *c))
    {
        if seen.insert(id) {
            let size = std::fs::metadata(repo.store().path(&id))
                .map_err(|e| Error::io("cannot read", repo.store().path(&id), e))?
                .len();
            objects.push((id, size));
        }
    }
    let env = Envelope {
        dataset,
        epoch,
        keyring,
        manifest: manifest_id,
        objects,
    };
    let id = repo.store().put_bytes(&env.encode())?;
    repo.store().sync()?;
    config_put(repo, &new_entries)?;
    Ok(id)
}

/// True when this repository holds every ciphertext of a sealed head (the owner, who seals,
/// and mirrors); a reader's clone keeps the plaintext only.
pub fn holds_ciphertext(repo: &Repo) -> Result<bool> {
    Ok(crate::config::is_mirror(repo)? || repo.home().dataset_key(&repo.dataset_id()?)?.is_some())
}

/// Reads a stored envelope.
pub fn read_envelope(repo: &Repo, id: &ObjectId) -> Result<Envelope> {
    let bytes = repo.store().read_verified(id, MAX_OBJECT_META_SIZE)?;
    Envelope::decode(&bytes).map_err(|msg| Error::BadObject {
        id: *id,
        what: "envelope",
        msg,
    })
}

/// Opens a sealed head with this device's age identity: learns the epoch secrets from the
/// keyring and decrypts the manifest (the plaintext refs and the plaintext -> ciphertext
/// map). Needs the keyring and manifest objects locally. Returns the manifest and the epoch
/// identities.
pub fn read_manifest(
    repo: &Repo,
    env: &Envelope,
) -> Result<(Manifest, Vec<age::x25519::Identity>)> {
    let me = repo.home().age_identity()?;
    let ring = decrypt_bytes(repo, &env.keyring, std::slice::from_ref(&me)).map_err(|_| {
        Error::Other(
            "this device is not among the dataset's readers: it cannot decrypt the keyring (send `lode id --card` to the owner, who grants with it)".into(),
        )
    })?;
    let ring = Zeroizing::new(ring);
    let ring: Keyring =
        postcard::from_bytes(&ring).map_err(|e| Error::Other(format!("malformed keyring: {e}")))?;
    let mut ids = Vec::new();
    let mut learnt = Vec::new();
    for (n, secret) in &ring.epochs {
        let secret = Zeroizing::new(secret.clone());
        if let Ok(id) = age::x25519::Identity::from_str(&secret) {
            ids.push(id);
            learnt.push((epoch_key(*n), secret.as_bytes().to_vec()));
        }
    }
    let manifest_bytes = decrypt_bytes(repo, &env.manifest, &ids).map_err(|_| {
        Error::Other(format!(
            "cannot decrypt the manifest of epoch {}: this device was removed from the readers (revoked)",
            env.epoch
        ))
    })?;
    let manifest: Manifest = postcard::from_bytes(&manifest_bytes)
        .map_err(|e| Error::Other(format!("malformed manifest: {e}")))?;
    let listed: HashSet<ObjectId> = env.objects.iter().map(|(id, _)| *id).collect();
    if let Some((_, (c, _))) = manifest.map.iter().find(|(_, (c, _))| !listed.contains(c)) {
        return Err(Error::Other(format!(
            "the manifest names ciphertext {} that the signed envelope does not list",
            c.short()
        )));
    }
    config_put(repo, &learnt)?;
    Ok((manifest, ids))
}

/// The ciphertexts (with sizes) whose plaintext this repository lacks.
pub fn needed(repo: &Repo, env: &Envelope, manifest: &Manifest) -> Vec<(ObjectId, u64)> {
    let sizes: BTreeMap<ObjectId, u64> = env.objects.iter().copied().collect();
    let mut out: Vec<(ObjectId, u64)> = manifest
        .map
        .iter()
        .filter(|(p, _)| !repo.store().has(p))
        .map(|(_, (c, _))| (*c, sizes.get(c).copied().unwrap_or(0)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Decrypts every ciphertext whose plaintext is missing (two objects at a time), then, unless
/// `keep`, deletes the ciphertexts (a reader keeps plaintext only; a mirror keeps ciphertext
/// only; the keyring and manifest stay).
pub fn decrypt_missing(
    repo: &Repo,
    manifest: &Manifest,
    ids: &[age::x25519::Identity],
    keep: bool,
) -> Result<()> {
    let work: Vec<(ObjectId, ObjectId)> = manifest
        .map
        .iter()
        .filter(|(p, _)| !repo.store().has(p))
        .map(|(p, (c, _))| (*p, *c))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((plain, cipher)) = work.get(i) else {
                            return Ok(());
                        };
                        if !repo.store().has(plain) {
                            decrypt_object(repo, cipher, plain, ids)?;
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Other("decryption worker failed".into())))
            })
            .collect()
    });
    results.into_iter().collect::<Result<()>>()?;
    if !keep {
        for (_, cipher) in &work {
            let _ = repo.store().remove(cipher);
        }
    }
    Ok(())
}

/// Opens a sealed head whose every ciphertext is local: [`read_manifest`], then
/// [`decrypt_missing`] (keeping the ciphertexts).
pub fn open(repo: &Repo, env: &Envelope) -> Result<Manifest> {
    let (manifest, ids) = read_manifest(repo, env)?;
    decrypt_missing(repo, &manifest, &ids, true)?;
    repo.store().sync()?;
    Ok(manifest)
}
