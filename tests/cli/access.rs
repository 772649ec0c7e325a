//! Access control on real processes: an owner's server (`lode serve` as peer "srv", holding
//! the dataset key) and attackers, each case asserting its specific error. Forged tickets are
//! built with the library (as an attacker would), then presented over the network.

use std::fs;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use lode::keys::Home;
use lode::net::endpoint::{bind, NetOptions, Relay};
use lode::net::fetch::Client;
use lode::net::proto::{self, Listing, Request, Response};
use lode::ticket::Ticket;
use lode::trust::{Bundle, HeadBody, Link, LinkBody, Rights, SignedHead};

use crate::common::peers::{device_id, grant, grant_card, serve, serve_repos};
use crate::common::*;

fn opts() -> NetOptions {
    NetOptions {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        relay: Relay::Disabled,
        discovery: false,
        ..Default::default()
    }
}

fn now() -> u64 {
    lode::ops::access::now()
}

/// One reference time for all links a test makes, so that equal windows compare equal.
fn t0() -> u64 {
    static T0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *T0.get_or_init(now)
}

fn read_key(path: &std::path::Path) -> SigningKey {
    let text = fs::read_to_string(path).unwrap();
    let hex_part = text.trim().strip_prefix("lode-ed25519-secret-v1 ").unwrap();
    let bytes: [u8; 32] = hex::decode(hex_part).unwrap().try_into().unwrap();
    SigningKey::from_bytes(&bytes)
}

/// The dataset key of `ds`, from the owner's home.
fn owner_key(env: &TestEnv, ds: &str) -> SigningKey {
    let id = env.json(ds, &["show"])["dataset"]
        .as_str()
        .unwrap()
        .to_string();
    read_key(&env.path(&format!("home/datasets/{id}.key")))
}

/// The device key of peer `home` (made on first use).
fn device_key(env: &TestEnv, home: &str) -> SigningKey {
    device_id(env, home);
    read_key(&env.path(&format!("{home}/identity.key")))
}

fn pk(k: &SigningKey) -> [u8; 32] {
    k.verifying_key().to_bytes()
}

/// A link body with sensible defaults: valid for an hour, no scope, no delegation.
fn body(dataset: [u8; 32], issuer: &SigningKey, audience: [u8; 32], rights: Rights) -> LinkBody {
    LinkBody {
        version: 1,
        dataset,
        issuer: pk(issuer),
        audience,
        parent: None,
        rights,
        scope: vec![],
        not_before: t0() - 120,
        expires: t0() + 3600,
        max_depth: 0,
        nonce: [7; 16],
        note: String::new(),
    }
}

fn chain(links: Vec<Link>) -> Vec<u8> {
    Bundle {
        links,
        hints: vec![],
    }
    .encode()
}

/// Sends one ListRefs for `dataset` with raw `ticket` bytes, as peer `home`.
fn ask(
    env: &TestEnv,
    home: &str,
    addr: &str,
    dataset: [u8; 32],
    ticket: Option<Vec<u8>>,
) -> Response {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let t: Ticket = addr.parse().unwrap();
        let client = Client::new(&Home::new(env.path(home)), &t, None, &opts())
            .await
            .unwrap();
        let id = client.providers()[0];
        let req = Request::ListRefs { dataset, ticket };
        let r = client
            .request(id, &req, Duration::from_secs(10))
            .await
            .unwrap();
        client.close().await;
        r
    })
}

#[track_caller]
fn denied(r: Response, needle: &str) -> String {
    match r {
        Response::Denied(msg) => {
            assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
            msg
        }
        other => panic!("expected a refusal containing {needle:?}, got {other:?}"),
    }
}

fn private_dataset(env: &TestEnv, name: &str) {
    env.ok("", &["init", "--private", name]);
    env.write(
        &format!("{name}/tables/neurons.csv"),
        format!("{name},inter\n"),
    );
    env.write(&format!("{name}/video/day1.bin"), vec![9u8; 100_000]);
    // Above 1 MiB: a reader decrypts it while it streams in. Above 4 MiB: the owner holds
    // it in chunks, and seals it whole (docs/SECURITY.md, "Chunks").
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    env.write(&format!("{name}/video/day2.bin"), big);
    env.ok(name, &["add", "."]);
    env.ok(name, &["commit", "-m", "day 1"]);
}

fn dataset_bytes(addr: &str) -> [u8; 32] {
    addr.parse::<Ticket>().unwrap().dataset
}

