//! Registries on real processes over 127.0.0.1: publish, search, clone by name, replication
//! across three registries with one killed and restarted, and taint notices that following
//! mirrors obey (and forged ones they ignore).

use std::fs;
use std::time::{Duration, Instant};

use crate::common::peers::{serve, Server as Registry};
use crate::common::*;

/// Starts `lode registry serve --sync 1 ARGS` as peer `home` and waits for its ticket.
pub(crate) fn registry(env: &TestEnv, home: &str, extra: &[&str]) -> Registry {
    let mut args = vec!["registry", "serve", "-q", "--sync", "1"];
    args.extend_from_slice(extra);
    std::fs::create_dir_all(env.path(home)).unwrap();
    let (child, rx) = crate::common::peers::spawn_lines(env.cmd_as(home, "", &args));
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("registry printed its ticket");
    let ticket = line
        .strip_prefix("registry: ")
        .expect("registry line")
        .to_string();
    assert!(ticket.starts_with("lodereg1"), "{ticket}");
    Registry { child, ticket }
}

/// Waits (at most 60 s) until `check` holds.
pub(crate) fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Names found by `lode search TERM` at registry `ticket`.
fn names(env: &TestEnv, term: &str, ticket: &str) -> Vec<String> {
    let v = env.json_as("q", "", &["search", term, "--registry", ticket]);
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// Makes repository `dir` with one file and metadata, committed.
pub(crate) fn dataset(env: &TestEnv, dir: &str, title: &str, file: (&str, &[u8])) {
    env.ok("", &["init", dir]);
    env.ok(dir, &["meta", "title", title]);
    env.ok(dir, &["meta", "license", "CC-BY-4.0"]);
    env.commit_files(dir, &[file], "first");
}

#[test]
fn registries_replicate_and_resolve_names() {
    let env = TestEnv::new();
    dataset(&env, "ds", "C. elegans tracks", ("t.csv", b"worm,speed\n"));
    let origin = serve(&env, "srv", "ds");

    // Three registries: r2 and r3 know only r1; r3 learns r2 through r1.
    let r1 = registry(&env, "r1", &[]);
    let r2 = registry(&env, "r2", &["--peer", &r1.ticket]);
    let r3 = registry(&env, "r3", &["--peer", &r1.ticket]);

    // A registry ticket is not a dataset ticket, and the reverse.
    env.fails_as("q", "", &["clone", &r1.ticket], "registry ticket");
    env.fails_as(
        "q",
        "",
        &["search", "x", "--registry", &origin.ticket],
        "lodereg1",
    );

    // Only the owner may list a dataset; names are checked.
    env.ok_as("c", "", &["clone", &origin.ticket, "mine"]);
    env.fails_as(
        "c",
        "mine",
        &["publish", "worm-tracks", "--registry", &r1.ticket],
        "only the owner",
    );
    env.fails(
        "ds",
        &["publish", "Worm Tracks", "--registry", &r1.ticket],
        "invalid name",
    );

    let p = env.json("ds", &["publish", "worm-tracks", "--registry", &r1.ticket]);
    assert_eq!(p["new"], true, "{p}");
    assert_eq!(names(&env, "elegans", &r1.ticket), ["worm-tracks"]);
    for r in [&r2, &r3] {
        eventually("the entry reaches r2 and r3", || {
            names(&env, "worm", &r.ticket) == ["worm-tracks"]
        });
    }

    // Clone by name through another registry than the one it was published to.
    env.ok_as(
        "c",
        "",
        &["clone", "worm-tracks", "--registry", &r3.ticket, "byname"],
    );
    assert_eq!(env.read("byname/t.csv"), b"worm,speed\n");
    env.fails_as(
        "c",
        "",
        &["clone", "no-such", "--registry", &r3.ticket, "x"],
        "no dataset named",
    );
    // The name form of referral URIs resolves through the registries used before.
    env.ok_as("c", "", &["get", "lode://worm-tracks/t.csv", "--to", "got"]);
    assert_eq!(env.read("got/t.csv"), b"worm,speed\n");

    // r1 goes down: a dataset published at r2 still reaches r3 (r3 learned r2 from r1).
    drop(r1);
    dataset(&env, "zf", "Zebrafish larvae", ("z.csv", b"fish\n"));
    let _zf = serve(&env, "srv2", "zf");
    env.ok("zf", &["publish", "zebrafish", "--registry", &r2.ticket]);
    eventually("r3 gets the entry published at r2 while r1 is down", || {
        names(&env, "zebra", &r3.ticket) == ["zebrafish"]
    });
    // First come, first served: another dataset cannot take a listed name at r2.
    env.fails(
        "zf",
        &["publish", "worm-tracks", "--registry", &r2.ticket],
        "is taken by dataset",
    );

    // r1 restarts from its directory and catches up from its peers at once.
    let r1 = registry(&env, "r1", &[]);
    eventually("the restarted r1 catches up", || {
        names(&env, "zebra", &r1.ticket) == ["zebrafish"]
    });
    assert_eq!(names(&env, "worm", &r1.ticket), ["worm-tracks"]);

    // A restricted dataset's metadata is encrypted: by default only its name is listed.
    env.ok("", &["init", "--private", "sec"]);
    env.ok("sec", &["meta", "title", "Patient scans"]);
    env.commit_files("sec", &[("s.csv", b"secret\n")], "s");
    let _sec = serve(&env, "srv3", "sec");
    let p = env.json("sec", &["publish", "scans", "--registry", &r1.ticket]);
    assert_eq!(p["metadata"], false, "{p}");
    assert!(names(&env, "patient", &r1.ticket).is_empty());
    let found = env.json_as("q", "", &["search", "scans", "--registry", &r1.ticket]);
    assert_eq!(found[0]["title"], "", "{found}");
    env.ok(
        "sec",
        &[
            "publish",
            "scans",
            "--with-metadata",
            "--registry",
            &r1.ticket,
        ],
    );
    assert_eq!(names(&env, "patient", &r1.ticket), ["scans"]);
    // Found by name, it still needs a ticket to be read.
    env.fails_as(
        "q",
        "",
        &["clone", "scans", "--registry", &r1.ticket, "s"],
        "not authorized",
    );

    // Re-publishing (new metadata) replaces the entry everywhere.
    env.ok("ds", &["meta", "title", "C. elegans tracks, 2026"]);
    env.ok("ds", &["commit", "-m", "retitle"]);
    env.ok("ds", &["publish", "worm-tracks", "--registry", &r1.ticket]);
    eventually("the new title reaches r3", || {
        let v = env.json_as("q", "", &["search", "2026", "--registry", &r3.ticket]);
        v.as_array().unwrap().len() == 1
    });
}

#[test]
fn taint_notices_remove_data_from_following_mirrors() {
    let env = TestEnv::new();
    // Large enough to be held in chunks: the takedown must remove the chunks' bytes.
    let bad = noise(6_000_000, 131);
    env.ok("", &["init", "ds"]);
    env.commit_files("ds", &[("bad.bin", &bad), ("good.csv", b"fine\n")], "first");
    let bad_id = b3(&env.path("ds/bad.bin"));
    dataset(&env, "other", "Other", ("o.csv", b"other\n"));
    let origin = serve(&env, "srv", "ds");
    let other = serve(&env, "srv2", "other");
    let other_id = env.dataset_id("other");

    let r1 = registry(&env, "r1", &[]);
    let r2 = registry(&env, "r2", &["--peer", &r1.ticket]);

    // A storage manager mirrors both datasets, obeys r1, and serves, syncing every second.
    env.ok_as("m", "", &["mirror", "add", &origin.ticket]);
    env.ok_as("m", "", &["mirror", "add", &other.ticket]);
    env.ok_as("m", "", &["mirror", "follow", &r1.ticket]);
    // The mirror also runs the HTTP gateway.
    let (child, lines) = crate::common::peers::spawn_lines(env.cmd_as(
        "m",
        "",
        &[
            "serve",
            "-q",
            "--mirrors",
            "--follow",
            "1",
            "--http",
            "127.0.0.1:0",
        ],
    ));
    let _mirror = Registry {
        child,
        ticket: String::new(),
    };
    let mut tickets = Vec::new();
    let mut http = String::new();
    while http.is_empty() {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("serve output");
        if let Some(t) = line.strip_prefix("ticket: ") {
            tickets.push(t.to_string());
        } else if let Some(u) = line.strip_prefix("http: ") {
            http = u.trim_end_matches('/').to_string();
        }
    }
    assert_eq!(tickets.len(), 2);
    let mirror_of = |id: &str| -> String {
        tickets
            .iter()
            .find(|t| {
                let t: lode::ticket::Ticket = t.parse().unwrap();
                hex::encode(t.dataset) == id
            })
            .unwrap()
            .clone()
    };
    let ds_id = env.dataset_id("ds");
    let ds_at_mirror = mirror_of(&ds_id);
    let other_at_mirror = mirror_of(&other_id);
    env.ok_as(
        "d",
        "",
        &["get", &ds_at_mirror, "bad.bin", "--to", "before"],
    );

    // `lode registry taint FLAG ID --reason REASON --registry TICKET`, as peer `home`.
    let taint = |home: &str, flag: &str, id: &str, reason: &str, reg: &str| {
        env.cmd_as(
            home,
            "",
            &[
                "registry",
                "taint",
                flag,
                id,
                "--reason",
                reason,
                "--registry",
                reg,
            ],
        )
        .output()
        .unwrap()
    };
    let stderr = |o: std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();

    // Only the registry's operator (who holds its key) can sign its notices.
    let no_key = stderr(taint("x", "--blob", &bad_id, "spam", &r1.ticket));
    assert!(no_key.contains("no registry key"), "{no_key}");
    let other_key = stderr(taint("r2", "--blob", &bad_id, "spam", &r1.ticket));
    assert!(
        other_key.contains("only its operator can taint"),
        "{other_key}"
    );

    // r2's operator taints the blob: r2 forwards its notice to r1, which lists it (signed by
    // a peer). The mirror follows r1, not r2: for it the notice is forged, and it ignores it.
    assert!(taint("r2", "--blob", &bad_id, "not ours", &r2.ticket)
        .status
        .success());
    eventually("r1 lists r2's notice", || {
        let v = env.json_as("q", "", &["registry", "notices", "--registry", &r1.ticket]);
        v.as_array().unwrap().len() == 1 && v[0]["by_this_registry"] == false
    });
    let ignored = env.path("m/mirrors/ignored");
    eventually("the mirror sees and ignores r2's notice", || {
        std::fs::read_dir(&ignored).is_ok_and(|d| d.count() == 1)
    });
    env.ok_as("d", "", &["get", &ds_at_mirror, "bad.bin", "--to", "still"]);
    assert_eq!(env.read("still/bad.bin"), bad);

    // r1's operator takes down the blob and the other dataset: within a sync round the
    // mirror deletes them and stops serving them; the rest stays served.
    for (flag, id, reason) in [
        ("--blob", bad_id.as_str(), "court order 2026-117"),
        ("--dataset", other_id.as_str(), "illegal content"),
    ] {
        assert!(taint("r1", flag, id, reason, &r1.ticket).status.success());
    }
    let mirror_obj = env.object(&format!("m/mirrors/{ds_id}"), &bad_id);
    let mirror_link = format!("{}.chunks", mirror_obj.display());
    let objects_bytes = || -> u64 {
        let dir = env.path(&format!("m/mirrors/{ds_id}/.lode/objects"));
        fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .flat_map(|d| fs::read_dir(d.path()).unwrap().flatten())
            .map(|f| f.metadata().unwrap().len())
            .sum()
    };
    assert!(objects_bytes() > 6_000_000, "the mirror held bad.bin");
    eventually("the mirror obeys r1's notices", || {
        !env.holds(&format!("m/mirrors/{ds_id}"), &bad_id)
            && !mirror_obj.exists()
            && !std::path::Path::new(&mirror_link).exists()
            && !env.path(&format!("m/mirrors/{other_id}")).exists()
    });
    // The bytes went, not just the name: what is left is the small file, trees, commits.
    let left = objects_bytes();
    assert!(left < 100_000, "{left} bytes left in the mirror's store");
    // From the mirror alone (`--no-share`): the origin still publishes the file, and a get in
    // the dataset's swarm would find it there.
    eventually("the mirror stops serving the tainted data", || {
        !env.cmd_as(
            "d",
            "",
            &[
                "get",
                "--no-share",
                &ds_at_mirror,
                "bad.bin",
                "--to",
                "after",
            ],
        )
        .output()
        .unwrap()
        .status
        .success()
    });
    env.fails_as("d", "", &["clone", &other_at_mirror, "o"], "not authorized");
    // Over HTTP: the taken-down file answers 451, the rest is still served.
    let status = |path: &str| -> String {
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "%{http_code}", "--max-time", "20"])
            .arg(format!("{http}/d/{ds_id}/{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let got = status("bad.bin");
    assert!(got.ends_with("451"), "{got:?}");
    assert!(got.contains("taken down"), "{got:?}");
    assert_eq!(status("good.csv"), "fine\n200");
    assert!(status("").ends_with("200"));
    env.ok_as(
        "d",
        "",
        &["get", &ds_at_mirror, "good.csv", "--to", "after2"],
    );
    assert_eq!(env.read("after2/good.csv"), b"fine\n");
    // The mirror keeps the notices it obeyed; what it still holds verifies, and it refuses
    // to mirror the taken-down dataset again.
    env.ok_as("m", &format!("m/mirrors/{ds_id}"), &["verify"]);
    env.fails_as("m", "", &["mirror", "add", &other_at_mirror], "taken down");
    let listed = env.json_as("q", "", &["registry", "notices", "--registry", &r1.ticket]);
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");

    // The mirror now follows r2 as well: r2's notices bind it too, even those it first saw
    // (and ignored) through r1, which lists its peers' notices.
    let good_id = b3(&env.path("ds/good.csv"));
    assert!(taint("r2", "--blob", &good_id, "r2 says so", &r2.ticket)
        .status
        .success());
    env.ok_as("m", "", &["mirror", "follow", &r2.ticket]);
    let listed = env.ok_as("m", "", &["mirror", "list"]);
    assert_eq!(
        listed.matches("obeys the taint notices").count(),
        2,
        "{listed}"
    );
    eventually("the mirror obeys the second registry it follows", || {
        !env.holds(&format!("m/mirrors/{ds_id}"), &good_id)
    });
    // Unfollowing by id prefix; what was deleted stays deleted.
    let r2_key = hex::encode(
        r2.ticket
            .parse::<lode::ticket::RegistryTicket>()
            .unwrap()
            .key(),
    );
    env.ok_as("m", "", &["mirror", "unfollow", &r2_key[..10]]);
    env.fails_as(
        "m",
        "",
        &["mirror", "unfollow", &r2_key[..10]],
        "no followed registry",
    );
    let listed = env.ok_as("m", "", &["mirror", "list"]);
    assert_eq!(
        listed.matches("obeys the taint notices").count(),
        1,
        "{listed}"
    );
    assert!(!env.holds(&format!("m/mirrors/{ds_id}"), &good_id));
    drop((origin, other, r2));
}

#[test]
fn a_damaged_registry_file_is_named_and_bad_tickets_are_refused() {
    let env = TestEnv::new();
    // A registry directory with a damaged entry: the registry refuses to start and names it.
    let dir = env.path("r/registry/entries");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0".repeat(64)), b"not an entry").unwrap();
    let err = env.fails_as("r", "", &["registry", "serve"], "is damaged");
    assert!(err.contains(&"0".repeat(64)), "{err}");
    // An entry of an older version (2, before entries carried the copies asked) is left for
    // its owner to publish again: the registry starts without it.
    let old_dir = env.path("r2/registry/entries");
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::write(old_dir.join("1".repeat(64)), b"\x02an entry of version 2").unwrap();
    let r2 = registry(&env, "r2", &[]);
    assert!(names(&env, "", &r2.ticket).is_empty());
    // Malformed registry tickets are refused before anything is sent.
    env.fails_as(
        "q",
        "",
        &["search", "x", "--registry", "lodereg1!!!"],
        "invalid ticket",
    );
    env.fails_as(
        "q",
        "",
        &["registry", "notices", "--registry", "nope"],
        "lodereg1",
    );
}

/// Loopback network options for the library calls that play the attacker.
pub(crate) fn loopback() -> lode::net::endpoint::NetOptions {
    lode::net::endpoint::NetOptions {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        relay: lode::net::endpoint::Relay::Disabled,
        discovery: false,
        ..Default::default()
    }
}

pub(crate) fn fresh_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
}

/// A provider nobody serves at (entries only need one to be listed).
fn nowhere() -> lode::ticket::Provider {
    lode::ticket::Provider {
        id: fresh_key().verifying_key().to_bytes(),
        addrs: vec!["127.0.0.1:9".parse().unwrap()],
        relay: None,
    }
}

/// An entry for a new throwaway dataset named `name`, signed by it and by `publisher`
/// (a throwaway key too when `None`).
fn throwaway(
    name: &str,
    title: &str,
    publisher: Option<&ed25519_dalek::SigningKey>,
) -> lode::catalog::Entry {
    let ds = fresh_key();
    let own = fresh_key();
    let body = lode::catalog::EntryBody {
        version: lode::catalog::ENTRY_VERSION,
        dataset: ds.verifying_key().to_bytes(),
        seq: 1,
        name: name.into(),
        title: title.into(),
        description: format!("{title} {title}"),
        license: String::new(),
        keywords: vec![title.into()],
        providers: vec![nowhere()],
        time: 1,
        copies: 0,
        publisher: [0; 32],
        publisher_sig: vec![],
    };
    lode::catalog::Entry::sign(body, &ds, publisher.unwrap_or(&own)).unwrap()
}

/// Sends signed entries to registry `ticket` as the attacker does (one endpoint, one request
/// each); returns each answer.
fn flood(ticket: &str, entries: &[lode::catalog::Entry]) -> Vec<Result<bool, String>> {
    let reg: lode::ticket::RegistryTicket = ticket.parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(lode::net::registry::publish_signed(
        &reg,
        entries,
        &loopback(),
    ))
    .expect("reach the registry")
    .into_iter()
    .map(|r| r.map_err(|e| e.to_string()))
    .collect()
}

/// A ticket of repository `dir`'s dataset naming a provider nobody serves at (so that
/// `lode publish` needs no running `lode serve`).
fn fake_ticket(env: &TestEnv, dir: &str) -> String {
    let mut id = [0u8; 32];
    hex::decode_to_slice(env.dataset_id(dir), &mut id).unwrap();
    lode::ticket::Ticket {
        dataset: id,
        providers: vec![nowhere()],
    }
    .to_string()
}

/// Makes repository `dir` titled `title` as peer "home" and lists it at `reg` as `name`.
fn publish(env: &TestEnv, dir: &str, name: &str, reg: &str) -> std::process::Output {
    if !env.path(dir).exists() {
        dataset(env, dir, name, ("f.csv", dir.as_bytes()));
    }
    let t = fake_ticket(env, dir);
    env.cmd(dir, &["publish", name, "--provider", &t, "--registry", reg])
        .output()
        .unwrap()
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn a_flood_of_throwaway_entries_does_not_crowd_out_the_real_dataset() {
    let env = TestEnv::new();
    let r = registry(&env, "r1", &[]);
    dataset(&env, "ds", "C. elegans tracks", ("t.csv", b"worm,speed\n"));
    let o = publish(&env, "ds", "worm-tracks", &r.ticket);
    assert!(o.status.success(), "{}", stderr_of(&o));
    // 250 entries signed by throwaway keys (dataset and publisher), named to sort before the
    // real one and stuffed with its name in every field.
    let spam: Vec<_> = (0..250)
        .map(|i| throwaway(&format!("a{i:03}-worm-tracks"), "worm-tracks", None))
        .collect();
    let started = Instant::now();
    let answers = flood(&r.ticket, &spam);
    eprintln!(
        "published {} throwaway entries in {:.2}s",
        spam.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(answers.iter().all(|a| a == &Ok(true)), "{answers:?}");
    // The exact name ranks first, and results stay bounded.
    let found = names(&env, "worm-tracks", &r.ticket);
    assert_eq!(found[0], "worm-tracks", "{found:?}");
    assert!(found.len() <= 200, "{}", found.len());
    let text = env.ok_as("q", "", &["search", "worm-tracks", "--registry", &r.ticket]);
    assert!(text.starts_with("worm-tracks  "), "{text}");
    // A word of the real title ranks it above entries that only mention it elsewhere.
    assert_eq!(names(&env, "elegans", &r.ticket)[0], "worm-tracks");
}

#[test]
fn registries_bound_entries_per_publisher_and_per_peer() {
    let env = TestEnv::new();
    let r = registry(
        &env,
        "r1",
        &["--max-per-publisher", "2", "--max-per-peer", "3"],
    );
    // One publisher (peer "home") lists two datasets; the third is refused, clearly.
    for (dir, name) in [("a", "alpha"), ("b", "beta")] {
        let o = publish(&env, dir, name, &r.ticket);
        assert!(o.status.success(), "{}", stderr_of(&o));
    }
    let o = publish(&env, "c", "gamma", &r.ticket);
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(err.contains("limit per publisher"), "{err}");
    assert!(err.contains("--max-per-publisher"), "{err}");
    assert_error_line(&err);
    assert!(names(&env, "gamma", &r.ticket).is_empty());
    // Re-listing a dataset already listed is not an extra entry.
    let o = publish(&env, "a", "alpha", &r.ticket);
    assert!(o.status.success(), "{}", stderr_of(&o));

    // One peer (one endpoint) with throwaway publishers: three entries, then refused.
    let spam: Vec<_> = (0..5)
        .map(|i| throwaway(&format!("spam{i}"), "spam", None))
        .collect();
    let answers = flood(&r.ticket, &spam);
    assert_eq!(
        answers.iter().filter(|a| a == &&Ok(true)).count(),
        3,
        "{answers:?}"
    );
    for e in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert!(e.contains("limit per peer"), "{e}");
    }
    assert_eq!(names(&env, "spam", &r.ticket).len(), 3);
    // Nothing else changed: the publisher's two datasets are still listed.
    assert_eq!(names(&env, "alpha", &r.ticket), ["alpha"]);
    assert_eq!(names(&env, "beta", &r.ticket), ["beta"]);
    assert_eq!(names(&env, "", &r.ticket).len(), 5);

    // A peer registry brings at most --max-per-peer entries, round after round.
    let r2 = registry(&env, "r2", &["--peer", &r.ticket, "--max-per-peer", "4"]);
    eventually("r2 takes four entries from r1", || {
        names(&env, "", &r2.ticket).len() == 4
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(names(&env, "", &r2.ticket).len(), 4);
}

#[test]
fn a_curated_registry_lists_only_approved_publishers_and_its_replicas_agree() {
    let env = TestEnv::new();
    let rc = registry(&env, "rc", &["--curated"]);
    // A replica that honours rc's approvals, and an open registry.
    let rr = registry(
        &env,
        "rr",
        &["--peer", &rc.ticket, "--curated-by", &rc.ticket],
    );

    // Not approved: refused, with what to do; nothing is listed.
    let o = publish(&env, "ds", "worm-tracks", &rc.ticket);
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(
        err.contains("curated") && err.contains("lode registry approve"),
        "{err}"
    );
    assert_error_line(&err);
    assert!(names(&env, "worm", &rc.ticket).is_empty());
    // Throwaway publishers are refused too.
    let answers = flood(&rc.ticket, &[throwaway("spam", "worm-tracks", None)]);
    assert!(
        answers[0]
            .as_ref()
            .is_err_and(|e| e.contains("not approved")),
        "{answers:?}"
    );

    // Only the operator (who holds the registry key) approves.
    let card = env.ok(".", &["id", "--card"]).trim().to_string();
    env.fails_as(
        "x",
        "",
        &["registry", "approve", &card, "--registry", &rc.ticket],
        "no registry key",
    );
    env.fails_as(
        "rr",
        "",
        &["registry", "approve", &card, "--registry", &rc.ticket],
        "only its operator can approve",
    );
    let out = env.ok_as(
        "rc",
        "",
        &[
            "registry",
            "approve",
            &card,
            "--note",
            "Lee lab",
            "--registry",
            &rc.ticket,
        ],
    );
    assert!(out.contains("approved publisher"), "{out}");
    let o = publish(&env, "ds", "worm-tracks", &rc.ticket);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(names(&env, "worm", &rc.ticket), ["worm-tracks"]);
    // The approval and the entry replicate; the replica honours the approval.
    eventually("the replica lists the approved entry", || {
        names(&env, "worm", &rr.ticket) == ["worm-tracks"]
    });
    let listed = env.json_as(
        "q",
        "",
        &["registry", "approvals", "--registry", &rr.ticket],
    );
    assert_eq!(listed[0]["by_this_registry"], false, "{listed}");
    assert_eq!(listed[0]["note"], "Lee lab", "{listed}");
    // Publishing at the replica directly is curated as well: a throwaway is refused there.
    let answers = flood(&rr.ticket, &[throwaway("spam", "worm-tracks", None)]);
    assert!(answers[0].is_err(), "{answers:?}");

    // Withdrawn: the publisher's entries are no longer listed, here and at the replica.
    let id = env.ok(".", &["id"]).lines().next().unwrap().to_string();
    env.ok_as(
        "rc",
        "",
        &[
            "registry",
            "approve",
            &id,
            "--revoke",
            "--registry",
            &rc.ticket,
        ],
    );
    assert!(names(&env, "worm", &rc.ticket).is_empty());
    eventually("the replica drops the withdrawn publisher", || {
        names(&env, "worm", &rr.ticket).is_empty()
    });
}

/// True when `bytes` hold something a terminal acts on: ESC, BEL, CSI (C1) or another C0
/// control but newline and tab.
fn has_terminal_control(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}')
}

#[test]
fn escape_sequences_from_peers_never_reach_the_terminal() {
    let env = TestEnv::new();
    let clear = "\x1b[2J\x1b[H";
    let retitle = "\x1b]0;pwned\x07";
    let csi8 = "\u{9b}31m";
    let title = format!("Worms{clear}{retitle}");
    let message = format!("fix{clear}{retitle}\r\nsecond {csi8} line\u{202e}");
    let file = format!("a{clear}.csv");
    // A hostile peer writes sequences into its title, description, keyword, a file name and
    // a commit message.
    env.ok("", &["init", "ev"]);
    env.ok("ev", &["meta", "title", &title]);
    env.ok("ev", &["meta", "description", &format!("desc {csi8}")]);
    env.ok("ev", &["meta", "keywords", &format!("k{retitle}")]);
    env.commit_files("ev", &[(file.as_str(), b"x\n")], &message);
    let origin = serve(&env, "srv", "ev");
    let r = registry(&env, "r1", &[]);
    env.ok("ev", &["publish", "worms", "--registry", &r.ticket]);

    // The victim clones it and looks at it: no output carries the sequences raw.
    env.ok_as("v", "", &["clone", &origin.ticket, "got"]);
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("got", vec!["log"]),
        ("got", vec!["show"]),
        ("got", vec!["meta"]),
        ("got", vec!["ls"]),
        ("got", vec!["status"]),
        ("", vec!["search", "worms", "--registry", &r.ticket]),
        ("", vec!["search", "desc", "--registry", &r.ticket]),
    ];
    for (cwd, args) in &runs {
        let o = env.cmd_as("v", cwd, args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr_of(&o));
        assert!(
            !has_terminal_control(&o.stdout) && !has_terminal_control(&o.stderr),
            "{args:?} printed a raw control: {:?} {:?}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // They are shown escaped, visibly.
    let log = env.ok_as("v", "got", &["log"]);
    assert!(log.contains("fix\\u{1b}[2J"), "{log}");
    let found = env.ok_as("v", "", &["search", "worms", "--registry", &r.ticket]);
    assert!(found.contains("Worms\\u{1b}[2J"), "{found}");
    // JSON output stays exact (serde escapes controls itself).
    let v = env.json_as("v", "got", &["log"]);
    assert_eq!(v[0]["message"], message.as_str(), "{v}");
    let v = env.json_as("v", "", &["search", "worms", "--registry", &r.ticket]);
    assert_eq!(v[0]["title"], title.as_str(), "{v}");
}
