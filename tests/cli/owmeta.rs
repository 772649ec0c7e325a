//! The owmeta-core integration (examples/owmeta/): owmeta-core is installed from PyPI into a
//! virtualenv (under target/, reused between runs), and a data source's files are loaded
//! through `LodeDirLoader` from a lode peer on loopback, by referral URI and by ticket.

use std::path::PathBuf;
use std::process::Command;

use crate::common::peers::serve;
use crate::common::*;

/// The virtualenv's python with owmeta-core importable, or `None` (with the reason printed)
/// when it cannot be installed here (no python3, no package index).
fn owmeta_python() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/owmeta-venv");
    let py = dir.join("bin/python");
    let works = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", "import owmeta_core.datasource_loader"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&py) {
        return Some(py);
    }
    let pip = dir.join("bin/pip");
    let steps: [Vec<String>; 3] = [
        vec![
            "python3".into(),
            "-m".into(),
            "venv".into(),
            dir.display().to_string(),
        ],
        // owmeta-core 0.13.5 pins wrapt 1.11, which does not import on Python 3.11: install
        // it, then a newer wrapt (../shared/notes/owmeta.md).
        vec![
            pip.display().to_string(),
            "install".into(),
            "-q".into(),
            "owmeta-core".into(),
        ],
        vec![
            pip.display().to_string(),
            "install".into(),
            "-q".into(),
            "wrapt>=1.14".into(),
        ],
    ];
    for step in steps {
        let out = Command::new(&step[0]).args(&step[1..]).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                crate::common::cannot_run(&format!(
                    "the owmeta test: {:?} failed: {}",
                    step,
                    String::from_utf8_lossy(&o.stderr)
                ));
                return None;
            }
            Err(e) => {
                crate::common::cannot_run(&format!(
                    "the owmeta test: cannot run {:?}: {e}",
                    step[0]
                ));
                return None;
            }
        }
    }
    if !works(&py) {
        crate::common::cannot_run("the owmeta test: owmeta_core does not import after install");
        return None;
    }
    Some(py)
}

#[test]
fn owmeta_loads_a_data_source_through_lode() {
    let Some(py) = owmeta_python() else { return };
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(
        ds,
        &[("tables/neurons.csv", b"name,type\nAVAL,inter\n")],
        "one",
    );
    env.ok(ds, &["tag", "v1"]);
    env.commit_files(
        ds,
        &[("tables/neurons.csv", b"name,type\nAVAL,inter\nAVAR,inter\n")],
        "two",
    );
    let server = serve(&env, "srv", ds);
    let id = env.dataset_id(ds);
    // The owmeta user's lode learns where the dataset is served from one use of its ticket.
    env.ok_as(
        "ow",
        "",
        &["get", &server.ticket, "tables/neurons.csv", "--to", "learn"],
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/owmeta/check_loader.py");
    let base = env.path("owmeta-files");
    std::fs::create_dir_all(&base).unwrap();
    let run = |uri: &str| {
        Command::new(&py)
            .arg(&script)
            .arg(lode_bin())
            .arg(&base)
            .arg(uri)
            .env("LODE_HOME", env.path("ow"))
            .env("LODE_BIND", "127.0.0.1:0")
            .env("LODE_RELAY", "disabled")
            .env("LODE_NO_DISCOVERY", "true")
            .output()
            .unwrap()
    };
    let load = |uri: &str| -> PathBuf {
        let out = run(uri);
        assert!(
            out.status.success(),
            "loader failed for {uri}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    // By referral URI, at a tag: the old version, verified.
    let dir = load(&format!("lode://{id}/tables/neurons.csv?rev=v1"));
    assert!(dir.starts_with(base.canonicalize().unwrap()));
    assert_eq!(
        std::fs::read(dir.join("tables/neurons.csv")).unwrap(),
        b"name,type\nAVAL,inter\n"
    );
    // By ticket and path: the current version (the same data source id reloads in place).
    let dir = load(&format!("{} tables", server.ticket));
    assert_eq!(
        std::fs::read(dir.join("tables/neurons.csv")).unwrap(),
        b"name,type\nAVAL,inter\nAVAR,inter\n"
    );
    // A failure names the cause and leaves nothing behind.
    let out = run(&format!("lode://{id}/no/such.csv"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lode could not load"));
    let left: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(left.is_empty());
}