#[test]
fn attack_matrix_on_ticket_checks() {
    let env = TestEnv::new();
    private_dataset(&env, "ds");
    private_dataset(&env, "ds2");
    let (_server, tickets) = serve_repos(&env, "srv", "", &["ds", "ds2"]);
    let (addr, addr2) = (tickets[0].clone(), tickets[1].clone());
    let ds = dataset_bytes(&addr);
    let ds2 = dataset_bytes(&addr2);
    let owner = owner_key(&env, "ds");
    let b = device_key(&env, "b");
    let c = device_key(&env, "c");
    let mallory = SigningKey::from_bytes(&[66; 32]);
    let read_b = |rights: Rights| Link::sign(body(ds, &owner, pk(&b), rights), &owner).unwrap();

    // A valid read ticket works (the baseline every case below departs from).
    let ok = chain(vec![read_b(Rights::READ)]);
    assert!(matches!(
        ask(&env, "b", &addr, ds, Some(ok.clone())),
        Response::Refs(_)
    ));

    // 1. No ticket; and no existence oracle: an unknown dataset gets the same answer.
    let a = denied(ask(&env, "b", &addr, ds, None), "no public dataset");
    let unknown = denied(ask(&env, "b", &addr, [5; 32], None), "no public dataset");
    assert_eq!(a, unknown);
    // 2. Expired.
    let mut bd = body(ds, &owner, pk(&b), Rights::READ);
    bd.not_before = now() - 7200;
    bd.expires = now() - 3600;
    let t = chain(vec![Link::sign(bd, &owner).unwrap()]);
    denied(ask(&env, "b", &addr, ds, Some(t)), "expired");
    // 3. Not yet valid.
    let mut bd = body(ds, &owner, pk(&b), Rights::READ);
    bd.not_before = now() + 3600;
    bd.expires = now() + 7200;
    let t = chain(vec![Link::sign(bd, &owner).unwrap()]);
    denied(ask(&env, "b", &addr, ds, Some(t)), "not valid before");
    // 4. Wrong audience: b's ticket presented by c (stolen from a chat log).
    denied(
        ask(&env, "c", &addr, ds, Some(ok.clone())),
        "tickets are bound to their holder",
    );
    // 5. Another dataset's ticket (same owner, same server).
    let owner2 = owner_key(&env, "ds2");
    let other = chain(vec![Link::sign(
        body(ds2, &owner2, pk(&b), Rights::READ),
        &owner2,
    )
    .unwrap()]);
    denied(
        ask(&env, "b", &addr, ds, Some(other)),
        "ticket is for dataset",
    );
    // 6. Forged signature: one bit of the signature flipped.
    let mut t = ok.clone();
    let n = t.len();
    t[n - 2] ^= 1; // the last bytes are the (empty) hints count and the signature's end
    denied(ask(&env, "b", &addr, ds, Some(t)), "does not verify");
    // 7. Altered payload: rights widened in place, signature kept.
    let link = read_b(Rights::READ);
    let mut payload = link.payload().to_vec();
    let at = payload.windows(32).position(|w| w == pk(&b)).unwrap() + 32 + 1; // audience, then `parent: None` (one byte), then rights
    assert_eq!(payload[at], Rights::READ.0);
    payload[at] = Rights::READ.with(Rights::WRITE).0;
    let wire = |links: Vec<(Vec<u8>, Vec<u8>)>| {
        let mut v = vec![1u8];
        v.extend(postcard::to_stdvec(&links).unwrap());
        v.push(0); // no hints
        v
    };
    let t = wire(vec![(payload, link.signature().to_vec())]);
    denied(ask(&env, "b", &addr, ds, Some(t)), "does not verify");
    // 8. A root link signed by someone who is not the dataset owner.
    let t = chain(vec![Link::sign(
        body(ds, &mallory, pk(&b), Rights::READ),
        &mallory,
    )
    .unwrap()]);
    denied(
        ask(&env, "b", &addr, ds, Some(t)),
        "not issued by the dataset owner",
    );
    // 9. Truncated.
    denied(
        ask(&env, "b", &addr, ds, Some(ok[..ok.len() - 10].to_vec())),
        "malformed",
    );
    // 10. Padded.
    let mut t = ok.clone();
    t.push(0);
    denied(ask(&env, "b", &addr, ds, Some(t)), "trailing bytes");
    // 11. Non-canonical: the link count as an overlong varint (0x81 0x00 = 1).
    let mut t = vec![ok[0], 0x81, 0x00];
    t.extend_from_slice(&ok[2..]);
    let r = ask(&env, "b", &addr, ds, Some(t));
    let msg = denied(r, "ticket");
    assert!(
        msg.contains("canonical") || msg.contains("malformed"),
        "{msg}"
    );
    // 12-16. Delegations that widen: b holds READ+GRANT, depth 1, scope tables/.
    let mut root = body(ds, &owner, pk(&b), Rights::READ.with(Rights::GRANT));
    root.max_depth = 1;
    let unscoped = Link::sign(root.clone(), &owner).unwrap();
    let mut d = body(ds, &b, pk(&c), Rights::READ);
    d.parent = Some(unscoped.id());
    let valid = chain(vec![unscoped, Link::sign(d, &b).unwrap()]);
    let r = ask(&env, "c", &addr, ds, Some(valid));
    assert!(matches!(r, Response::Refs(_)), "{r:?}");
    root.scope = vec!["tables".into()];
    let root = Link::sign(root, &owner).unwrap();
    let delegate = |f: &dyn Fn(&mut LinkBody)| {
        let mut d = body(ds, &b, pk(&c), Rights::READ);
        d.parent = Some(root.id());
        d.scope = vec!["tables".into()];
        f(&mut d);
        chain(vec![root.clone(), Link::sign(d, &b).unwrap()])
    };
    // A path-scoped ticket reads nothing of a restricted dataset: its server sees only
    // ciphertext and cannot tell paths apart, so it fails closed.
    denied(
        ask(&env, "c", &addr, ds, Some(delegate(&|_| {}))),
        "path-scoped",
    );
    let widen = |f: &dyn Fn(&mut LinkBody), what: &str| {
        denied(
            ask(&env, "c", &addr, ds, Some(delegate(f))),
            &format!("widens its parent's {what}"),
        );
    };
    widen(&|d| d.rights = Rights::READ.with(Rights::WRITE), "rights");
    widen(&|d| d.scope = vec![], "scope");
    widen(&|d| d.scope = vec!["video".into()], "scope");
    widen(&|d| d.expires = t0() + 10 * 3600, "validity");
    widen(&|d| d.max_depth = 1, "depth");
    // 17. A delegation from a link without the grant right.
    let plain = read_b(Rights::READ);
    let mut d = body(ds, &b, pk(&c), Rights::READ);
    d.parent = Some(plain.id());
    let t = chain(vec![plain, Link::sign(d, &b).unwrap()]);
    denied(
        ask(&env, "c", &addr, ds, Some(t)),
        "without the grant right",
    );
    // 18. Broken chain: the second link is issued by mallory, not by the first holder.
    let mut d = body(ds, &mallory, pk(&c), Rights::READ);
    d.parent = Some(root.id());
    d.scope = vec!["tables".into()];
    let t = chain(vec![root.clone(), Link::sign(d, &mallory).unwrap()]);
    denied(
        ask(&env, "c", &addr, ds, Some(t)),
        "issuer is not the previous holder",
    );
    // 19. Spliced chain: b's delegation names another parent (a link of another chain).
    let mut d = body(ds, &b, pk(&c), Rights::READ);
    d.parent = Some(read_b(Rights::READ).id());
    d.scope = vec!["tables".into()];
    let t = chain(vec![root.clone(), Link::sign(d, &b).unwrap()]);
    denied(
        ask(&env, "c", &addr, ds, Some(t)),
        "parent id does not match",
    );
    // 20. Too large (more than 5 links).
    let t = chain(vec![root.clone(); 6]);
    denied(ask(&env, "c", &addr, ds, Some(t)), "1 to 5 links");
}

