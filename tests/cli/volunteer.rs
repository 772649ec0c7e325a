//! Volunteering storage managers on real processes over 127.0.0.1: two storage managers
//! volunteer for a subject at a registry, adopt the datasets published there that match and
//! fit, serve them with the origin gone, and `lode copies` counts them (at a replica too);
//! forged offers and holding records are refused.

use std::collections::BTreeSet;

use crate::common::peers::{device_id, serve_args, spawn_lines, Server};
use crate::common::*;
use crate::registry::{dataset, eventually, fresh_key, loopback, registry};

/// The dataset ids storage manager `home` mirrors (none while its list cannot be read).
fn mirrored(env: &TestEnv, home: &str) -> BTreeSet<String> {
    let out = (env.cmd_as(home, "", &["mirror", "list", "--json"]).output()).expect("run lode");
    if !out.status.success() {
        return BTreeSet::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (v.as_array().into_iter().flatten())
        .filter(|m| m["seq"].is_u64())
        .map(|m| m["dataset"].as_str().unwrap().to_string())
        .collect()
}

/// `lode copies NAME --json` at registry `reg`, as peer "q".
fn copies(env: &TestEnv, name: &str, reg: &str) -> serde_json::Value {
    let v = env.json_as("q", "", &["copies", name, "--registry", reg]);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    v[0].clone()
}

/// `lode mirror volunteer --registry REG --subject elegans EXTRA --json` as peer `home`.
fn volunteer(env: &TestEnv, home: &str, reg: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "mirror",
        "volunteer",
        "--registry",
        reg,
        "--subject",
        "elegans",
    ];
    args.extend_from_slice(extra);
    env.json_as(home, "", &args)
}

