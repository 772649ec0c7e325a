//! `lode serve` at scale: start-up does no work per object (it serves from the object files
//! and keeps its reachability index on disk), a clone and a pull of many small files, and gc
//! of what serving cached.

use std::fs;

use crate::common::peers::*;
use crate::common::*;

const FILES: usize = 20_000;

fn small(i: usize, version: u32) -> Vec<u8> {
    format!("tile {i} version {version}\n")
        .repeat(8)
        .into_bytes()
}

#[test]
fn serve_starts_without_reading_objects_and_serves_many_small_files() {
    let env = TestEnv::new();
    let ds = env.init();
    for i in 0..FILES {
        env.write(&format!("ds/t{:03}/{i}.txt", i / 100), small(i, 1));
    }
    // One object over a chunk group, for which the server computes and caches an outboard.
    let big = noise(300 << 10, 7);
    env.write("ds/stack.tif", &big);
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "v1"]);

    // The first start indexes what the head reaches; then the server stops.
    drop(serve(&env, "srv", ds));
    let objects = env.path("ds/.lode/objects");
    let away = env.path("ds/.lode/objects.away");
    fs::rename(&objects, &away).unwrap();
    fs::create_dir(&objects).unwrap();

    // Control: without its index, a server must read the objects to start, and cannot.
    let index = env.path("ds/.lode/serve-index.redb");
    let kept = env.path("ds/.lode/serve-index.kept");
    fs::rename(&index, &kept).unwrap();
    let out = env.cmd_as("srv", ds, &["serve", "-q"]).output().unwrap();
    assert!(!out.status.success(), "served without reading its objects");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("object"), "{err}");
    fs::remove_file(&index).ok();
    fs::rename(&kept, &index).unwrap();

    // With its index, the server starts while no object is readable: start-up reads none.
    let server = serve(&env, "srv", ds);
    fs::remove_dir(&objects).unwrap();
    fs::rename(&away, &objects).unwrap();

    let r = env.json("", &["clone", &server.ticket, "copy"]);
    assert!(r["objects"].as_u64().unwrap() as usize > FILES, "{r}");
    for i in (0..FILES).step_by(97) {
        assert_eq!(
            env.read(&format!("copy/t{:03}/{i}.txt", i / 100)),
            small(i, 1)
        );
    }
    assert_eq!(env.read("copy/stack.tif"), big);
    env.ok("copy", &["verify"]);
    let big_id = blake3::hash(&big).to_hex().to_string();
    let outboard = env.path(&format!("ds/.lode/outboards/{big_id}"));
    assert!(
        outboard.is_file(),
        "the server cached the outboard it computed"
    );

    // 100 files change; the running server publishes the new head; the pull moves them.
    for i in (0..FILES).step_by(FILES / 100) {
        env.write(&format!("ds/t{:03}/{i}.txt", i / 100), small(i, 2));
    }
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "v2"]);
    let r = env.json("copy", &["pull"]);
    let moved = r["objects"].as_u64().unwrap();
    assert!(
        (100..=100 + 2 * (FILES as u64 / 100) + 2).contains(&moved),
        "{r}"
    );
    for i in (0..FILES).step_by(FILES / 100) {
        assert_eq!(
            env.read(&format!("copy/t{:03}/{i}.txt", i / 100)),
            small(i, 2)
        );
    }
    assert_eq!(env.head("copy"), env.head(ds));
    drop(server);

    // gc drops the outboards of objects that are gone and keeps the others.
    let stale = env.path(&format!("ds/.lode/outboards/{}", "ab".repeat(32)));
    fs::write(&stale, [0u8; 64]).unwrap();
    let r = env.json(ds, &["gc"]);
    assert_eq!(r["outboards_removed"], 1, "{r}");
    assert!(!stale.exists());
    assert!(outboard.is_file());
    env.ok(ds, &["verify"]);
    env.ok("copy", &["verify"]);
}