/// The ciphertext and plaintext ids a restricted dataset's owner repository publishes.
fn sealed_ids(env: &TestEnv, ds: &str) -> (Vec<String>, lode::ops::sealed::Envelope) {
    let repo = lode::Repo::discover(
        &env.path(ds),
        Home::new(env.path("home")),
        lode::RepoOptions::default(),
    )
    .unwrap();
    let head = lode::ops::access::stored_head(&repo).unwrap().unwrap();
    let env_id = lode::ObjectId(head.body.main.unwrap());
    let envelope = lode::ops::sealed::read_envelope(&repo, &env_id).unwrap();
    let ids = envelope.objects.iter().map(|(id, _)| id.to_hex()).collect();
    (ids, envelope)
}

#[test]
fn revocation_scope_relay_and_push_rights_are_enforced() {
    let env = TestEnv::new();
    private_dataset(&env, "ds");
    private_dataset(&env, "ds2");
    let (server, tickets) = serve_repos(&env, "srv", "", &["ds", "ds2"]);
    let addr = tickets[0].clone();

    // b reads with a ticket bound to its identity card; without one it gets nothing.
    env.fails_as("b", "", &["clone", &addr, "nob"], "not authorized");
    assert!(!env.path("nob").exists());
    let tb = grant_card(&env, "ds", "b", &["--read", "--delegable", "1"]);
    env.json_as("b", "", &["clone", &addr, "bclone", "--ticket", &tb]);
    assert_eq!(env.read("bclone/tables/neurons.csv"), b"ds,inter\n");
    env.ok_as("b", "bclone", &["verify"]);

    // 21. Path scopes: refused at grant time for a restricted dataset (see also the
    // forged scoped ticket in the matrix above, refused by the server).
    let bcard = env.ok_as("b", "", &["id", "--card"]).trim().to_string();
    env.fails(
        "ds",
        &["grant", &bcard, "--read", "--path", "tables"],
        "path scopes",
    );
    // ... and a bare device id cannot be a reader of encrypted data.
    let bid = device_id(&env, "b");
    env.fails("ds", &["grant", &bid, "--read"], "identity card");

    // 22. Server side, as an attacker: with b's ticket admitted, a ciphertext of ds is
    // served, but not a ciphertext of ds2 (same store, another dataset), and no plaintext.
    let (ds_cipher, _) = sealed_ids(&env, "ds");
    let (ds2_cipher, _) = sealed_ids(&env, "ds2");
    let plain = b3(&env.path("ds/tables/neurons.csv"));
    let bkey = device_key(&env, "b");
    let bundle: Bundle = tb.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use iroh_blobs::Hash;
        let hash = |hex: &str| Hash::from_bytes(hex::decode(hex).unwrap().try_into().unwrap());
        let net = bind(&bkey, &opts()).await.unwrap();
        let t: Ticket = addr.parse().unwrap();
        let mut client = Client::with_net(net.clone(), &t, Some(bundle)).unwrap();
        client.list_refs().await.expect("b's ticket is accepted");
        let id = client.providers()[0];
        let conn = net.endpoint.connect(id, iroh_blobs::ALPN).await.unwrap();
        let store = iroh_blobs::store::mem::MemStore::new();
        store
            .remote()
            .fetch(conn.clone(), hash(&ds_cipher[0]))
            .await
            .expect("a ciphertext of the granted dataset is served");
        for (what, h) in [("another dataset", &ds2_cipher[0]), ("plaintext", &plain)] {
            assert!(
                store.remote().fetch(conn.clone(), hash(h)).await.is_err(),
                "{what}: must be refused"
            );
        }
        net.endpoint.close().await;
    });

    // b delegates to c from its clone; c's ticket admits it (as a mirror: the owner never saw
    // c's card, so c is not among the readers) until the owner revokes b's key.
    let ccard = env.ok_as("c", "", &["id", "--card"]).trim().to_string();
    let tc = env.json_as("b", "bclone", &["grant", &ccard, "--read"])["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    env.json_as(
        "c",
        "",
        &["clone", "--mirror", &addr, "cm", "--ticket", &tc],
    );
    // 23. A revoked issuer: the owner revokes b's key; c's delegation dies with it.
    env.ok("ds", &["revoke", "--key", &bid]);
    env.fails_as("c", "cm", &["fetch"], "has been revoked");
    env.fails_as("b", "bclone", &["pull"], "has been revoked");
    // b keeps what it already had (revocation cannot recall downloaded data).
    assert_eq!(env.read("bclone/tables/neurons.csv"), b"ds,inter\n");
    // 24. A revoked link: d's ticket, revoked by its id from `lode grants`.
    let td = grant_card(&env, "ds", "d", &["--read"]);
    env.json_as("d", "", &["clone", &addr, "dclone", "--ticket", &td]);
    let grants = env.json("ds", &["grants"]);
    let row = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["ticket"] == td.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["status"], "valid");
    env.ok("ds", &["revoke", &row["id"].as_str().unwrap()[..16]]);
    env.fails_as("d", "dclone", &["pull"], "has been revoked");
    assert!(env.ok("ds", &["grants"]).contains("has been revoked"));
    // 25. A relay (mirror) ticket: ciphertext yes, key material no, even when granted to the
    // mirror's identity card.
    let te = grant_card(&env, "ds", "e", &["--relay"]);
    env.json_as(
        "e",
        "",
        &["clone", "--mirror", &addr, "em", "--ticket", &te],
    );
    env.fails_as(
        "e",
        "",
        &["clone", &addr, "eclone", "--ticket", &te],
        "not among the dataset's readers",
    );
    let secret = b"ds,inter\n";
    for f in walk_files(&env.path("em")) {
        let data = fs::read(&f).unwrap();
        assert!(
            !data.windows(secret.len()).any(|w| w == secret),
            "plaintext found in the mirror at {}",
            f.display()
        );
    }
    // 26. A push by a reader.
    let tf = grant_card(&env, "ds", "f", &["--read"]);
    env.json_as("f", "", &["clone", &addr, "fclone", "--ticket", &tf]);
    env.write("fclone/tables/neurons.csv", "vandalized");
    env.ok_as("f", "fclone", &["add", "."]);
    env.ok_as("f", "fclone", &["commit", "-m", "x"]);
    env.fails_as("f", "fclone", &["push"], "no write right");
    assert_eq!(env.read("ds/tables/neurons.csv"), b"ds,inter\n");
    drop(server);

    // 27. A writer scoped to tables/ cannot change video/ (a public dataset: anyone reads it;
    // the scope limits what g may change).
    env.ok("", &["init", "pub"]);
    env.write("pub/tables/t.csv", "1");
    env.write("pub/video/v.bin", "2");
    env.ok("pub", &["add", "."]);
    env.ok("pub", &["commit", "-m", "one"]);
    let pubsrv = serve(&env, "srv", "pub");
    env.json_as("g", "", &["clone", &pubsrv.ticket, "gclone"]);
    let tg = grant(&env, "pub", "g", &["--write", "--path", "tables"]);
    env.write("gclone/video/v.bin", "replaced");
    env.ok_as("g", "gclone", &["add", "."]);
    env.ok_as("g", "gclone", &["commit", "-m", "x"]);
    env.fails_as(
        "g",
        "gclone",
        &["push", "--ticket", &tg],
        "outside the ticket's scope",
    );
    // Undoing the change in a later commit does not help: the out-of-scope commit would
    // still enter the history.
    env.ok_as("g", "gclone", &["checkout", "-f", "HEAD~1", "video/v.bin"]);
    env.write("gclone/tables/t.csv", "from g");
    env.ok_as("g", "gclone", &["add", "."]);
    env.ok_as("g", "gclone", &["commit", "-m", "y"]);
    env.fails_as("g", "gclone", &["push"], "outside the ticket's scope");
    // Inside its scope the push lands.
    env.json_as("g", "", &["clone", &pubsrv.ticket, "g2"]);
    env.write("g2/tables/t.csv", "from g");
    env.ok_as("g", "g2", &["add", "."]);
    env.ok_as("g", "g2", &["commit", "-m", "y"]);
    env.ok_as("g", "g2", &["push", "--ticket", &tg]);
    assert_eq!(env.read("pub/tables/t.csv"), b"from g");
    assert_eq!(env.read("pub/video/v.bin"), b"2");
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// A fake provider that answers every `lode/2` request with one fixed response.
#[derive(Debug, Clone)]
struct Fake(Vec<u8>);

