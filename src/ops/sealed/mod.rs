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
//!
//! Files, by role: `envelope` — `Envelope`, `Manifest`; `padding` — Padmé and the padded
//! form; `cipher` — ciphertext objects (age, streaming, verified decryption); `keyring` —
//! the keyring and the epoch secrets kept in the config table; `seal` — sealing a head;
//! `open` — opening one.

mod cipher;
mod envelope;
mod keyring;
mod open;
mod padding;
mod seal;

pub use cipher::decrypt_from;
pub use envelope::{read_envelope, Envelope, Manifest};
pub use open::{decrypt_missing, needed, open, read_manifest};
pub use padding::pad_len;
pub use seal::{holds_ciphertext, seal};
