//! Storage managers: `lode mirror add|list|remove` and `lode serve --mirrors`, on real
//! processes over 127.0.0.1: mirrors follow the origin, and with the origin gone a clone
//! from the mirrors completes and verifies.

use std::time::{Duration, Instant};

use crate::common::peers::{joined, serve, serve_args};
use crate::common::*;

fn mirror_seq(env: &TestEnv, home: &str) -> u64 {
    let v = env.json_as(home, "", &["mirror", "list"]);
    v[0]["seq"].as_u64().unwrap_or(0)
}

#[test]
fn mirrors_follow_the_origin_and_serve_when_it_is_gone() {
    let env = TestEnv::new();
    let ds = env.init();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    env.write("ds/video/day1.bin", &big);
    env.write("ds/tables/t.csv", "a,b\n");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "day 1"]);
    let origin = serve(&env, "srv", ds);

    // Two storage managers mirror the dataset and serve it, following the origin every second.
    let mut mirrors = Vec::new();
    for m in ["m1", "m2"] {
        env.ok_as(m, "", &["mirror", "add", &origin.ticket]);
        let list = env.json_as(m, "", &["mirror", "list"]);
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        assert!(list[0]["bytes"].as_u64().unwrap() >= 3_000_000, "{list}");
        let (server, tickets) = serve_args(&env, m, "", &["--mirrors", "--follow", "1"], 1);
        mirrors.push((m, server, tickets[0].clone()));
    }
    env.fails_as(
        "m1",
        "",
        &["mirror", "add", &origin.ticket],
        "already mirrored",
    );
    let before = mirror_seq(&env, "m1");

    // The owner commits day 2: the mirrors fetch it within a few follow cycles.
    env.write("ds/tables/day2.csv", "c,d\n");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "day 2"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    for (m, _, _) in &mirrors {
        while mirror_seq(&env, m) <= before {
            assert!(
                Instant::now() < deadline,
                "mirror {m} did not follow the origin"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // One ticket naming the origin and both mirrors; then the origin goes away.
    let all = env
        .ok(
            ds,
            &["ticket", "--add", &mirrors[0].2, "--add", &mirrors[1].2],
        )
        .trim()
        .to_string();
    drop(origin);
    // Let the mirrors' next follow round start: it now waits on the dead origin for its
    // connect timeout, and the mirrors must keep serving meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    let r = env.json_as("c", "", &["clone", &all, "copy"]);
    let peers: Vec<String> = r["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(!peers.is_empty(), "{r}");
    assert_eq!(env.read("copy/tables/day2.csv"), b"c,d\n");
    assert_eq!(env.read("copy/video/day1.bin"), big);
    env.ok_as("c", "copy", &["verify"]);

    // Removing a mirror deletes its copy.
    drop(mirrors);
    let id = env.dataset_id(ds);
    env.ok_as("m1", "", &["mirror", "remove", &id[..10]]);
    assert_eq!(
        env.json_as("m1", "", &["mirror", "list"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    env.fails_as("m1", "", &["mirror", "remove", &id[..10]], "no mirror");
}

#[test]
fn referral_uris_resolve_through_known_providers() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("tables/t.csv", b"1\n")], "one");
    env.ok(ds, &["tag", "v1"]);
    env.commit_files(ds, &[("tables/t.csv", b"2\n")], "two");
    let server = serve(&env, "srv", ds);
    let id = env.dataset_id(ds);
    let uri = format!("lode://{id}/tables/t.csv");
    // Nothing known yet about where the dataset is served.
    env.fails_as("r", "", &["get", &uri, "--to", "o0"], "no known provider");
    // One use of a ticket teaches lode the providers; the URI then resolves.
    env.ok_as(
        "r",
        "",
        &["get", &server.ticket, "tables/t.csv", "--to", "o1"],
    );
    env.ok_as("r", "", &["get", &uri, "--to", "o2"]);
    assert_eq!(env.read("o2/tables/t.csv"), b"2\n");
    env.ok_as("r", "", &["get", &format!("{uri}?rev=v1"), "--to", "o3"]);
    assert_eq!(env.read("o3/tables/t.csv"), b"1\n");
    env.fails_as(
        "r",
        "",
        &["get", &format!("{uri}?rev=nope"), "--to", "o4"],
        "unknown revision",
    );
    env.fails_as(
        "r",
        "",
        &["get", &format!("lode://{id}/tables/%2e%2e/x"), "--to", "o5"],
        "invalid lode:// URI",
    );
    // A URI that carries its providers resolves on a home that never used a ticket.
    let hinted = format!("{uri}?rev=v1&provider={}", server.ticket);
    env.ok_as("fresh", "", &["get", &hinted, "--to", "o6"]);
    assert_eq!(env.read("o6/tables/t.csv"), b"1\n");
    env.fails_as(
        "fresh2",
        "",
        &["get", &format!("{uri}?provider=lode1abc"), "--to", "o7"],
        "provider hint",
    );
}

#[test]
fn a_mirror_over_quota_drops_the_oldest_unreferenced_versions() {
    let env = TestEnv::new();
    let ds = env.init();
    let version = |seed: u32| -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| ((i ^ seed).wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect()
    };
    env.write("ds/a.bin", version(1));
    env.write("ds/t.csv", "x\n");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "v1"]);
    let old_id = b3(&env.path("ds/a.bin"));
    let origin = serve(&env, "srv", ds);
    let id = env.dataset_id(ds);
    env.ok_as("m", "", &["mirror", "add", &origin.ticket, "--quota", "5M"]);

    // Version 2 replaces a.bin: two 3 MB versions do not fit in 5 MiB, so the mirror drops
    // the file only the old version uses, and says so.
    env.write("ds/a.bin", version(2));
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "v2"]);
    let new_id = b3(&env.path("ds/a.bin"));
    let r = env.json_as("m", "", &["mirror", "sync"]);
    let dropped = r["mirrors"][0]["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{r}");
    assert_eq!(dropped[0]["id"], old_id.as_str());
    let list = env.json_as("m", "", &["mirror", "list"]);
    assert!(list[0]["bytes"].as_u64().unwrap() <= 5 << 20, "{list}");
    assert_eq!(list[0]["dropped"], 1);
    let mirror_dir = format!("m/mirrors/{id}");
    assert!(!env.holds(&mirror_dir, &old_id) && env.holds(&mirror_dir, &new_id));
    // What was dropped on purpose is not reported missing.
    env.ok_as("m", &mirror_dir, &["verify"]);

    // A clone through the mirror first gets the dropped old version from the origin.
    let (_mirror, tickets) = serve_args(&env, "m", "", &["--mirrors", "--follow", "0"], 1);
    let both = joined(&[&tickets[0], &origin.ticket]);
    env.json_as("c", "", &["clone", &both, "copy"]);
    assert_eq!(env.read("copy/a.bin"), version(2));
    env.ok_as("c", "copy", &["checkout", "HEAD~1", "a.bin"]);
    assert_eq!(b3(&env.path("copy/a.bin")), old_id);
    // With the origin gone, the mirror still serves the current version.
    drop(origin);
    env.ok_as("d", "", &["get", &tickets[0], "a.bin", "--to", "out"]);
    assert_eq!(env.read("out/a.bin"), version(2));
}

#[test]
fn a_mirror_subscribed_to_its_origin_follows_without_polling() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("t.csv", b"1\n")], "one");
    let _origin = serve(&env, "srv", ds);
    let origin_ticket = std::fs::read_to_string(env.path("ds/.lode/serve.ticket")).unwrap();
    env.ok_as("m", "", &["mirror", "add", origin_ticket.trim()]);
    // Polling only every 10 minutes: a new head must arrive through the subscription.
    let (_mirror, _) = serve_args(&env, "m", "", &["--mirrors", "--follow", "600"], 1);
    let before = mirror_seq(&env, "m");
    // The owner commits while the origin serves: the origin notices it within a second and
    // answers the waiting mirror, which fetches at once.
    std::thread::sleep(Duration::from_secs(1));
    env.commit_files(ds, &[("t.csv", b"2\n")], "two");
    let deadline = Instant::now() + Duration::from_secs(30);
    while mirror_seq(&env, "m") <= before {
        assert!(
            Instant::now() < deadline,
            "the subscribed mirror did not follow the origin"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
