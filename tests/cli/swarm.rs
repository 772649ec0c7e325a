//! Swarm distribution, with real processes: a publisher and several downloaders, each in its
//! own network namespace behind a shaped uplink (tests/cli/swarm_net.sh, inside a private
//! `unshare -m -n`), and on loopback for the flood of fake peers.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::common::{cannot_run, is_root, lode_bin, TestEnv};

const NET: &str = include_str!("swarm_net.sh");
const MIB: u64 = 1 << 20;

/// Runs `scenario` (bash, after the network set-up) in a private network namespace; returns
/// its `key=value` lines, or None when this machine cannot create namespaces.
fn run(env: &TestEnv, scenario: &str) -> Option<BTreeMap<String, String>> {
    if !is_root() {
        cannot_run("the swarm tests need root to create network namespaces");
        return None;
    }
    let script = format!("{NET}\n{scenario}\n");
    let out = Command::new("unshare")
        .args([
            "-m",
            "-n",
            "--propagation",
            "private",
            "bash",
            "-c",
            &script,
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LODE", lode_bin())
        .env("W", env.tmp.path())
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.code() == Some(99) {
        cannot_run("cannot create network namespaces, veth links or tc qdiscs here");
        return None;
    }
    assert!(
        out.status.success(),
        "scenario failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn report(env: &TestEnv, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(env.path(name)).unwrap_or_default();
    let err = std::fs::read_to_string(env.path(&name.replace(".json", ".err"))).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text:?}\n{err}"))
}

/// Short endpoint id (as reports name peers) of peer `home`.
fn short_id(env: &TestEnv, home: &str) -> String {
    env.json_as(home, "", &["id"])["device"].as_str().unwrap()[..10].to_string()
}

fn from_map(v: &serde_json::Value, key: &str) -> BTreeMap<String, u64> {
    v["swarm"][key]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes a downloader's report says it received from peers other than `publisher`.
fn from_others(r: &serde_json::Value, publisher: &str) -> u64 {
    from_map(r, "received_from")
        .iter()
        .filter(|(p, _)| *p != publisher)
        .map(|(_, n)| n)
        .sum()
}

/// Asserts that no downloader failed and downloaders `ks` hold the publisher's file.
fn all_complete(env: &TestEnv, out: &BTreeMap<String, String>, ks: std::ops::RangeInclusive<u32>) {
    let errors = || {
        ks.clone()
            .map(|k| {
                let err = std::fs::read_to_string(env.path(&format!("c{k}.err")));
                format!("downloader {k}: {}", err.unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(!out.contains_key("failed"), "{out:?}\n{}", errors());
    for k in ks {
        assert_eq!(
            out.get(&format!("same{k}")).map(String::as_str),
            Some("1"),
            "downloader {k} did not complete: {}",
            std::fs::read_to_string(env.path(&format!("c{k}.err"))).unwrap_or_default()
        );
    }
}

/// Asserts that the publisher sent less than `times` × `dataset` bytes (the scenario's
/// `publisher_sent` line).
fn publisher_sent_under(out: &BTreeMap<String, String>, dataset: u64, times: f64) {
    let sent: u64 = out["publisher_sent"].parse().unwrap();
    let ratio = sent as f64 / dataset as f64;
    eprintln!("publisher sent {sent} bytes, {ratio:.2}× the dataset");
    assert!(
        ratio < times,
        "the publisher sent {sent} bytes, {ratio:.2}× the dataset"
    );
}

#[test]
fn downloaders_serve_each_other_and_spare_the_publisher() {
    let env = TestEnv::new();
    let size = 16 * MIB;
    let Some(out) = run(
        &env,
        r#"
dataset "$W/owner" "$W/ds" 16M
for k in 1 2 3 4 5; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
clone_all 4s 2 3 4 5
echo "publisher_sent=$(sent 1)"
for k in 2 3 4 5; do
  cmp -s "$W/d$k/big.bin" "$W/ds/big.bin" && echo "same$k=1"
done
exit 0
"#,
    ) else {
        return;
    };
    all_complete(&env, &out, 2..=5);
    let publisher = short_id(&env, "owner");
    for k in 2..=5 {
        let r = report(&env, &format!("c{k}.json"));
        assert!(
            from_others(&r, &publisher) > 0,
            "downloader {k} received nothing from other downloaders: {r}"
        );
    }
    publisher_sent_under(&out, size, 2.5);
}

#[test]
fn downloaders_trade_small_objects_in_batches() {
    let env = TestEnv::new();
    let (files, size) = (2000u64, 4096u64);
    let dataset = files * size;
    let Some(out) = run(
        &env,
        r#"
dataset_files "$W/owner" "$W/ds" 2000 4096
peer 1 8mbit
for k in 2 3 4; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
clone_all 4s 2 3 4
echo "publisher_sent=$(sent 1)"
for k in 2 3 4; do
  diff -r -q "$W/d$k/files" "$W/ds/files" >/dev/null &&
    LODE_HOME=$W/h$k "$LODE" -C "$W/d$k" verify -q >/dev/null 2>>"$W/c$k.err" &&
    echo "same$k=1"
done
exit 0
"#,
    ) else {
        return;
    };
    all_complete(&env, &out, 2..=4);
    let publisher = short_id(&env, "owner");
    let mut traded = 0;
    let mut served = 0;
    for k in 2..=4 {
        let r = report(&env, &format!("c{k}.json"));
        traded += from_others(&r, &publisher);
        served += from_map(&r, "sent_to").values().sum::<u64>();
        eprintln!(
            "downloader {k}: from other downloaders {} bytes, sent {} bytes",
            from_others(&r, &publisher),
            from_map(&r, "sent_to").values().sum::<u64>()
        );
    }
    assert!(
        traded > 0,
        "no downloader received small objects from another downloader"
    );
    // What the downloaders say they received from each other, they say they sent.
    assert!(served >= traded, "sent {served} bytes, received {traded}");
    publisher_sent_under(&out, dataset, 3.0);
}

#[test]
fn downloaders_finish_without_the_publisher_once_the_swarm_holds_every_piece() {
    let env = TestEnv::new();
    let Some(out) = run(
        &env,
        r#"
dataset "$W/owner" "$W/ds" 16M
for k in 1 2 3 4 5; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
# Peer 2 downloads first, then seeds: the swarm holds every piece.
in_peer 2 "$W/h2" clone --json --seed 60s "$TICKET" "$W/d2" >"$W/c2.json" 2>"$W/c2.err"
SEED=$!
for _ in $(seq 1 600); do [[ -f $W/d2/big.bin ]] && break; sleep 0.1; done
[[ -f $W/d2/big.bin ]] || { echo "seed_failed=1"; exit 0; }
C=()
for k in 3 4 5; do
  in_peer "$k" "$W/h$k" clone --json --seed 2s "$TICKET" "$W/d$k" >"$W/c$k.json" 2>"$W/c$k.err"
  C+=($!)
done
# Once every downloader has joined (its swarm session began), the publisher leaves.
for _ in $(seq 1 300); do
  n=0; for k in 3 4 5; do [[ -d $W/d$k/.lode/swarm-store || -f $W/d$k/big.bin ]] && n=$((n+1)); done
  (( n == 3 )) && break; sleep 0.05
done
sleep 1
kill "$SERVER"; wait "$SERVER" 2>/dev/null
echo "publisher_killed=1"
for p in "${C[@]}"; do wait "$p" || echo "failed=$p"; done
for k in 3 4 5; do cmp -s "$W/d$k/big.bin" "$W/ds/big.bin" && echo "same$k=1"; done
kill "$SEED" 2>/dev/null
exit 0
"#,
    ) else {
        return;
    };
    assert!(!out.contains_key("seed_failed"), "{out:?}");
    all_complete(&env, &out, 3..=5);
    let seeder = short_id(&env, "h2");
    for k in 3..=5 {
        let from = from_map(&report(&env, &format!("c{k}.json")), "received_from");
        assert!(from.get(&seeder).is_some_and(|n| *n > 0), "{from:?}");
    }
}

#[test]
fn a_peer_serving_corrupt_pieces_is_named_and_dropped() {
    let env = TestEnv::new();
    let Some(out) = run(
        &env,
        r#"
dataset "$W/owner" "$W/ds" 8M
for k in 1 2 3 4; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
in_peer 2 "$W/bad" clone --json --seed 90s "$TICKET" "$W/bad-clone" >"$W/bad.json" 2>"$W/bad.err"
BAD=$!
for _ in $(seq 1 600); do [[ -f $W/bad-clone/big.bin ]] && break; sleep 0.1; done
[[ -f $W/bad-clone/big.bin ]] || { echo "bad_failed=1"; exit 0; }
# The bad peer's copy rots on disk while it serves: one byte in every MiB flipped.
obj=$(find "$W/bad-clone/.lode/objects" -type f -size +1M | head -1)
for i in 0 1 2 3 4 5 6 7; do
  printf '\xff' | dd of="$obj" bs=1 seek=$((i * 1048576 + 4096)) conv=notrunc status=none
done
sleep 3
clone_all 2s 3 4
for k in 3 4; do cmp -s "$W/d$k/big.bin" "$W/ds/big.bin" && echo "same$k=1"; done
kill "$BAD" 2>/dev/null
exit 0
"#,
    ) else {
        return;
    };
    assert!(!out.contains_key("bad_failed"), "{out:?}");
    all_complete(&env, &out, 3..=4);
    let bad = short_id(&env, "bad");
    let mut named = 0;
    for k in 3..=4 {
        let r = report(&env, &format!("c{k}.json"));
        let dropped = r["swarm"]["dropped"].to_string();
        if dropped.contains(&bad) {
            assert!(
                dropped.contains("fails BLAKE3 verification") || dropped.contains("broke off"),
                "{dropped}"
            );
            named += 1;
        }
    }
    assert!(named > 0, "no downloader named the corrupt peer {bad}");
}

/// A downloader whose small objects rotted on disk while it seeds sends none of them: its
/// serving store checks each object against its id as it sends (a `GetMany` of damaged
/// objects fails at the peer instead of delivering bad bytes), and the others take the
/// batches elsewhere and complete.
#[test]
fn a_peer_whose_small_objects_rotted_sends_none_and_the_others_complete() {
    let env = TestEnv::new();
    let Some(out) = run(
        &env,
        r#"
dataset_files "$W/owner" "$W/ds" 400 4096
for k in 1 2 3 4; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
in_peer 2 "$W/bad" clone --json --seed 90s "$TICKET" "$W/bad-clone" >"$W/bad.json" 2>"$W/bad.err"
BAD=$!
for _ in $(seq 1 600); do
  [[ $(ls "$W/bad-clone/files" 2>/dev/null | wc -l) == 400 ]] && break
  sleep 0.1
done
[[ $(ls "$W/bad-clone/files" 2>/dev/null | wc -l) == 400 ]] || { echo "bad_failed=1"; exit 0; }
# The bad peer's packs rot while it serves: every byte changed (b -> b+1), in place.
packs=0
for p in "$W"/bad-clone/.lode/objects/pack/*.pack; do
  [[ -f $p ]] || continue
  tr '\000-\377' '\001-\377\000' <"$p" >"$W/rot"
  dd if="$W/rot" of="$p" conv=notrunc status=none
  packs=$((packs + 1))
done
echo "packs=$packs"
sleep 3
clone_all 2s 3 4
for k in 3 4; do
  diff -r -q "$W/d$k/files" "$W/ds/files" >/dev/null &&
    LODE_HOME=$W/h$k "$LODE" -C "$W/d$k" verify -q >/dev/null 2>>"$W/c$k.err" &&
    echo "same$k=1"
done
kill "$BAD" 2>/dev/null
exit 0
"#,
    ) else {
        return;
    };
    assert!(!out.contains_key("bad_failed"), "{out:?}");
    assert_ne!(out.get("packs").map(String::as_str), Some("0"), "{out:?}");
    all_complete(&env, &out, 3..=4);
    let bad = short_id(&env, "bad");
    for k in 3..=4 {
        let from = from_map(&report(&env, &format!("c{k}.json")), "received_from");
        assert!(
            from.get(&bad).is_none_or(|n| *n == 0),
            "downloader {k} took bytes from the rotten peer {bad}: {from:?}"
        );
    }
}

#[test]
fn no_share_uploads_nothing_and_restricted_datasets_have_no_swarm() {
    let env = TestEnv::new();
    env.ok_as("owner", "", &["init", "--private", "secret"]);
    env.write("secret/big.bin", vec![9u8; 3 << 20]);
    env.ok_as("owner", "secret", &["add", "."]);
    env.ok_as("owner", "secret", &["commit", "-m", "s"]);
    let card = env
        .ok_as("reader", "", &["id", "--card"])
        .trim()
        .to_string();
    let cap = env.json_as("owner", "secret", &["grant", &card, "--read"])["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    env.write("cap.txt", &cap);
    let Some(out) = run(
        &env,
        r#"
dataset "$W/owner" "$W/ds" 16M
for k in 1 2 3 4 5 6; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
C=()
in_peer 2 "$W/h2" clone --json --no-share "$TICKET" "$W/d2" >"$W/c2.json" 2>"$W/c2.err"
C+=($!)
in_peer 3 "$W/h3" clone --json --seed 3s "$TICKET" "$W/d3" >"$W/c3.json" 2>"$W/c3.err"
C+=($!)
in_peer 4 "$W/h4" clone --json --seed 3s --max-upload 256k "$TICKET" "$W/d4" >"$W/c4.json" 2>"$W/c4.err"
C+=($!)
for p in "${C[@]}"; do wait "$p" || echo "failed=$p"; done
echo "noshare_sent=$(sent 2)"
for k in 2 3 4; do cmp -s "$W/d$k/big.bin" "$W/ds/big.bin" && echo "same$k=1"; done
kill "$SERVER"; wait "$SERVER" 2>/dev/null
# A restricted dataset: its reader downloads with --seed but serves nothing, and the
# publisher hands out no swarm peers for it.
serve_as 5 "$W/owner" "$W/secret"
start=$(date +%s)
in_peer 6 "$W/reader" clone --json --seed 30s --ticket "@$W/cap.txt" "$TICKET" "$W/r" >"$W/r.json" 2>"$W/r.err"
wait $! || echo "reader_failed=1"
echo "reader_seconds=$(( $(date +%s) - start ))"
cmp -s "$W/r/big.bin" "$W/secret/big.bin" && echo "reader_same=1"
exit 0
"#,
    ) else {
        return;
    };
    all_complete(&env, &out, 2..=4);
    let noshare = short_id(&env, "h2");
    let r2 = report(&env, "c2.json");
    assert!(from_map(&r2, "sent_to").is_empty(), "{r2}");
    // Acknowledgements only: far below one piece of data.
    let sent: u64 = out["noshare_sent"].parse().unwrap();
    assert!(sent < 2 * MIB, "the --no-share peer sent {sent} bytes");
    for k in 3..=4 {
        let from = from_map(&report(&env, &format!("c{k}.json")), "received_from");
        assert!(!from.contains_key(&noshare), "{from:?}");
    }
    // --max-upload 256k: what peer 4 served stays within the cap over its session (one
    // second of burst allowed).
    let r4 = report(&env, "c4.json");
    let sent4: u64 = from_map(&r4, "sent_to").values().sum();
    let secs = r4["seconds"].as_f64().unwrap() + r4["swarm"]["seeded_seconds"].as_f64().unwrap();
    assert!(
        (sent4 as f64) <= 256.0 * 1024.0 * (secs + 2.0),
        "peer 4 sent {sent4} bytes in {secs:.1}s under a 256 KiB/s cap"
    );
    assert!(!out.contains_key("reader_failed"), "{out:?}");
    assert_eq!(out.get("reader_same").map(String::as_str), Some("1"));
    let r = report(&env, "r.json");
    assert!(
        r.get("swarm").is_none(),
        "a restricted download joined a swarm: {r}"
    );
    let secs: u64 = out["reader_seconds"].parse().unwrap();
    assert!(
        secs < 25,
        "the reader of a restricted dataset seeded ({secs}s)"
    );
    let _ = Duration::ZERO;
}

#[test]
fn a_flood_of_fake_peers_does_not_stop_the_downloads() {
    use lode::net::endpoint::{bind, NetOptions, Relay};
    use lode::net::swarm::{announce::Announcement, membership};
    use lode::ticket::{Provider, Ticket};

    let env = TestEnv::new();
    let ds = env.init();
    let mut data = vec![0u8; 6 << 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut data);
    env.write("ds/big.bin", data);
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "data"]);
    let (mut server, ticket_text) = serve_lines(&env, "home", ds);
    let ticket: Ticket = ticket_text.parse().unwrap();
    // The attacker: an endpoint in the dataset's topic broadcasting announcements of 300 made-up
    // peers (each signed by its own fresh key, as the rules require), and answering nothing.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let attacker = rt.block_on(async {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let opts = NetOptions {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            relay: Relay::Disabled,
            discovery: false,
            ..Default::default()
        };
        let net = bind(&key, &opts).await.unwrap();
        let origin = net.learn(&ticket.providers[0]).unwrap();
        let gossip = membership::spawn_gossip(&net);
        let router = iroh::protocol::Router::builder(net.endpoint.clone())
            .accept(iroh_gossip::ALPN, gossip.clone())
            .spawn();
        let topic = gossip
            .subscribe(membership::topic(&ticket.dataset), vec![origin])
            .await
            .unwrap();
        let (sender, mut receiver) = topic.split();
        let _ = tokio::time::timeout(Duration::from_secs(10), receiver.joined()).await;
        let now = lode::ops::access::now();
        for i in 0..300u16 {
            let fake = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let p = Provider {
                id: fake.verifying_key().to_bytes(),
                addrs: vec![format!("127.0.0.1:{}", 1 + i).parse().unwrap()],
                relay: None,
            };
            let signed = Announcement::sign(&fake, ticket.dataset, p, now);
            let _ = sender.broadcast(signed.into()).await;
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // The publisher heard the flood and keeps a bounded number of them for its tracker.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let req = lode::net::proto::encode(&lode::net::proto::Request::Peers {
            dataset: ticket.dataset,
            ticket: None,
        });
        let answer = lode::net::endpoint::exchange(
            &net,
            origin,
            lode::net::proto::ALPN,
            &req,
            lode::net::proto::MAX_MESSAGE,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let heard = match lode::net::proto::decode(&answer).unwrap() {
            lode::net::proto::Response::Peers(list) => list.len(),
            other => panic!("{other:?}"),
        };
        assert!(
            heard > 0 && heard <= lode::net::swarm::announce::MAX_PEERS,
            "the publisher's tracker holds {heard} peers"
        );
        (router, receiver, sender)
    });
    let mut children = Vec::new();
    for k in 0..3 {
        let home = format!("d{k}");
        let mut c = env.cmd_as(
            &home,
            "",
            &["clone", "--json", "--seed", "2s", &ticket_text, &home],
        );
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push(c.spawn().unwrap());
    }
    for (k, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "clone {k} failed under the flood: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            crate::common::b3(&env.path(&format!("d{k}/big.bin"))),
            crate::common::b3(&env.path("ds/big.bin"))
        );
    }
    let _ = server.kill();
    let _ = server.wait();
    rt.block_on(async move {
        let (router, _, _) = attacker;
        let _ = router.shutdown().await;
    });
}

/// Starts `lode serve` of `ds` as peer `home` on loopback; returns it and its ticket.
fn serve_lines(env: &TestEnv, home: &str, ds: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut c = env.cmd_as(home, ds, &["serve"]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    let ticket = loop {
        let line = lines.next().expect("serve prints its ticket").unwrap();
        if let Some(t) = line.strip_prefix("ticket: ") {
            break t.trim().to_string();
        }
    };
    // Keep reading (and dropping) stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, ticket)
}

#[test]
fn get_fetches_from_and_serves_the_swarm_like_clone() {
    let env = TestEnv::new();
    let size = 16 * MIB;
    let Some(out) = run(
        &env,
        r#"
dataset "$W/owner" "$W/ds" 16M
for k in 1 2 3 4 5 6; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
C=()
for k in 2 3 4; do
  in_peer "$k" "$W/h$k" get --json --seed 4s "$TICKET" big.bin --to "$W/g$k" >"$W/c$k.json" 2>"$W/c$k.err"
  C+=($!)
done
in_peer 5 "$W/h5" clone --json --seed 4s "$TICKET" "$W/g5" >"$W/c5.json" 2>"$W/c5.err"
C+=($!)
in_peer 6 "$W/h6" get --json --no-share "$TICKET" big.bin --to "$W/g6" >"$W/c6.json" 2>"$W/c6.err"
C+=($!)
for p in "${C[@]}"; do wait "$p" || echo "failed=$p"; done
echo "noshare_sent=$(sent 6)"
for k in 2 3 4 5 6; do
  cmp -s "$W/g$k/big.bin" "$W/ds/big.bin" && echo "same$k=1"
  [[ -e $W/g$k/.lode-get ]] || echo "clean$k=1"
done
exit 0
"#,
    ) else {
        return;
    };
    all_complete(&env, &out, 2..=6);
    let publisher = short_id(&env, "owner");
    let noshare = short_id(&env, "h6");
    let mut gets_sent = 0;
    for k in 2..=5 {
        let r = report(&env, &format!("c{k}.json"));
        assert!(
            from_others(&r, &publisher) > 0,
            "downloader {k} received nothing from other downloaders: {r}"
        );
        let from = from_map(&r, "received_from");
        assert!(!from.contains_key(&noshare), "{from:?}");
        if k <= 4 {
            gets_sent += from_map(&r, "sent_to").values().sum::<u64>();
            // The get's transfer store, which its session served from, is gone.
            assert_eq!(out.get(&format!("clean{k}")).map(String::as_str), Some("1"));
        }
    }
    assert!(gets_sent >= size / 4, "the gets served {gets_sent} bytes");
    // `get --no-share` serves nothing: no session, acknowledgements only on its uplink.
    let r6 = report(&env, "c6.json");
    assert!(r6.get("swarm").is_none_or(|s| s.is_null()), "{r6}");
    let sent: u64 = out["noshare_sent"].parse().unwrap();
    assert!(sent < 2 * MIB, "the --no-share get sent {sent} bytes");
}

#[test]
fn gets_trade_small_objects_in_batches_with_clones() {
    let env = TestEnv::new();
    let (files, size) = (1500u64, 4096u64);
    let dataset = files * size;
    let Some(out) = run(
        &env,
        r#"
dataset_files "$W/owner" "$W/ds" 1500 4096
peer 1 8mbit
for k in 2 3 4 5; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
C=()
for k in 2 3 4; do
  in_peer "$k" "$W/h$k" get --json --seed 4s "$TICKET" files --to "$W/d$k" >"$W/c$k.json" 2>"$W/c$k.err"
  C+=($!)
done
in_peer 5 "$W/h5" clone --json --seed 4s "$TICKET" "$W/d5" >"$W/c5.json" 2>"$W/c5.err"
C+=($!)
for p in "${C[@]}"; do wait "$p" || echo "failed=$p"; done
echo "publisher_sent=$(sent 1)"
for k in 2 3 4 5; do
  diff -r -q "$W/d$k/files" "$W/ds/files" >/dev/null && echo "same$k=1"
done
exit 0
"#,
    ) else {
        return;
    };
    all_complete(&env, &out, 2..=5);
    let publisher = short_id(&env, "owner");
    let (mut traded, mut gets) = (0, 0);
    for k in 2..=5 {
        let r = report(&env, &format!("c{k}.json"));
        // Nobody was taken for a liar: a get serves a small object only once it is whole.
        assert_eq!(r["swarm"]["dropped"], serde_json::json!([]), "{r}");
        let from = from_others(&r, &publisher);
        eprintln!("downloader {k}: {from} bytes from the others");
        if k < 5 {
            gets += from;
        }
        traded += from;
    }
    assert!(
        gets >= dataset / 2,
        "the gets took {gets} bytes from the other downloaders"
    );
    assert!(
        traded >= dataset,
        "the gets and the clone took {traded} bytes from each other"
    );
    publisher_sent_under(&out, dataset, 3.0);
}

#[test]
fn mirrors_follow_through_the_swarm_from_other_mirrors() {
    let env = TestEnv::new();
    let size = 8 * MIB;
    let Some(out) = run(
        &env,
        r#"
dataset "$W/owner" "$W/ds" 64k
peer 1 20mbit; peer 2; peer 3; peer 4; peer 5
serve_as 1 "$W/owner" "$W/ds"
for k in 2 3 5; do
  in_peer "$k" "$W/m$k" mirror add -q "$TICKET" >/dev/null 2>"$W/add$k.err"
  wait $! || { echo "add_failed=$k"; exit 0; }
done
# Mirror 2 follows; the owner publishes a version with a new 8 MiB file.
in_peer 2 "$W/m2" serve --mirrors --follow 600 >"$W/m2.out" 2>"$W/m2.err"
head -c 8M /dev/urandom >"$W/ds/new.bin"
LODE_HOME=$W/owner "$LODE" -C "$W/ds" add -q . && LODE_HOME=$W/owner "$LODE" -C "$W/ds" commit -q -m v2
for _ in $(seq 1 600); do grep -q ': fetched' "$W/m2.err" && break; sleep 0.1; done
grep -q ': fetched' "$W/m2.err" || { echo "m2_failed=1"; cat "$W/m2.err"; exit 0; }
# Mirror 2's server re-reads its mirror after the round; then mirror 3 starts following.
sleep 2
before=$(sent 1)
in_peer 3 "$W/m3" serve --mirrors --follow 600 >"$W/m3.out" 2>"$W/m3.err"
for _ in $(seq 1 600); do grep -q ': fetched' "$W/m3.err" && break; sleep 0.1; done
grep -q ': fetched' "$W/m3.err" || { echo "m3_failed=1"; cat "$W/m3.err"; exit 0; }
echo "origin_sent=$(( $(sent 1) - before ))"
echo "m3_swarm=$(grep 'swarm: received' "$W/m3.err" | head -1)"
# Mirror 3 serves the new version whole: a clone from it alone gets the file.
sleep 2
T3=$(sed -n 's/^ticket: //p' "$W/m3.out" | head -1)
in_peer 4 "$W/h4" clone -q --no-share "$T3" "$W/copy" >/dev/null 2>"$W/copy.err"
wait $! && cmp -s "$W/copy/new.bin" "$W/ds/new.bin" && echo "copy_same=1"
# Mirror 5's round by hand (`mirror sync`) goes through the swarm too.
before=$(sent 1)
in_peer 5 "$W/m5" mirror sync --json >"$W/m5.json" 2>"$W/m5.err"
wait $! || { echo "m5_failed=1"; exit 0; }
echo "origin_sent5=$(( $(sent 1) - before ))"
exit 0
"#,
    ) else {
        return;
    };
    for k in ["add_failed", "m2_failed", "m3_failed", "m5_failed"] {
        assert!(!out.contains_key(k), "{out:?}");
    }
    let m2 = short_id(&env, "m2");
    let line = &out["m3_swarm"];
    assert!(
        line.contains(&format!("from {m2}")),
        "mirror 3's follow round received nothing from mirror 2: {line:?}"
    );
    let sent: u64 = out["origin_sent"].parse().unwrap();
    assert!(
        sent < size / 2,
        "the origin sent {sent} bytes during mirror 3's round"
    );
    assert_eq!(
        out.get("copy_same").map(String::as_str),
        Some("1"),
        "{}",
        std::fs::read_to_string(env.path("copy.err")).unwrap_or_default()
    );
    let m5 = report(&env, "m5.json");
    let fetched = &m5["mirrors"][0];
    let others = from_others(fetched, &short_id(&env, "owner"));
    assert!(
        others >= size / 2,
        "mirror 5's sync took {others} bytes from the other mirrors: {m5}"
    );
    let sent: u64 = out["origin_sent5"].parse().unwrap();
    assert!(
        sent < size / 2,
        "the origin sent {sent} bytes during mirror 5's sync"
    );
}

#[test]
fn get_inside_lazy_clones_trades_pieces_in_the_swarm() {
    let env = TestEnv::new();
    let Some(out) = run(
        &env,
        r#"
dataset "$W/owner" "$W/ds" 16M
for k in 1 2 3 4; do peer "$k" 40mbit; done
serve_as 1 "$W/owner" "$W/ds"
for k in 2 3 4; do
  in_peer "$k" "$W/h$k" clone -q --lazy --no-share "$TICKET" "$W/d$k" >/dev/null 2>"$W/l$k.err"
  wait $! || { echo "lazy_failed=$k"; exit 0; }
done
C=()
for k in 2 3 4; do
  in_peer "$k" "$W/h$k" -C "$W/d$k" get --json --seed 4s big.bin >"$W/c$k.json" 2>"$W/c$k.err"
  C+=($!)
done
for p in "${C[@]}"; do wait "$p" || echo "failed=$p"; done
for k in 2 3 4; do cmp -s "$W/d$k/big.bin" "$W/ds/big.bin" && echo "same$k=1"; done
exit 0
"#,
    ) else {
        return;
    };
    assert!(!out.contains_key("lazy_failed"), "{out:?}");
    all_complete(&env, &out, 2..=4);
    let publisher = short_id(&env, "owner");
    for k in 2..=4 {
        let r = report(&env, &format!("c{k}.json"));
        assert_eq!(r["written"], 1, "{r}");
        assert!(
            from_others(&r, &publisher) > 0,
            "the get in lazy clone {k} received nothing from the other downloaders: {r}"
        );
    }
}
