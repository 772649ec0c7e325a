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
//!
//! Sizes: every plaintext is padded (Padmé, [`pad_len`]) inside the encryption, so a mirror
//! learns only O(log log n) bits of each object's size. Envelopes say which format their
//! ciphertexts have: `LODE` 2 padded, `LODE` 1 (sealed by older versions) unpadded.

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

/// Envelopes whose ciphertexts hold the plaintext as it is (format 1: still read).
const ENVELOPE_MAGIC_V1: &[u8; 5] = b"LODE\x01";
/// Envelopes whose ciphertexts hold the plaintext padded (format 2: what `seal` writes).
const ENVELOPE_MAGIC: &[u8; 5] = b"LODE\x02";
/// The start of a padded plaintext, inside the encryption: magic, then the length (u64 LE).
const PAD_MAGIC: &[u8; 5] = b"LODP\x01";
const PAD_HEADER: u64 = 13;
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
    /// Whether every ciphertext it names holds a padded plaintext ([`pad_len`]): true for
    /// the envelopes this build seals (magic `LODE` 2), false for format 1 ones (`LODE` 1).
    #[serde(skip)]
    pub padded: bool,
}

impl Envelope {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let magic = if self.padded {
            ENVELOPE_MAGIC
        } else {
            ENVELOPE_MAGIC_V1
        };
        let mut v = magic.to_vec();
        v.extend(postcard::to_stdvec(self).expect("encodes"));
        v
    }

    /// Decodes strictly (magic, no trailing bytes, canonical, bounded).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Envelope, String> {
        let (body, padded) = match bytes.strip_prefix(&ENVELOPE_MAGIC[..]) {
            Some(b) => (b, true),
            None => (
                bytes
                    .strip_prefix(&ENVELOPE_MAGIC_V1[..])
                    .ok_or("not an envelope object (or a newer format: upgrade lode)")?,
                false,
            ),
        };
        let (mut env, rest): (Envelope, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| format!("malformed envelope: {e}"))?;
        env.padded = padded;
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

/// The padded length of a plaintext of `len` bytes with its header: Padmé (as in PURBs),
/// which rounds up to a number whose low bits are zero, keeping at most
/// O(log log n) bits of the length and costing at most 12% (less for larger objects).
pub fn pad_len(len: u64) -> u64 {
    let l = len + PAD_HEADER;
    let e = 63 - u64::from(l.leading_zeros()); // floor(log2 l); l >= 13
    let s = 64 - u64::from(e.leading_zeros()); // floor(log2 e) + 1
    let mask = (1u64 << (e - s)) - 1;
    (l + mask) & !mask
}

/// The padded form of `data`: header (magic, length), the bytes, zeros up to [`pad_len`].
fn pad(data: &[u8]) -> Vec<u8> {
    let total = pad_len(data.len() as u64) as usize;
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(PAD_MAGIC);
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    v.extend_from_slice(data);
    v.resize(total, 0);
    v
}

fn bad_padding(msg: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("bad padding: {msg}"),
    )
}

/// Reads the bytes out of a padded plaintext, checking the header, that the padding is
/// zeros and that the total is exactly [`pad_len`] (one padded form per plaintext).
struct Unpad<R: Read> {
    inner: R,
    /// Bytes of the plaintext still to give; `None` before the header is read.
    left: Option<u64>,
    len: u64,
    done: bool,
}

impl<R: Read> Unpad<R> {
    fn new(inner: R) -> Self {
        Unpad {
            inner,
            left: None,
            len: 0,
            done: false,
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let mut pad = 0u64;
        let mut buf = [0u8; 8192];
        loop {
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|b| *b != 0) {
                return Err(bad_padding("non-zero padding bytes"));
            }
            pad += n as u64;
            if PAD_HEADER + self.len + pad > pad_len(self.len) {
                return Err(bad_padding("longer than its length allows"));
            }
        }
        if PAD_HEADER + self.len + pad != pad_len(self.len) {
            return Err(bad_padding("shorter than its length requires"));
        }
        self.done = true;
        Ok(())
    }
}

impl<R: Read> Read for Unpad<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let left = match self.left {
            Some(l) => l,
            None => {
                let mut h = [0u8; PAD_HEADER as usize];
                self.inner
                    .read_exact(&mut h)
                    .map_err(|_| bad_padding("no header"))?;
                if &h[..5] != PAD_MAGIC {
                    return Err(bad_padding("no header"));
                }
                self.len = u64::from_le_bytes(h[5..].try_into().expect("8 bytes"));
                self.left = Some(self.len);
                self.len
            }
        };
        if left == 0 {
            self.finish()?;
            return Ok(0);
        }
        let k = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..k])?;
        if n == 0 {
            return Err(bad_padding("shorter than its length"));
        }
        self.left = Some(left - n as u64);
        Ok(n)
    }
}