impl ProtocolHandler for Fake {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let (mut send, mut recv) = conn.accept_bi().await?;
        recv.read_to_end(1 << 20)
            .await
            .map_err(AcceptError::from_err)?;
        send.write_all(&self.0)
            .await
            .map_err(AcceptError::from_err)?;
        send.finish()?;
        conn.closed().await;
        Ok(())
    }
}

/// Runs a fake provider answering `response` while `f` runs with its ticket.
fn with_fake(dataset: [u8; 32], response: &Response, f: impl FnOnce(&str)) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (router, ticket) = rt.block_on(async {
        let net = bind(&SigningKey::from_bytes(&[77; 32]), &opts())
            .await
            .unwrap();
        let router = Router::builder(net.endpoint.clone())
            .accept(proto::ALPN, Fake(proto::encode(response)))
            .spawn();
        let t = Ticket {
            dataset,
            providers: vec![net.provider()],
        };
        (router, t.to_string())
    });
    f(&ticket);
    rt.block_on(async {
        let _ = router.shutdown().await;
    });
}

#[test]
fn forged_withheld_and_rolled_back_heads_are_refused() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/a.csv", "1");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "one"]);
    let owner = owner_key(&env, ds);
    let dataset = pk(&owner);
    let mallory = SigningKey::from_bytes(&[66; 32]);
    let head = |signer: &SigningKey, seq: u64, revocations: Vec<[u8; 32]>, chain: Vec<u8>| {
        SignedHead::sign(
            HeadBody {
                version: 1,
                dataset,
                signer: pk(signer),
                seq,
                main: None,
                tags: vec![],
                revocations,
                private: false,
                time: now(),
                chain,
            },
            signer,
        )
    };
    // 28. A head signed by a key that is not a writer of the dataset.
    let forged = Response::Refs(Listing {
        head: head(&mallory, 99, vec![], vec![]).encode(),
        revocations: vec![],
    });
    with_fake(dataset, &forged, |t| {
        env.fails("", &["clone", t, "x1"], "not signed by a writer");
    });
    // 29. A head whose writer chain holds only READ.
    let link = Link::sign(body(dataset, &owner, pk(&mallory), Rights::READ), &owner).unwrap();
    let reader_head = Response::Refs(Listing {
        head: head(&mallory, 99, vec![], chain(vec![link])).encode(),
        revocations: vec![],
    });
    with_fake(dataset, &reader_head, |t| {
        env.fails("", &["clone", t, "x2"], "does not allow write");
    });
    // 30. A mirror that withholds a revocation its head lists.
    let withheld = Response::Refs(Listing {
        head: head(&owner, 5, vec![[9; 32]], vec![]).encode(),
        revocations: vec![],
    });
    with_fake(dataset, &withheld, |t| {
        env.fails("", &["clone", t, "x3"], "withholds revocation");
    });
    assert!(!env.path("x1").exists() && !env.path("x2").exists() && !env.path("x3").exists());

    // 31. A mirror serving a rolled-back head: it cloned at the first head, the owner moved
    // on, the reader saw the newer head, then asks the stale mirror.
    let origin = serve(&env, "srv", ds);
    env.json_as("m", "", &["clone", &origin.ticket, "mirror"]);
    let mirror = serve(&env, "m", "mirror");
    env.write("ds/a.csv", "2");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "two"]);
    env.json_as("b", "", &["clone", &origin.ticket, "b"]);
    assert!(env
        .cmd_as("b", "b", &["remote", "add", "m", &mirror.ticket])
        .status()
        .unwrap()
        .success());
    let out = env.cmd_as("b", "b", &["fetch", "m"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("older head") && err.contains("rolling"),
        "{err}"
    );
    assert_error_line(&err);
    assert_eq!(env.read("b/a.csv"), b"2");
}

