//! Mutation fuzzing of every decoder that reads bytes from the network or from users:
//! capability tickets, identity cards, signed heads, revocations, sealed envelopes, address
//! and registry tickets, `lode/2` messages, registry entries and taint notices. Valid encodings are mutated at random (bit flips, byte
//! changes, truncation, insertion, duplication, splicing); every decoder must return an error
//! or a value, never panic, and whatever a strict decoder accepts must re-encode to exactly
//! the bytes it read (one canonical encoding). Signed objects that decode must be the original
//! (any change breaks the signature).
//!
//! Bounded: `LODE_FUZZ_ITERS` mutations per seed input (default 600: about ten seconds in a debug build). For a
//! long run: `LODE_FUZZ_ITERS=2000000 cargo test --release --locked fuzz -- --nocapture`.

use ed25519_dalek::SigningKey;
use lode::catalog::{Approval, Entry, EntryBody, Notice, Tainted};
use lode::net::proto::{self, Listing, Request, Response};
use lode::ops::sealed::Envelope;
use lode::ticket::{Provider, RegistryTicket, Ticket};
use lode::trust::{Bundle, Card, HeadBody, Link, LinkBody, Revocation, Rights, SignedHead, Target};
use lode::ObjectId;

/// xorshift64*: a small deterministic generator (the seed is printed on failure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(len + 1)),
            3 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next() as u8);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(16)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            5 if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = (a + rng.below(64)).min(other.len());
                let at = rng.below(len + 1);
                v.splice(at..at, other[a..b].iter().copied());
            }
            _ if len > 0 => {
                let i = rng.below(len);
                v[i] = [0x00, 0x7f, 0x80, 0xff][rng.below(4)];
            }
            _ => {}
        }
    }
    v
}