/// Encrypts `data` to `recipients` (a fresh random file key each time), padded.
fn encrypt_bytes(data: &[u8], recipients: &[age::x25519::Recipient]) -> Result<Vec<u8>> {
    let data = Zeroizing::new(pad(data));
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| age_err("cannot encrypt", e))?;
    let mut out = Vec::with_capacity(data.len() + 256);
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| age_err("cannot encrypt", e))?;
    w.write_all(&data)
        .map_err(|e| age_err("cannot encrypt", e))?;
    w.finish().map_err(|e| age_err("cannot encrypt", e))?;
    Ok(out)
}

/// Decrypts a small ciphertext object with any of `ids` (unpadding it when `padded`).
fn decrypt_bytes(
    repo: &Repo,
    id: &ObjectId,
    ids: &[age::x25519::Identity],
    padded: bool,
) -> Result<Vec<u8>> {
    let data = repo.store().read_verified(id, MAX_OBJECT_META_SIZE)?;
    let dec = age::Decryptor::new_buffered(&data[..]).map_err(|e| age_err("cannot decrypt", e))?;
    let mut r = dec
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| age_err("cannot decrypt", e))?;
    let mut out = Vec::new();
    let read = if padded {
        Unpad::new(r).read_to_end(&mut out)
    } else {
        r.read_to_end(&mut out)
    };
    read.map_err(|e| age_err("ciphertext does not authenticate", e))?;
    Ok(out)
}

/// Encrypts the stored object `plain`, padded, to `recipient`, streaming; returns the
/// ciphertext id.
fn encrypt_object(
    repo: &Repo,
    plain: &ObjectId,
    recipient: &age::x25519::Recipient,
) -> Result<ObjectId> {
    let store = repo.store();
    let file = store.open(plain)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot read object", store.path(plain), e))?
        .len();
    let mut input = BufReader::with_capacity(1 << 20, file).take(len);
    let tmp = store.temp()?;
    let hasher = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, tmp.as_file()),
        hasher: blake3::Hasher::new(),
    };
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(|e| age_err("cannot encrypt", e))?;
    let mut w = enc
        .wrap_output(hasher)
        .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    let copied = (|| -> std::io::Result<u64> {
        w.write_all(PAD_MAGIC)?;
        w.write_all(&len.to_le_bytes())?;
        let n = std::io::copy(&mut input, &mut w)?;
        let mut zeros = pad_len(len) - PAD_HEADER - len;
        let block = [0u8; 8192];
        while zeros > 0 {
            let k = zeros.min(block.len() as u64) as usize;
            w.write_all(&block[..k])?;
            zeros -= k as u64;
        }
        Ok(n)
    })()
    .map_err(|e| Error::io("cannot encrypt into", tmp.path(), e))?;
    if copied != len {
        return Err(Error::ObjectCorrupt {
            id: *plain,
            path: None,
        });
    }
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
    padded: bool,
) -> Result<()> {
    let store = repo.store();
    let input = BufReader::with_capacity(1 << 20, store.open(cipher)?);
    decrypt_from(store, input, cipher, plain, ids, padded)
}