/// Flips one byte in the middle of an object file of repository `repo`.
fn corrupt_object(env: &TestEnv, repo: &str, id: &lode::ObjectId) {
    use std::os::unix::fs::PermissionsExt;
    let hex = id.to_hex();
    let p = env.object(repo, &hex);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let mut data = fs::read(&p).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&p, data).unwrap();
}

/// The end-to-end story: owner A grants B read; B clones and reads; mirror M (relay)
/// hosts the ciphertext and serves B while A is offline; A revokes B and commits; B keeps the
/// old data but can read nothing new; C without a ticket gets nothing from A or from M.
#[test]
fn owner_reader_mirror_and_revocation_end_to_end() {
    let env = TestEnv::new();
    private_dataset(&env, "ds");
    let origin = serve(&env, "srv", "ds");
    let tb = grant_card(&env, "ds", "b", &["--read"]);
    env.json_as("b", "", &["clone", &origin.ticket, "b1", "--ticket", &tb]);
    assert_eq!(env.read("b1/tables/neurons.csv"), b"ds,inter\n");
    assert_eq!(env.read("b1/video/day1.bin"), vec![9u8; 100_000]);

    // M mirrors with a relay ticket (no identity card needed: it never decrypts).
    relay_mirror(&env, &origin.ticket);
    let mirror = serve(&env, "m", "mirror");

    // A writer's push to M is refused: M cannot publish the dataset (and must never receive
    // its plaintext).
    let tw = grant_card(&env, "ds", "w", &["--read", "--write"]);
    env.json_as("w", "", &["clone", &origin.ticket, "w1", "--ticket", &tw]);
    env.write("w1/tables/neurons.csv", "w's edit\n");
    env.ok_as("w", "w1", &["add", "."]);
    env.ok_as("w", "w1", &["commit", "-m", "w"]);
    env.ok_as("w", "w1", &["remote", "add", "m", &mirror.ticket]);
    env.fails_as("w", "w1", &["push", "m"], "push to the dataset's owner");
    assert!(!walk_files(&env.path("mirror"))
        .iter()
        .any(|f| { fs::read(f).is_ok_and(|d| d.windows(9).any(|w| w == b"w's edit\n")) }));

    // A goes offline; B clones again, from M alone, and gets the same verified files.
    drop(origin);
    env.json_as("b", "", &["clone", &mirror.ticket, "b2", "--ticket", &tb]);
    assert_eq!(env.ls("b1", "HEAD"), env.ls("b2", "HEAD"));
    assert_eq!(env.read("b2/video/day1.bin"), vec![9u8; 100_000]);
    assert_eq!(
        b3(&env.path("b2/video/day2.bin")),
        b3(&env.path("ds/video/day2.bin"))
    );
    // A reader keeps plaintext only: no ciphertext of the big file stays in its store.
    let (ciphers, _) = sealed_ids(&env, "ds");
    for c in &ciphers {
        let kept = env.holds("b2", c);
        let small = fs::metadata(env.object("ds", c))
            .map(|m| m.len() < 4096)
            .unwrap_or(true);
        assert!(!kept || small, "ciphertext {c} kept by a reader");
    }
    env.ok_as("b", "b2", &["verify"]);
    // C, without a ticket, gets nothing from M.
    env.fails_as("c", "", &["clone", &mirror.ticket, "c1"], "not authorized");

    // A revokes B: the revocation goes at once to M, a known peer (a remote of A's
    // repository), so M refuses B before it fetches anything new.
    let bid = device_id(&env, "b");
    env.ok("ds", &["remote", "add", "m", &mirror.ticket]);
    let told = env.json("ds", &["revoke", "--key", &bid]);
    assert_eq!(told["peers"][0]["new"], 1, "{told}");
    env.fails_as("b", "b2", &["pull"], "has been revoked");
    // A commits; A serves again; M follows it.
    env.write("ds/tables/new.csv", "after the revocation\n");
    env.ok("ds", &["add", "."]);
    env.ok("ds", &["commit", "-m", "day 2"]);
    let origin = serve(&env, "srv", "ds");
    env.ok_as("m", "mirror", &["remote", "add", "origin", &origin.ticket]);
    env.ok_as("m", "mirror", &["fetch"]);

    // B is refused by A and by M (M learnt the revocation with the head it fetched) ...
    env.ok_as("b", "b1", &["remote", "add", "origin", &origin.ticket]);
    env.fails_as("b", "b1", &["pull"], "has been revoked");
    env.fails_as("b", "b2", &["pull"], "has been revoked");
    // ... keeps what it had ...
    assert_eq!(env.read("b1/tables/neurons.csv"), b"ds,inter\n");
    assert!(!env.path("b1/tables/new.csv").exists());
    // ... and even holding M's ciphertext it cannot read the new commit: the new epoch's
    // keyring leaves it out.
    let m_as_b = lode::Repo::discover(
        &env.path("mirror"),
        Home::new(env.path("b")),
        lode::RepoOptions::default(),
    )
    .unwrap();
    let head = lode::ops::access::stored_head(&m_as_b).unwrap().unwrap();
    let env_id = lode::ObjectId(head.body.main.unwrap());
    let envelope = lode::ops::sealed::read_envelope(&m_as_b, &env_id).unwrap();
    assert!(envelope.epoch >= 1, "revoking a reader opens a new epoch");
    let err = lode::ops::sealed::open(&m_as_b, &envelope).unwrap_err();
    assert!(
        err.to_string().contains("not among the dataset's readers"),
        "{err}"
    );
    drop(m_as_b);
    // C gets nothing from A either.
    env.fails_as("c", "", &["clone", &origin.ticket, "c2"], "not authorized");

    // D, granted after the revocation, reads the new commit from M once M has the new
    // keyring. A tampered ciphertext at M is caught and nothing of it is kept.
    let td = grant_card(&env, "ds", "d", &["--read"]);
    env.ok_as("d", "", &["clone", &origin.ticket, "d0", "--ticket", &td]);
    env.ok_as("m", "mirror", &["fetch"]);
    let (_, sealed) = sealed_ids(&env, "ds");
    let big = sealed.objects.iter().max_by_key(|(_, n)| *n).unwrap().0;
    // The running mirror publishes the new head (and imports its ciphertexts) when asked.
    assert!(matches!(
        ask(
            &env,
            "d",
            &mirror.ticket,
            sealed.dataset,
            Some(td.parse::<Bundle>().unwrap().encode())
        ),
        Response::Refs(_)
    ));
    corrupt_object(&env, "mirror", &big);
    let out = env
        .cmd_as("d", "", &["clone", &mirror.ticket, "d1", "--ticket", &td])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a tampered ciphertext must fail the clone"
    );
    assert!(
        err.contains("sent bad data")
            || err.contains("could not be fetched")
            || err.contains("cannot read the dataset"),
        "{err}"
    );
    assert!(!env.path("d1/tables/new.csv").exists());
    corrupt_object(&env, "mirror", &big); // flip it back
    env.json_as("d", "", &["clone", &mirror.ticket, "d2", "--ticket", &td]);
    assert_eq!(env.read("d2/tables/new.csv"), b"after the revocation\n");
    env.ok_as("d", "d2", &["verify"]);
}

