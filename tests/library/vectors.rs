//! Published test vectors (tests/vectors/*.json) for capability tickets, signed heads,
//! revocations and identity cards, valid and invalid, each with the exact verdict lode gives.
//!
//! The vectors are made from fixed keys, nonces and times, so they are reproducible: this
//! test re-derives them and requires the checked-in files to be identical, then checks every
//! verdict through the library's decoders. Regenerate after a deliberate format change with
//! `LODE_WRITE_VECTORS=1 cargo test --locked vectors`.

use std::fs;
use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use lode::catalog::{Entry, EntryBody, Notice, Tainted};
use lode::trust::{
    authorize, Bundle, Card, HeadBody, Link, LinkBody, Revocation, Revoked, Rights, SignedHead,
    Target,
};
use serde::{Deserialize, Serialize};

/// The clock every vector is checked at.
const NOW: u64 = 1_800_000_000;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Vector {
    name: String,
    /// `ticket`, `head`, `revocation` or `card`.
    kind: String,
    /// The encoded object: for tickets the bundle bytes (the `lodecap1` string is base32 of
    /// them), for the others their canonical bytes.
    hex: String,
    /// The dataset the object is checked against (hex), when it has one.
    dataset: String,
    /// For tickets: the peer presenting it (hex).
    peer: String,
    /// Revoked targets the verifier knows: `link:HEX` or `key:HEX`.
    revoked: Vec<String>,
    now: u64,
    /// `ok`, or the exact error message.
    expect: String,
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn pk(k: &SigningKey) -> [u8; 32] {
    k.verifying_key().to_bytes()
}

fn link_body(ds: [u8; 32], issuer: &SigningKey, aud: [u8; 32], rights: Rights) -> LinkBody {
    LinkBody {
        version: 1,
        dataset: ds,
        issuer: pk(issuer),
        audience: aud,
        parent: None,
        rights,
        scope: vec![],
        not_before: NOW - 3600,
        expires: NOW + 86_400,
        max_depth: 0,
        nonce: [0x5a; 16],
        note: "vector".into(),
    }
}

fn bundle(links: Vec<Link>) -> Vec<u8> {
    Bundle {
        links,
        hints: vec![],
    }
    .encode()
}

fn revoked_set(list: &[String]) -> Revoked {
    let mut r = Revoked::default();
    for t in list {
        let (kind, hex_part) = t.split_once(':').unwrap();
        let b: [u8; 32] = hex::decode(hex_part).unwrap().try_into().unwrap();
        r.targets.insert(if kind == "link" {
            Target::Link(b)
        } else {
            Target::Key(b)
        });
    }
    r
}

/// The verdict lode gives on a vector.
fn verdict(v: &Vector) -> String {
    let bytes = hex::decode(&v.hex).unwrap();
    let ds: [u8; 32] = hex::decode(&v.dataset)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 32]);
    let revoked = revoked_set(&v.revoked);
    let res: Result<(), lode::trust::TrustError> = match v.kind.as_str() {
        "ticket" => {
            let peer: [u8; 32] = hex::decode(&v.peer).unwrap().try_into().unwrap();
            Bundle::decode(&bytes)
                .and_then(|b| authorize(&b, &ds, &peer, v.now, &revoked).map(|_| ()))
        }
        "head" => SignedHead::decode(&bytes, &ds, &revoked, Some(v.now)).map(|_| ()),
        "revocation" => Revocation::decode(&bytes, &ds).map(|_| ()),
        "card" => Card::decode(&bytes).map(|_| ()),
        "entry" => Entry::decode(&bytes).and_then(|e| {
            if e.body.dataset == ds {
                Ok(())
            } else {
                Err(lode::trust::TrustError::Malformed(
                    "registry entry",
                    format!(
                        "for dataset {}, not {}",
                        hex::encode(e.body.dataset),
                        hex::encode(ds)
                    ),
                ))
            }
        }),
        "notice" => {
            // `peer` is the registry the verifier follows.
            let reg: [u8; 32] = hex::decode(&v.peer).unwrap().try_into().unwrap();
            Notice::decode_from(&bytes, &[reg]).map(|_| ())
        }
        k => panic!("unknown kind {k}"),
    };
    match res {
        Ok(()) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

fn make() -> Vec<Vector> {
    let owner = key(1);
    let ds = pk(&owner);
    let (b, c, mallory) = (key(2), key(3), key(4));
    let mut out = Vec::new();
    let mut add = |name: &str, kind: &str, bytes: Vec<u8>, peer: [u8; 32], revoked: Vec<String>| {
        let mut v = Vector {
            name: name.into(),
            kind: kind.into(),
            hex: hex::encode(bytes),
            dataset: hex::encode(ds),
            peer: hex::encode(peer),
            revoked,
            now: NOW,
            expect: String::new(),
        };
        v.expect = verdict(&v);
        out.push(v);
    };
    let sign = |b: LinkBody, k: &SigningKey| Link::sign(b, k).unwrap();
    let root = sign(link_body(ds, &owner, pk(&b), Rights::READ), &owner);
    let mut gb = link_body(ds, &owner, pk(&b), Rights::READ.with(Rights::GRANT));
    gb.max_depth = 2;
    gb.scope = vec!["tables".into(), "video".into()];
    let groot = sign(gb, &owner);
    let child = |f: &dyn Fn(&mut LinkBody)| {
        let mut d = link_body(ds, &b, pk(&c), Rights::READ);
        d.parent = Some(groot.id());
        d.scope = vec!["tables".into()];
        d.max_depth = 1;
        f(&mut d);
        sign(d, &b)
    };
    let n = [0u8; 32];
    let _ = n;
    add(
        "ticket: root read link",
        "ticket",
        bundle(vec![root.clone()]),
        pk(&b),
        vec![],
    );
    add(
        "ticket: delegation narrowing scope",
        "ticket",
        bundle(vec![groot.clone(), child(&|_| {})]),
        pk(&c),
        vec![],
    );
    let mid = child(&|d| d.rights = Rights::READ.with(Rights::GRANT));
    let mut third = link_body(ds, &c, pk(&mallory), Rights::READ);
    third.parent = Some(mid.id());
    third.scope = vec!["tables/neurons.csv".into()];
    add(
        "ticket: three links",
        "ticket",
        bundle(vec![groot.clone(), mid.clone(), sign(third, &c)]),
        pk(&mallory),
        vec![],
    );
    let mut e = link_body(ds, &owner, pk(&b), Rights::READ);
    e.not_before = NOW - 7200;
    e.expires = NOW - 3600;
    add(
        "ticket: expired",
        "ticket",
        bundle(vec![sign(e, &owner)]),
        pk(&b),
        vec![],
    );
    let mut e = link_body(ds, &owner, pk(&b), Rights::READ);
    e.not_before = NOW + 3600;
    add(
        "ticket: not yet valid",
        "ticket",
        bundle(vec![sign(e, &owner)]),
        pk(&b),
        vec![],
    );
    add(
        "ticket: presented by another peer",
        "ticket",
        bundle(vec![root.clone()]),
        pk(&c),
        vec![],
    );
    let other = key(9);
    add(
        "ticket: another dataset",
        "ticket",
        bundle(vec![sign(
            link_body(pk(&other), &other, pk(&b), Rights::READ),
            &other,
        )]),
        pk(&b),
        vec![],
    );
    let mut forged = bundle(vec![root.clone()]);
    let l = forged.len();
    forged[l - 2] ^= 1;
    add(
        "ticket: signature altered",
        "ticket",
        forged,
        pk(&b),
        vec![],
    );
    add(
        "ticket: root not issued by the owner",
        "ticket",
        bundle(vec![sign(
            link_body(ds, &mallory, pk(&b), Rights::READ),
            &mallory,
        )]),
        pk(&b),
        vec![],
    );
    let ok = bundle(vec![root.clone()]);
    add(
        "ticket: truncated",
        "ticket",
        ok[..ok.len() - 9].to_vec(),
        pk(&b),
        vec![],
    );
    let mut padded = ok.clone();
    padded.push(0);
    add("ticket: trailing byte", "ticket", padded, pk(&b), vec![]);
    let mut overlong = vec![ok[0], 0x81, 0x00];
    overlong.extend_from_slice(&ok[2..]);
    add(
        "ticket: non-canonical varint",
        "ticket",
        overlong,
        pk(&b),
        vec![],
    );
    add(
        "ticket: delegation widens rights",
        "ticket",
        bundle(vec![
            groot.clone(),
            child(&|d| d.rights = Rights::READ.with(Rights::WRITE)),
        ]),
        pk(&c),
        vec![],
    );
    add(
        "ticket: delegation widens scope",
        "ticket",
        bundle(vec![
            groot.clone(),
            child(&|d| d.scope = vec!["notes".into()]),
        ]),
        pk(&c),
        vec![],
    );
    add(
        "ticket: delegation widens validity",
        "ticket",
        bundle(vec![
            groot.clone(),
            child(&|d| d.expires = NOW + 10 * 86_400),
        ]),
        pk(&c),
        vec![],
    );
    add(
        "ticket: delegation keeps depth",
        "ticket",
        bundle(vec![groot.clone(), child(&|d| d.max_depth = 2)]),
        pk(&c),
        vec![],
    );
    let mut d = link_body(ds, &b, pk(&c), Rights::READ);
    d.parent = Some(root.id());
    add(
        "ticket: delegated without grant right",
        "ticket",
        bundle(vec![root.clone(), sign(d, &b)]),
        pk(&c),
        vec![],
    );
    let mut d = link_body(ds, &mallory, pk(&c), Rights::READ);
    d.parent = Some(groot.id());
    d.scope = vec!["tables".into()];
    add(
        "ticket: issuer is not the previous holder",
        "ticket",
        bundle(vec![groot.clone(), sign(d, &mallory)]),
        pk(&c),
        vec![],
    );
    add(
        "ticket: spliced (parent of another chain)",
        "ticket",
        bundle(vec![groot.clone(), child(&|d| d.parent = Some(root.id()))]),
        pk(&c),
        vec![],
    );
    add(
        "ticket: revoked link",
        "ticket",
        bundle(vec![root.clone()]),
        pk(&b),
        vec![format!("link:{}", hex::encode(root.id()))],
    );
    add(
        "ticket: revoked issuer key",
        "ticket",
        bundle(vec![groot.clone(), child(&|_| {})]),
        pk(&c),
        vec![format!("key:{}", hex::encode(pk(&b)))],
    );
    add(
        "ticket: six links",
        "ticket",
        bundle(vec![root.clone(); 6]),
        pk(&b),
        vec![],
    );

    let head_body = |signer: &SigningKey, chain: Vec<u8>| HeadBody {
        version: 1,
        dataset: ds,
        signer: pk(signer),
        seq: 7,
        main: Some([0xab; 32]),
        tags: vec![("v1".into(), [0xcd; 32])],
        revocations: vec![[1; 32], [2; 32]],
        private: false,
        time: NOW,
        chain,
    };
    add(
        "head: signed by the owner",
        "head",
        SignedHead::sign(head_body(&owner, vec![]), &owner).encode(),
        n,
        vec![],
    );
    let wl = sign(
        link_body(ds, &owner, pk(&b), Rights::READ.with(Rights::WRITE)),
        &owner,
    );
    add(
        "head: signed by a writer with its ticket",
        "head",
        SignedHead::sign(head_body(&b, bundle(vec![wl.clone()])), &b).encode(),
        n,
        vec![],
    );
    add(
        "head: signed by a stranger",
        "head",
        SignedHead::sign(head_body(&mallory, vec![]), &mallory).encode(),
        n,
        vec![],
    );
    add(
        "head: signer's ticket has no write right",
        "head",
        SignedHead::sign(head_body(&b, bundle(vec![root.clone()])), &b).encode(),
        n,
        vec![],
    );
    add(
        "head: writer's ticket revoked",
        "head",
        SignedHead::sign(head_body(&b, bundle(vec![wl.clone()])), &b).encode(),
        n,
        vec![format!("link:{}", hex::encode(wl.id()))],
    );
    let mut short = link_body(ds, &owner, pk(&b), Rights::WRITE);
    short.not_before = NOW - 7200;
    short.expires = NOW - 3600;
    let mut backdated = head_body(&b, bundle(vec![sign(short, &owner)]));
    backdated.time = NOW - 5000;
    add(
        "head: writer's ticket expired (head backdated)",
        "head",
        SignedHead::sign(backdated, &b).encode(),
        n,
        vec![],
    );
    let mut h = SignedHead::sign(head_body(&owner, vec![]), &owner).encode();
    let l = h.len();
    h[l - 1] ^= 0x80;
    add("head: signature altered", "head", h, n, vec![]);
    let mut unsorted = head_body(&owner, vec![]);
    unsorted.revocations.reverse();
    add(
        "head: revocation ids not sorted",
        "head",
        SignedHead::sign(unsorted, &owner).encode(),
        n,
        vec![],
    );

    let rev = Revocation::sign(&ds, &owner, Target::Link(root.id()), NOW, "left the lab").unwrap();
    add(
        "revocation: by the owner",
        "revocation",
        rev.encode(),
        n,
        vec![],
    );
    let rev_m = Revocation::sign(&ds, &mallory, Target::Key(pk(&b)), NOW, "").unwrap();
    add(
        "revocation: by someone else",
        "revocation",
        rev_m.encode(),
        n,
        vec![],
    );
    let mut r = rev.encode();
    r[10] ^= 1;
    add("revocation: altered", "revocation", r, n, vec![]);

    let age = "age1gfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpqxkm8f4";
    let card = Card::sign(&b, age, NOW, None).unwrap();
    add("card: valid", "card", card.encode(), n, vec![]);
    let mut cb = card.encode();
    cb[3] ^= 1;
    add("card: key altered", "card", cb, n, vec![]);
    // Version 2: the holder's name, email and ORCID iD signed into the card.
    let ana =
        lode::person::Person::new("Ana Lee", Some("ana@lab.org"), Some("0000-0002-1825-0097"))
            .unwrap();
    let named = Card::sign(&b, age, NOW, Some(&ana)).unwrap();
    add(
        "card: with a person, valid",
        "card",
        named.encode(),
        n,
        vec![],
    );
    let mut nb = named.encode();
    let at = nb.len() - 64 - 5;
    nb[at] ^= 1;
    add("card: person altered", "card", nb, n, vec![]);
    let mut nb = named.encode();
    nb[0] = 1;
    add("card: person under version 1", "card", nb, n, vec![]);

    let entry_body = |k: &SigningKey| EntryBody {
        version: lode::catalog::ENTRY_VERSION,
        dataset: pk(k),
        seq: 1_800_000_000_000,
        name: "worm-tracks".into(),
        title: "C. elegans tracks".into(),
        description: "Locomotion of N2 worms".into(),
        license: "CC-BY-4.0".into(),
        keywords: vec!["elegans".into()],
        providers: vec![lode::ticket::Provider {
            id: pk(&key(9)),
            addrs: vec!["127.0.0.1:4433".parse().unwrap()],
            relay: None,
        }],
        time: NOW,
        copies: 0,
        publisher: [0; 32],
        publisher_sig: vec![],
    };
    let entry = Entry::sign(entry_body(&owner), &owner, &b).unwrap();
    add(
        "entry: by the dataset owner",
        "entry",
        entry.encode(),
        n,
        vec![],
    );
    let other = Entry::sign(entry_body(&mallory), &mallory, &mallory).unwrap();
    add(
        "entry: another dataset's (self-signed by it)",
        "entry",
        other.encode(),
        n,
        vec![],
    );
    let mut e = entry.encode();
    e[40] ^= 1;
    add("entry: altered", "entry", e, n, vec![]);
    let (registry, other_registry) = (key(5), key(6));
    let notice = Notice::sign(Tainted::Blob([7; 32]), "court order 12", NOW, &registry).unwrap();
    add(
        "notice: by the followed registry",
        "notice",
        notice.encode(),
        pk(&registry),
        vec![],
    );
    let foreign = Notice::sign(Tainted::Dataset(ds), "not ours", NOW, &other_registry).unwrap();
    add(
        "notice: by another registry",
        "notice",
        foreign.encode(),
        pk(&registry),
        vec![],
    );
    let mut nb = notice.encode();
    nb[36] ^= 1;
    add("notice: altered", "notice", nb, pk(&registry), vec![]);
    out
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/trust.json")
}

#[test]
fn published_vectors_are_current_and_verdicts_hold() {
    let made = make();
    let text = serde_json::to_string_pretty(&made).unwrap() + "\n";
    if std::env::var_os("LODE_WRITE_VECTORS").is_some() {
        fs::create_dir_all(vectors_path().parent().unwrap()).unwrap();
        fs::write(vectors_path(), &text).unwrap();
    }
    let published: Vec<Vector> =
        serde_json::from_str(&fs::read_to_string(vectors_path()).unwrap()).unwrap();
    assert!(published.len() >= 20);
    assert!(published.iter().filter(|v| v.expect == "ok").count() >= 5);
    assert!(published.iter().filter(|v| v.expect != "ok").count() >= 15);
    for v in &published {
        assert_eq!(verdict(v), v.expect, "vector {:?}", v.name);
    }
    assert_eq!(
        published, made,
        "tests/vectors/trust.json is stale: regenerate with LODE_WRITE_VECTORS=1"
    );
}