fn iters() -> usize {
    std::env::var("LODE_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600)
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let owner = SigningKey::from_bytes(&[1; 32]);
    let ds = owner.verifying_key().to_bytes();
    let b = SigningKey::from_bytes(&[2; 32]);
    let body = LinkBody {
        version: 1,
        dataset: ds,
        issuer: ds,
        audience: b.verifying_key().to_bytes(),
        parent: None,
        rights: Rights::READ.with(Rights::GRANT),
        scope: vec!["tables".into()],
        not_before: 1,
        expires: 1 << 40,
        max_depth: 2,
        nonce: [3; 16],
        note: "n".into(),
    };
    let root = Link::sign(body.clone(), &owner).unwrap();
    let mut d = body;
    d.issuer = b.verifying_key().to_bytes();
    d.audience = [0x42; 32];
    d.audience = SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes();
    d.parent = Some(root.id());
    d.max_depth = 1;
    let provider = Provider {
        id: ds,
        addrs: vec!["127.0.0.1:4000".parse().unwrap()],
        relay: Some("https://relay.example".into()),
    };
    let bundle = Bundle {
        links: vec![root.clone(), Link::sign(d, &b).unwrap()],
        hints: vec![provider.clone()],
    };
    let head = SignedHead::sign(
        HeadBody {
            version: 1,
            dataset: ds,
            signer: ds,
            seq: 3,
            main: Some([9; 32]),
            tags: vec![("v1".into(), [8; 32])],
            revocations: vec![[1; 32]],
            private: true,
            time: 5,
            chain: vec![],
        },
        &owner,
    );
    let rev = Revocation::sign(&ds, &owner, Target::Link(root.id()), 5, "x").unwrap();
    let card = Card::sign(
        &b,
        "age1gfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpqxkm8f4",
        5,
        Some(
            &lode::person::Person::new("Ana Lee", Some("ana@lab.org"), Some("0000-0002-1825-0097"))
                .unwrap(),
        ),
    )
    .unwrap();
    let env = Envelope {
        dataset: ds,
        epoch: 2,
        keyring: ObjectId([1; 32]),
        manifest: ObjectId([2; 32]),
        objects: vec![(ObjectId([3; 32]), 10), (ObjectId([4; 32]), 20)],
        padded: true,
    };
    let ticket = Ticket {
        dataset: ds,
        providers: vec![provider.clone()],
    };
    let req = Request::ListRefs {
        dataset: ds,
        ticket: Some(bundle.encode()),
    };
    let resp = Response::Refs(Listing {
        head: head.encode(),
        revocations: vec![rev.encode()],
    });
    let entry = Entry::sign(
        EntryBody {
            version: lode::catalog::ENTRY_VERSION,
            dataset: ds,
            seq: 7,
            name: "worm-tracks".into(),
            title: "t".into(),
            description: "d".into(),
            license: "CC0".into(),
            keywords: vec!["k".into()],
            providers: vec![provider.clone()],
            time: 5,
            copies: 0,
            publisher: [0; 32],
            publisher_sig: vec![],
        },
        &owner,
        &owner,
    )
    .unwrap();
    let notice = Notice::sign(Tainted::Dataset(ds), "court order", 5, &b).unwrap();
    let wait = Request::WaitHead {
        dataset: ds,
        ticket: None,
        seq: 3,
        wait: 50,
    };
    let sync = lode::net::registry::Request::Sync {
        from: provider.clone(),
        have: vec![(ds, 7, entry.id())],
        notices: vec![notice.id()],
        approvals: vec![],
        volunteers: vec![],
        holdings: vec![],
    };
    let answer = lode::net::registry::Response::Sync {
        entries: vec![entry.encode()],
        notices: vec![notice.encode()],
        approvals: vec![],
        volunteers: vec![],
        holdings: vec![],
        peers: vec![provider.clone()],
    };
    vec![
        ("registry request", proto::encode(&sync)),
        ("registry answer", proto::encode(&answer)),
        ("entry", entry.encode()),
        ("notice", notice.encode()),
        (
            "approval",
            Approval::sign(owner.verifying_key().to_bytes(), true, "lab", 5, &b)
                .unwrap()
                .encode(),
        ),
        (
            "registry ticket",
            RegistryTicket(ticket.clone()).to_string().into_bytes(),
        ),
        ("request", proto::encode(&wait)),
        ("bundle", bundle.encode()),
        ("head", head.encode()),
        ("revocation", rev.encode()),
        ("card", card.encode()),
        ("envelope", env.encode()),
        ("ticket", ticket.to_string().into_bytes()),
        ("capability text", bundle.to_string().into_bytes()),
        ("card text", card.to_string().into_bytes()),
        ("request", proto::encode(&req)),
        ("response", proto::encode(&resp)),
    ]
}

/// Feeds one input to the decoder of `kind` and checks the properties.
fn check(kind: &str, original: &[u8], input: &[u8], ds: &[u8; 32]) {
    let revoked = lode::trust::Revoked::default();
    match kind {
        "bundle" => {
            if let Ok(b) = Bundle::decode(input) {
                assert_eq!(b.encode(), input, "bundle re-encodes");
                let o = Bundle::decode(original).unwrap();
                assert_eq!(b.links, o.links, "signed links unchanged");
            }
        }
        "head" => {
            if let Ok(h) = SignedHead::decode(input, ds, &revoked, None) {
                assert_eq!(h.encode(), original);
            }
        }
        "revocation" => {
            if let Ok(r) = Revocation::decode(input, ds) {
                assert_eq!(r.encode(), original);
            }
        }
        "card" => {
            if let Ok(c) = Card::decode(input) {
                assert_eq!(c.encode(), original);
            }
        }
        "envelope" => {
            if let Ok(e) = Envelope::decode(input) {
                assert_eq!(e.encode(), input);
            }
        }
        "ticket" => {
            if let Ok(t) = String::from_utf8_lossy(input).parse::<Ticket>() {
                let again: Ticket = t.to_string().parse().unwrap();
                assert_eq!(again, t);
            }
        }
        "capability text" => {
            if let Ok(b) = String::from_utf8_lossy(input).parse::<Bundle>() {
                let o: Bundle = String::from_utf8_lossy(original).parse().unwrap();
                assert_eq!(b.links, o.links);
            }
        }
        "card text" => {
            if let Ok(c) = String::from_utf8_lossy(input).parse::<Card>() {
                assert_eq!(c.to_string().as_bytes(), original);
            }
        }
        "request" => {
            let _ = proto::decode::<Request>(input);
        }
        "registry request" => {
            let _ = proto::decode::<lode::net::registry::Request>(input);
        }
        "registry answer" => {
            if let Ok(lode::net::registry::Response::Sync {
                entries, notices, ..
            }) = proto::decode::<lode::net::registry::Response>(input)
            {
                // What a registry then does with them must not panic either.
                entries.iter().for_each(|e| drop(Entry::decode(e)));
                notices.iter().for_each(|n| drop(Notice::decode(n)));
            }
        }
        "entry" => {
            if let Ok(e) = Entry::decode(input) {
                assert_eq!(e.encode(), original);
            }
        }
        "notice" => {
            if let Ok(n) = Notice::decode(input) {
                assert_eq!(n.encode(), original);
            }
        }
        "approval" => {
            if let Ok(a) = Approval::decode(input) {
                assert_eq!(a.encode(), original);
            }
        }
        "registry ticket" => {
            if let Ok(t) = String::from_utf8_lossy(input).parse::<RegistryTicket>() {
                let again: RegistryTicket = t.to_string().parse().unwrap();
                assert_eq!(again, t);
            }
        }
        "response" => {
            if let Ok(Response::Refs(l)) = proto::decode::<Response>(input) {
                // What a client then does with a listing must not panic either.
                let _ = lode::net::fetch::verify_listing(&l, ds, "fuzz");
            }
        }
        k => panic!("unknown kind {k}"),
    }
}

#[test]
fn decoders_survive_mutation() {
    let ds = SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes();
    let corpus = corpus();
    let n = iters();
    for (i, (kind, input)) in corpus.iter().enumerate() {
        check(kind, input, input, &ds);
        let other = &corpus[(i + 1) % corpus.len()].1;
        let seed = 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1);
        let mut rng = Rng(seed);
        for k in 0..n {
            let m = mutate(&mut rng, input, other);
            let r = std::panic::catch_unwind(|| check(kind, input, &m, &ds));
            assert!(
                r.is_ok(),
                "{kind}: iteration {k} (seed {seed:#x}) failed on input {}",
                hex::encode(&m)
            );
        }
    }
}
