//! Ciphertext objects: age encryption of small values (keyring, manifest) and of stored
//! objects, streaming, and decryption into verified plaintext objects.

use std::io::{BufReader, Read, Write};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::Repo;

use crate::object::MAX_OBJECT_META_SIZE;

use super::padding::{pad, pad_len, Unpad, PAD_HEADER, PAD_MAGIC};

fn age_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("{what}: {e}"))
}

/// Encrypts `data` to `recipients` (a fresh random file key each time), padded.
pub(super) fn encrypt_bytes(data: &[u8], recipients: &[age::x25519::Recipient]) -> Result<Vec<u8>> {
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
pub(super) fn decrypt_bytes(
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
pub(super) fn encrypt_object(
    repo: &Repo,
    plain: &ObjectId,
    recipient: &age::x25519::Recipient,
) -> Result<ObjectId> {
    let store = repo.store();
    let file = store.reader(plain)?;
    let len = store.size_of(plain)?;
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
pub(super) fn decrypt_object(
    repo: &Repo,
    cipher: &ObjectId,
    plain: &ObjectId,
    ids: &[age::x25519::Identity],
    padded: bool,
) -> Result<()> {
    let store = repo.store();
    let input = BufReader::with_capacity(1 << 20, store.reader(cipher)?);
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

#[cfg(test)]
mod tests {
    use super::*;

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