#[test]
fn volunteers_adopt_what_matches_and_serve_it_when_the_origin_is_gone() {
    let env = TestEnv::new();
    let reg = registry(&env, "r", &[]);
    // A replica: offers and holding records replicate like entries.
    let replica = registry(&env, "r2", &["--peer", &reg.ticket]);
    // Four datasets: three about C. elegans (one of them 2 MB), one about zebrafish.
    dataset(
        &env,
        "worms",
        "C. elegans tracks",
        ("t.csv", b"worm,speed\n"),
    );
    dataset(&env, "neurons", "Neurons", ("n.csv", b"cell,type\n"));
    env.ok("neurons", &["meta", "keywords", "elegans, connectome"]);
    env.commit_files("neurons", &[("m.csv", b"x\n")], "keywords");
    let big = noise(2_000_000, 7);
    dataset(&env, "big", "Elegans imaging", ("video.bin", &big));
    dataset(&env, "zf", "Zebrafish larvae", ("z.csv", b"fish\n"));
    let ids: Vec<String> = ["worms", "neurons", "big", "zf"]
        .iter()
        .map(|d| env.dataset_id(d))
        .collect();
    let (origin, _) = serve_args(&env, "srv", "", &["worms", "neurons", "big", "zf"], 4);

    // Two storage managers volunteer for "elegans": m1 takes nothing over 1 MiB.
    let v = volunteer(
        &env,
        "m1",
        &reg.ticket,
        &["--quota", "20M", "--max-dataset", "1M"],
    );
    assert_eq!(v["max_dataset"], 1 << 20, "{v}");
    volunteer(&env, "m2", &reg.ticket, &["--quota", "50M"]);
    // They start with nothing to serve, and serve what they adopt.
    let managers: Vec<Server> = ["m1", "m2"]
        .iter()
        .map(|m| {
            let args = ["serve", "-q", "--mirrors", "--follow", "1"];
            let (child, _lines) = spawn_lines(env.cmd_as(m, "", &args));
            Server {
                child,
                ticket: String::new(),
            }
        })
        .collect();

    for (dir, name) in [
        ("worms", "worm-tracks"),
        ("neurons", "worm-neurons"),
        ("big", "worm-imaging"),
        ("zf", "zebrafish"),
    ] {
        env.ok(dir, &["publish", name, "--registry", &reg.ticket]);
    }
    let want = |of: &[usize]| -> BTreeSet<String> { of.iter().map(|i| ids[*i].clone()).collect() };
    eventually("m1 adopts the two small elegans datasets", || {
        mirrored(&env, "m1") == want(&[0, 1])
    });
    eventually("m2 adopts the three elegans datasets", || {
        mirrored(&env, "m2") == want(&[0, 1, 2])
    });

    // The registry counts the copies its volunteers claim, per head.
    let (d1, d2) = (device_id(&env, "m1"), device_id(&env, "m2"));
    eventually("both holding records reach the registry", || {
        copies(&env, "worm-tracks", &reg.ticket)["copies"] == 2
    });
    let c = copies(&env, "worm-tracks", &reg.ticket);
    let holders: BTreeSet<&str> = (c["heads"][0]["holders"].as_array().unwrap().iter())
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(holders, BTreeSet::from([d1.as_str(), d2.as_str()]), "{c}");
    assert_eq!(c["heads"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(copies(&env, "zebrafish", &reg.ticket)["copies"], 0);
    eventually("m2's copy of the big dataset is counted", || {
        copies(&env, &ids[2], &reg.ticket)["copies"] == 1
    });
    let c = copies(&env, "worm-imaging", &reg.ticket);
    assert_eq!(c["heads"][0]["holders"][0], d2.as_str(), "{c}");
    eventually("the replica counts the same copies", || {
        copies(&env, "worm-tracks", &replica.ticket)["copies"] == 2
            && copies(&env, "worm-imaging", &replica.ticket)["copies"] == 1
    });
    let all = env.json_as("q", "", &["copies", "--registry", &reg.ticket]);
    assert_eq!(all.as_array().unwrap().len(), 4, "{all}");

    // Once both storage managers say where they serve it, the ticket `copies` gives
    // clones it with the origin gone.
    eventually(
        "the holding records name where the copies are served",
        || {
            let t: lode::ticket::Ticket = copies(&env, "worm-tracks", &reg.ticket)["ticket"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            t.providers.len() == 3
        },
    );
    let ticket = copies(&env, "worm-tracks", &reg.ticket)["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    drop(origin);
    env.ok_as("c", "", &["clone", &ticket, "copy"]);
    assert_eq!(env.read("copy/t.csv"), b"worm,speed\n");
    env.ok_as("c", "copy", &["verify"]);
    let big_ticket = copies(&env, "worm-imaging", &reg.ticket)["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok_as("c", "", &["clone", &big_ticket, "bigcopy"]);
    assert_eq!(env.read("bigcopy/video.bin"), big);
    // Many follow rounds later, neither adopted more than it matched and fitted.
    assert_eq!(mirrored(&env, "m1"), want(&[0, 1]));
    assert_eq!(mirrored(&env, "m2"), want(&[0, 1, 2]));
    drop(managers);
}

/// Sends an encoded offer to registry `ticket`; returns its answer.
fn send_offer(ticket: &str, offer: Vec<u8>) -> Result<bool, String> {
    let reg: lode::ticket::RegistryTicket = ticket.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(lode::net::registry::volunteer_raw(&reg, offer, &loopback()))
        .map_err(|e| e.to_string())
}

/// Sends encoded holding records to registry `ticket`; returns its answer.
fn send_holdings(ticket: &str, records: Vec<Vec<u8>>) -> Result<u64, String> {
    let reg: lode::ticket::RegistryTicket = ticket.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(lode::net::registry::hold_raw(&reg, records, &loopback()))
        .map_err(|e| e.to_string())
}

/// Flips one bit of an encoded signed object's signature (its last 64 bytes).
fn forged(mut bytes: Vec<u8>) -> Vec<u8> {
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    bytes
}

#[test]
fn a_registry_refuses_forged_offers_and_holding_records() {
    use lode::catalog::{Holding, HoldingBody, Volunteer, VolunteerBody};
    let env = TestEnv::new();
    let reg = registry(&env, "r", &[]);
    let device = fresh_key();
    let offer = Volunteer::sign(
        VolunteerBody {
            version: 0,
            device: [0; 32],
            subjects: vec!["elegans".into()],
            all: false,
            quota: None,
            max_dataset: None,
            provider: None,
            time: 1,
        },
        &device,
    )
    .unwrap();
    let record = |dataset: u8, key: &ed25519_dalek::SigningKey| {
        Holding::sign(
            HoldingBody {
                version: 0,
                device: [0; 32],
                dataset: [dataset; 32],
                seq: 3,
                commit: [9; 32],
                provider: None,
                time: 1,
            },
            key,
        )
        .unwrap()
        .encode()
    };
    // A forged offer is refused, and so are records of a device that did not volunteer.
    let e = send_offer(&reg.ticket, forged(offer.encode())).unwrap_err();
    assert!(e.contains("signature"), "{e}");
    let e = send_holdings(&reg.ticket, vec![record(1, &device)]).unwrap_err();
    assert!(e.contains("has not volunteered"), "{e}");
    assert_eq!(send_offer(&reg.ticket, offer.encode()), Ok(true));
    assert_eq!(send_offer(&reg.ticket, offer.encode()), Ok(false));
    // A forged record is refused (and the whole batch with it); a genuine one is kept.
    let e = send_holdings(
        &reg.ticket,
        vec![record(1, &device), forged(record(2, &device))],
    )
    .unwrap_err();
    assert!(e.contains("signature"), "{e}");
    assert_eq!(send_holdings(&reg.ticket, vec![record(1, &device)]), Ok(1));
    let reg_t: lode::ticket::RegistryTicket = reg.ticket.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt
        .block_on(lode::net::registry::holdings(&reg_t, None, &loopback()))
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].body.dataset, [1; 32]);
    assert_eq!(held[0].body.device, device.verifying_key().to_bytes());
}

#[test]
fn a_volunteer_adopts_only_public_datasets_of_its_subject_at_one_sync() {
    let env = TestEnv::new();
    let reg = registry(&env, "r", &[]);
    dataset(&env, "pub", "C. elegans tracks", ("t.csv", b"worm\n"));
    env.ok("", &["init", "--private", "secret"]);
    env.commit_files("secret", &[("s.csv", b"hidden\n")], "first");
    dataset(&env, "zf", "Zebrafish larvae", ("z.csv", b"fish\n"));
    let (_origin, _) = serve_args(&env, "srv", "", &["pub", "secret", "zf"], 3);
    env.ok(
        "pub",
        &["publish", "worm-tracks", "--registry", &reg.ticket],
    );
    // Its name matches the subject, but it is restricted: adopting it needs a relay ticket.
    env.ok(
        "secret",
        &["publish", "elegans-secret", "--registry", &reg.ticket],
    );
    env.ok("zf", &["publish", "zebrafish", "--registry", &reg.ticket]);
    volunteer(&env, "m", &reg.ticket, &[]);
    let listed = env.ok_as("m", "", &["mirror", "list"]);
    assert!(listed.contains("volunteers at registry"), "{listed}");
    assert!(listed.contains("elegans"), "{listed}");
    // One round by hand (what `serve --mirrors --follow` runs) adopts and reports.
    let r = env.json_as("m", "", &["mirror", "sync"]);
    let adopted: Vec<&str> = (r["adopted"].as_array().unwrap().iter())
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(adopted, ["worm-tracks"], "{r}");
    assert_eq!(mirrored(&env, "m"), BTreeSet::from([env.dataset_id("pub")]));
    let c = copies(&env, "worm-tracks", &reg.ticket);
    assert_eq!(c["copies"], 1, "{c}");
    assert_eq!(c["heads"][0]["holders"][0], device_id(&env, "m").as_str());
    assert_eq!(copies(&env, "elegans-secret", &reg.ticket)["copies"], 0);
    // The next round adopts nothing more and reports nothing new.
    let r = env.json_as("m", "", &["mirror", "sync"]);
    assert_eq!(r["adopted"].as_array().unwrap().len(), 0, "{r}");
}

/// `lode publish NAME --registry REG EXTRA` in `dir`; returns its stderr (it must succeed).
fn publish_notes(env: &TestEnv, dir: &str, name: &str, reg: &str, extra: &[&str]) -> String {
    let mut args = vec!["publish", name, "--registry", reg];
    args.extend_from_slice(extra);
    let out = env.cmd(dir, &args).output().expect("run lode");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "lode {args:?}: {err}");
    err
}

#[test]
fn publish_copies_says_when_too_few_volunteer_and_stops_adoption_at_enough() {
    let env = TestEnv::new();
    let reg = registry(&env, "r", &[]);
    dataset(&env, "worms", "C. elegans tracks", ("t.csv", b"worm\n"));
    let (_origin, _) = serve_args(&env, "srv", "", &["worms"], 1);
    // Two storage managers volunteer for its subject; a third takes nothing over 1 byte.
    volunteer(&env, "m1", &reg.ticket, &[]);
    volunteer(&env, "m2", &reg.ticket, &[]);
    volunteer(&env, "m3", &reg.ticket, &["--max-dataset", "1"]);

    // Three copies asked, two volunteers that fit: the publisher is told it cannot be had.
    let err = publish_notes(
        &env,
        "worms",
        "worm-tracks",
        &reg.ticket,
        &["--copies", "3"],
    );
    assert!(
        err.contains("2 storage managers volunteer for this dataset; 3 copies asked")
            && err.contains("cannot be reached")
            && err.contains("1 more volunteer(s) for its subject but take nothing of 5 bytes")
            && err.contains("lode mirror volunteer"),
        "{err}"
    );
    let v = env.json(
        "worms",
        &[
            "publish",
            "worm-tracks",
            "--registry",
            &reg.ticket,
            "--copies",
            "3",
        ],
    );
    assert_eq!(v["copies"]["wanted"], 3, "{v}");
    assert_eq!(v["copies"]["volunteers"], 2, "{v}");
    assert_eq!(v["copies"]["too_small"], 1, "{v}");
    assert_eq!(v["copies"]["holding"], 0, "{v}");
    assert_eq!(copies(&env, "worm-tracks", &reg.ticket)["wanted"], 3);

    // One copy asked: the first volunteer adopts it, the second sees it held and does not.
    let err = publish_notes(
        &env,
        "worms",
        "worm-tracks",
        &reg.ticket,
        &["--copies", "1"],
    );
    assert!(!err.contains("cannot be reached"), "{err}");
    let r = env.json_as("m1", "", &["mirror", "sync"]);
    assert_eq!(r["adopted"].as_array().unwrap().len(), 1, "{r}");
    let r = env.json_as("m2", "", &["mirror", "sync"]);
    assert_eq!(r["adopted"].as_array().unwrap().len(), 0, "{r}");
    assert!(mirrored(&env, "m2").is_empty());
    let c = copies(&env, "worm-tracks", &reg.ticket);
    assert_eq!(
        (c["copies"].clone(), c["wanted"].clone()),
        (1.into(), 1.into()),
        "{c}"
    );
    // Publishing again without --copies keeps the number asked, now reached.
    let v = env.json(
        "worms",
        &["publish", "worm-tracks", "--registry", &reg.ticket],
    );
    assert_eq!(v["copies"]["wanted"], 1, "{v}");
    assert_eq!(v["copies"]["holding"], 1, "{v}");
}

/// `lode serve -q --mirrors EXTRA` as storage manager `home`, once it prints what it serves.
fn serve_mirrors(env: &TestEnv, home: &str, extra: &[&str]) -> Server {
    let mut args = vec!["serve", "-q", "--mirrors"];
    args.extend_from_slice(extra);
    let (child, _lines) = spawn_lines(env.cmd_as(home, "", &args));
    Server {
        child,
        ticket: String::new(),
    }
}

/// The providers of the ticket `lode copies` gives for `name` at `reg`.
fn copy_providers(env: &TestEnv, name: &str, reg: &str) -> usize {
    let t: lode::ticket::Ticket = copies(env, name, reg)["ticket"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    t.providers.len()
}

#[test]
fn a_storage_manager_that_deleted_its_copy_fails_a_challenge_and_loses_its_record() {
    let env = TestEnv::new();
    // r1 never challenges (only `copies --check` does there); r2 challenges every second.
    let r1 = registry(&env, "r1", &["--challenge", "0"]);
    let r2 = registry(&env, "r2", &["--challenge", "1"]);
    let data = noise(100_000, 5);
    dataset(&env, "worms", "C. elegans tracks", ("t.bin", &data));
    let id = b3(&env.path("worms/t.bin"));
    let (_origin, _) = serve_args(&env, "srv", "", &["worms"], 1);
    for r in [&r1, &r2] {
        env.ok(
            "worms",
            &["publish", "worm-tracks", "--registry", &r.ticket],
        );
        volunteer(&env, "m", &r.ticket, &[]);
    }
    let manager = serve_mirrors(&env, "m", &["--follow", "1"]);
    eventually("both registries know where m serves its copy", || {
        copy_providers(&env, "worm-tracks", &r1.ticket) == 2
            && copy_providers(&env, "worm-tracks", &r2.ticket) == 2
    });
    // Anyone can check a copy: a random range of the file, verified against its id.
    let c = env.json_as(
        "q",
        "",
        &["copies", "worm-tracks", "--registry", &r1.ticket, "--check"],
    );
    let v = &c[0]["checks"][0];
    assert_eq!(v["ok"], true, "{c}");
    assert_eq!(v["object"], id.as_str(), "{c}");
    assert_eq!(v["device"], device_id(&env, "m").as_str(), "{c}");
    let (a, b) = (
        v["range"][0].as_u64().unwrap(),
        v["range"][1].as_u64().unwrap(),
    );
    assert!(a % (16 << 10) == 0 && b > a && b - a <= 16 << 10, "{c}");

    // m deletes its copy of the file and serves on (not following: nothing fetches it back).
    drop(manager);
    let mirror = format!("m/mirrors/{}", env.dataset_id("worms"));
    let gone: lode::ObjectId = id.parse().unwrap();
    env.store(&mirror).remove(&gone).unwrap();
    assert!(env.object_bytes(&mirror, &id).is_none());
    let _manager = serve_mirrors(&env, "m", &[]);
    eventually("a check finds the copy gone", || {
        let c = env.json_as(
            "q",
            "",
            &["copies", "worm-tracks", "--registry", &r1.ticket, "--check"],
        );
        let v = &c[0]["checks"][0];
        v["ok"] == false && v["error"].as_str().unwrap().contains("did not serve bytes")
    });
    // The registry that challenges drops its holding record; the other only counts claims.
    eventually("r2 drops the record of the deleted copy", || {
        copies(&env, "worm-tracks", &r2.ticket)["copies"] == 0
    });
    assert_eq!(copies(&env, "worm-tracks", &r1.ticket)["copies"], 1);
}

#[test]
fn an_adopted_dataset_its_registry_taints_is_deleted_and_not_adopted_again() {
    let env = TestEnv::new();
    let reg = registry(&env, "r", &[]);
    dataset(&env, "worms", "C. elegans tracks", ("t.csv", b"worm\n"));
    let id = env.dataset_id("worms");
    let (_origin, _) = serve_args(&env, "srv", "", &["worms"], 1);
    env.ok(
        "worms",
        &["publish", "worm-tracks", "--registry", &reg.ticket],
    );
    // Volunteering at a registry follows its notices.
    volunteer(&env, "m", &reg.ticket, &[]);
    env.json_as("m", "", &["mirror", "sync"]);
    assert_eq!(mirrored(&env, "m"), BTreeSet::from([id.clone()]));
    // The registry's operator takes the dataset down.
    env.ok_as(
        "r",
        "",
        &[
            "registry",
            "taint",
            "--dataset",
            &id,
            "--reason",
            "illegal content",
            "--registry",
            &reg.ticket,
        ],
    );
    let r = env.json_as("m", "", &["mirror", "sync"]);
    let notices = r["notices"].as_array().unwrap();
    assert!(notices.len() == 1 && notices[0]["obeyed"] == true, "{r}");
    assert!(mirrored(&env, "m").is_empty(), "{r}");
    assert!(!env.path(&format!("m/mirrors/{id}")).exists());
    // The registry no longer lists it, so the next round does not adopt it again.
    let r = env.json_as("m", "", &["mirror", "sync"]);
    assert_eq!(r["adopted"].as_array().unwrap().len(), 0, "{r}");
    assert!(mirrored(&env, "m").is_empty());
}

#[test]
fn a_peer_of_the_previous_registry_protocol_is_told_to_upgrade() {
    let env = TestEnv::new();
    let reg = registry(&env, "r", &[]);
    let t: lode::ticket::RegistryTicket = reg.ticket.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(async {
        let net = lode::net::endpoint::bind(&fresh_key(), &loopback())
            .await
            .unwrap();
        let id = net.learn(&t.0.providers[0]).unwrap();
        // What a lode of `lode-registry/3` sends for `lode search`.
        let search =
            lode::net::proto::encode(&lode::net::registry::Request::Search { term: "x".into() });
        let bytes = lode::net::endpoint::exchange(
            &net,
            id,
            b"lode-registry/3",
            &search,
            1 << 20,
            std::time::Duration::from_secs(20),
        )
        .await
        .unwrap();
        net.endpoint.close().await;
        lode::net::proto::decode::<lode::net::registry::Response>(&bytes).unwrap()
    });
    match answer {
        lode::net::registry::Response::Error(msg) => assert!(
            msg.contains("speaks lode-registry/4") && msg.contains("upgrade lode"),
            "{msg}"
        ),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn the_gateway_page_shows_the_copies_its_registry_counts() {
    let env = TestEnv::new();
    let reg = registry(&env, "r", &[]);
    dataset(&env, "worms", "C. elegans tracks", ("t.csv", b"worm\n"));
    let id = env.dataset_id("worms");
    // The owner serves the dataset with the gateway beside it, and publishes it: the
    // registry it used is the one whose copies its pages show.
    let gw = crate::gateway::start(&env, &["worms"]);
    env.ok(
        "worms",
        &["publish", "worm-tracks", "--registry", &reg.ticket],
    );
    let page = format!("{}/d/{id}/", gw.url);
    for m in ["m1", "m2"] {
        volunteer(&env, m, &reg.ticket, &[]);
        let r = env.json_as(m, "", &["mirror", "sync"]);
        assert_eq!(r["adopted"].as_array().unwrap().len(), 1, "{r}");
    }
    eventually("the page counts both copies", || {
        let (code, _, body) = crate::gateway::curl(&[&format!("{page}?format=json")]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        code == 200 && v["copies"]["current"] == 2 && v["copies"]["older"] == 0
    });
    let (code, _, body) = crate::gateway::curl(&[&page]);
    let html = String::from_utf8_lossy(&body);
    assert_eq!(code, 200);
    assert!(
        html.contains("<dt>Copies</dt><dd>2 storage managers hold the current version</dd>"),
        "{html}"
    );
}