/// The bytes of an age file after its header (the header ends with the `---` MAC line and
/// holds a random "grease" stanza, noise that says nothing about the content).
fn age_payload_len(c: &[u8]) -> usize {
    let mac = c
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("age header");
    let end = mac + 1 + c[mac + 1..].iter().position(|b| *b == b'\n').unwrap();
    c.len() - end - 1
}

/// A mirror does not learn exact file sizes: restricted files of 33 and 34 bytes (and of
/// 3,000,000 and 3,000,001 bytes) become ciphertexts of equal payload size at the mirror,
/// and a reader that clones from the mirror alone still gets them byte for byte.
#[test]
fn restricted_ciphertexts_are_padded_at_the_mirror() {
    let env = TestEnv::new();
    env.ok("", &["init", "--private", "ds"]);
    let big: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
    let files: [(&str, &[u8]); 4] = [
        ("a.txt", &[b'a'; 33]),
        ("b.txt", &[b'b'; 34]),
        ("big1.bin", &big[..3_000_000]),
        ("big2.bin", &big[1..]),
    ];
    env.commit_files("ds", &files, "sizes");
    let origin = serve(&env, "srv", "ds");
    let tb = grant_card(&env, "ds", "b", &["--read"]);
    relay_mirror(&env, &origin.ticket);
    // The serving owner's device ("srv") seals, so its age identity opens the keyring:
    // the test learns from it which ciphertext holds which file.
    let owner = lode::Repo::discover(
        &env.path("ds"),
        Home::new(env.path("srv")),
        lode::RepoOptions::default(),
    )
    .unwrap();
    let head = lode::ops::access::stored_head(&owner).unwrap().unwrap();
    let env_id = lode::ObjectId(head.body.main.unwrap());
    let envelope = lode::ops::sealed::read_envelope(&owner, &env_id).unwrap();
    assert!(envelope.padded);
    let (manifest, _) = lode::ops::sealed::read_manifest(&owner, &envelope).unwrap();
    owner.release_db();
    let at_mirror = |data: &[u8]| -> (usize, usize) {
        let plain = lode::ObjectId(*blake3::hash(data).as_bytes());
        let (cipher, _) = manifest.map[&plain];
        let c = env
            .object_bytes("mirror", &cipher.to_hex())
            .expect("held by the mirror");
        let listed = envelope
            .objects
            .iter()
            .find(|(i, _)| *i == cipher)
            .unwrap()
            .1;
        assert_eq!(listed, c.len() as u64);
        assert!(!c.windows(data.len().min(33)).any(|w| w == &data[..w.len()]));
        (age_payload_len(&c), c.len())
    };
    let (a, a_len) = at_mirror(files[0].1);
    let (b, b_len) = at_mirror(files[1].1);
    assert_eq!(a, b, "33 and 34 bytes: equal payloads");
    assert!(a > 34 && a_len.abs_diff(b_len) < 300, "{a_len} {b_len}");
    let (c, _) = at_mirror(files[2].1);
    let (d, _) = at_mirror(files[3].1);
    assert_eq!(c, d, "3,000,000 and 3,000,001 bytes: equal payloads");
    assert!(c < 3_000_000 * 112 / 100, "{c}");

    // A reader, from the mirror alone, decrypts them (the big ones while they stream in).
    drop(origin);
    let mirror = serve(&env, "m", "mirror");
    env.json_as("b", "", &["clone", &mirror.ticket, "b1", "--ticket", &tb]);
    for (name, data) in files {
        assert_eq!(env.read(&format!("b1/{name}")), data, "{name}");
    }
    env.ok_as("b", "b1", &["verify"]);
}

/// The owner grants peer "m" a relay ticket (no identity card needed: a mirror never
/// decrypts), and "m" clones the dataset served at `origin` as a mirror into "mirror".
fn relay_mirror(env: &TestEnv, origin: &str) {
    let tm = grant(env, "ds", "m", &["--relay"]);
    env.json_as(
        "m",
        "",
        &["clone", "--mirror", origin, "mirror", "--ticket", &tm],
    );
}