/// Decrypts the ciphertext `cipher` read from `input` (a stored object, or bytes verified
/// while they stream in) into the plaintext object `plain`; see [`decrypt_object`]. With
/// `padded` (the envelope's format), the padding is checked and removed.
pub fn decrypt_from(
    store: &crate::store::Store,
    input: impl std::io::BufRead,
    cipher: &ObjectId,
    plain: &ObjectId,
    ids: &[age::x25519::Identity],
    padded: bool,
) -> Result<()> {
    let dec = age::Decryptor::new_buffered(input).map_err(|e| {
        age_err(
            &format!("ciphertext {} is not an age file", cipher.short()),
            e,
        )
    })?;
    let r = dec
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| age_err(&format!("cannot decrypt {}", cipher.short()), e))?;
    let mut r: Box<dyn Read> = if padded {
        Box::new(Unpad::new(r))
    } else {
        Box::new(r)
    };
    let tmp = store.temp()?;
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
        // `cipher2/`: padded ciphertexts. Those of format 1 (`cipher/`, unpadded) are not
        // reused: every object is sealed again, padded, once.
        let key = format!("cipher2/{}", p.to_hex());
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
        padded: true,
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
    let ring = decrypt_bytes(repo, &env.keyring, std::slice::from_ref(&me), env.padded).map_err(|_| {
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
    let manifest_bytes = decrypt_bytes(repo, &env.manifest, &ids, env.padded).map_err(|_| {
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
/// only; the keyring and manifest stay). `padded` is the envelope's format.
pub fn decrypt_missing(
    repo: &Repo,
    manifest: &Manifest,
    ids: &[age::x25519::Identity],
    keep: bool,
    padded: bool,
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
                            decrypt_object(repo, cipher, plain, ids, padded)?;
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
    decrypt_missing(repo, &manifest, &ids, true, env.padded)?;
    repo.store().sync()?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_lengths() {
        // 33 and 34 bytes pad alike; lengths only grow, by at most 12%.
        assert_eq!(pad_len(33), pad_len(34));
        let mut prev = 0;
        for len in (0..100_000u64).chain([1 << 20, (60 << 20) + 7, u32::MAX as u64]) {
            let p = pad_len(len);
            assert!(p >= len + PAD_HEADER && p >= prev, "{len}");
            assert!(
                (p - len - PAD_HEADER) * 100 <= (len + PAD_HEADER) * 12,
                "{len}"
            );
            prev = p;
        }
        // Few distinct sizes: 1000..2000 bytes map to a handful of padded lengths.
        let sizes: HashSet<u64> = (1000..2000).map(pad_len).collect();
        assert!(sizes.len() <= 17, "{}", sizes.len());
    }

    #[test]
    fn envelope_formats() {
        let mut env = Envelope {
            dataset: [1; 32],
            epoch: 3,
            keyring: ObjectId([2; 32]),
            manifest: ObjectId([3; 32]),
            objects: vec![(ObjectId([4; 32]), 5)],
            padded: true,
        };
        let v2 = env.encode();
        assert!(v2.starts_with(b"LODE\x02"));
        assert_eq!(Envelope::decode(&v2).unwrap(), env);
        env.padded = false;
        let v1 = env.encode();
        assert!(v1.starts_with(b"LODE\x01"));
        assert_eq!(v1[5..], v2[5..]);
        let back = Envelope::decode(&v1).unwrap();
        assert!(!back.padded);
        let mut v3 = v2.clone();
        v3[4] = 3;
        assert!(Envelope::decode(&v3).unwrap_err().contains("upgrade lode"));
    }

    fn store() -> (tempfile::TempDir, crate::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::Store::new(dir.path().join("o"), dir.path().join("t"));
        s.create().unwrap();
        (dir, s)
    }

    fn age_encrypt(plain: &[u8], to: &age::x25519::Recipient) -> Vec<u8> {
        let enc =
            age::Encryptor::with_recipients(std::iter::once(to as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn padded_and_format_1_ciphertexts_decrypt() {
        let (_d, store) = store();
        let key = age::x25519::Identity::generate();
        let ids = [key.clone()];
        for data in [&b""[..], b"x", &[7u8; 33], &[7u8; 34], &vec![5u8; 3 << 20]] {
            let plain = ObjectId::of(data);
            // Format 2: padded inside the encryption.
            let c = age_encrypt(&pad(data), &key.to_public());
            let cid = ObjectId::of(&c);
            decrypt_from(&store, &c[..], &cid, &plain, &ids, true).unwrap();
            assert_eq!(std::fs::read(store.path(&plain)).unwrap(), data);
            store.remove(&plain).unwrap();
            // Format 1: the plaintext as it is (envelopes sealed before padding).
            let c = age_encrypt(data, &key.to_public());
            decrypt_from(&store, &c[..], &cid, &plain, &ids, false).unwrap();
            assert_eq!(std::fs::read(store.path(&plain)).unwrap(), data);
            store.remove(&plain).unwrap();
        }
        // Equal payloads for 33 and 34 bytes (the age header holds a random "grease"
        // stanza, so whole files differ by noise that says nothing about the content).
        let payload = |c: Vec<u8>| {
            let mac = c.windows(5).position(|w| w == b"\n--- ").unwrap();
            let end = mac + 1 + c[mac + 1..].iter().position(|b| *b == b'\n').unwrap();
            c.len() - end - 1
        };
        assert_eq!(
            payload(age_encrypt(&pad(&[1u8; 33]), &key.to_public())),
            payload(age_encrypt(&pad(&[1u8; 34]), &key.to_public()))
        );
        assert_ne!(
            payload(age_encrypt(&[1u8; 33], &key.to_public())),
            payload(age_encrypt(&[1u8; 34], &key.to_public()))
        );
    }

    #[test]
    fn malformed_padding_is_refused() {
        let (_d, store) = store();
        let key = age::x25519::Identity::generate();
        let ids = [key.clone()];
        let data = b"hello, padded world";
        let plain = ObjectId::of(data);
        let good = pad(data);
        let mut nonzero = good.clone();
        *nonzero.last_mut().unwrap() = 1;
        let mut long = good.clone();
        long.push(0);
        let short = good[..good.len() - 1].to_vec();
        let mut magic = good.clone();
        magic[0] = b'X';
        let mut length = good.clone();
        length[5] += 1;
        for (what, bad) in [
            ("non-zero", nonzero),
            ("long", long),
            ("short", short),
            ("magic", magic),
            ("length", length),
            ("unpadded", data.to_vec()),
        ] {
            let c = age_encrypt(&bad, &key.to_public());
            let err = decrypt_from(&store, &c[..], &ObjectId::of(&c), &plain, &ids, true);
            assert!(err.is_err(), "{what}");
            assert!(!store.has(&plain), "{what}");
        }
    }
}
