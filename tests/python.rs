//! The Python package (`python/`, docs/PYTHON.md), tested as a user installs it: the wheel
//! is built with maturin (debug profile, into `target/py-wheels`), installed into a fresh
//! virtualenv (`target/py-test-venv`) with pytest, and `python/tests` drives the API and the
//! wheel's `lode` command against real `lode serve` processes on loopback. maturin and pytest
//! come from PyPI into `target/py-tools` the first time. A machine without python3 or PyPI
//! cannot run it: that is reported, and under `CI` it fails (as `common::cannot_run` does).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Says why the case cannot run here; under CI that is a failure.
fn cannot_run(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false") {
        panic!("{why}: under CI every case must run (.ci/run installs what the tests need)");
    }
    eprintln!("not run: {why}");
}

/// Runs `cmd`; on failure returns what it printed.
fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!(
            "{shown} failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("cannot run {shown}: {e}")),
    }
}

/// The tools virtualenv with maturin and pytest (made once, kept under target/).
fn tools() -> Result<PathBuf, String> {
    let dir = root().join("target/py-tools");
    let maturin = dir.join("bin/maturin");
    if run(Command::new(&maturin).arg("--version")).is_ok() {
        return Ok(dir);
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    run(Command::new(dir.join("bin/pip")).args(["install", "-q", "maturin>=1.9.4,<2", "pytest"]))?;
    Ok(dir)
}

fn wheel(dir: &Path) -> Result<PathBuf, String> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    match &found[..] {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "expected one wheel in {}, found {found:?}",
            dir.display()
        )),
    }
}

#[test]
fn python_package() {
    let tools = match tools() {
        Ok(t) => t,
        Err(e) => return cannot_run(&format!("the Python package test: {e}")),
    };
    let out = root().join("target/py-wheels");
    let _ = std::fs::remove_dir_all(&out);
    // The wheel, as `pip install .` would build it (debug profile, to save time here).
    run(Command::new(tools.join("bin/maturin"))
        .current_dir(root())
        .args(["build", "--quiet", "--out"])
        .arg(&out))
    .unwrap();
    let wheel = wheel(&out).unwrap();
    let venv = root().join("target/py-test-venv");
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).unwrap();
    let installed = run(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "pytest"])
        .arg(&wheel));
    if let Err(e) = installed {
        return cannot_run(&format!("the Python package test: {e}"));
    }
    let mut pytest = Command::new(venv.join("bin/python"));
    pytest
        // Not from python/, where `import lode` would find the sources instead of the wheel.
        .current_dir(root().join("python/tests"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "."]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LODE_") {
            pytest.env_remove(k);
        }
    }
    match run(&mut pytest) {
        Ok(text) => eprintln!("{text}"),
        Err(e) => panic!("{e}"),
    }
    // lode.owmeta with the real owmeta-core, in a virtualenv kept under target/ (installing
    // owmeta-core takes a while); the wheel is installed into it afresh.
    let owmeta = match owmeta_venv() {
        Ok(v) => v,
        Err(e) => return cannot_run(&format!("the owmeta-core test: {e}")),
    };
    run(Command::new(owmeta.join("bin/pip"))
        .args(["install", "-q", "--no-deps", "--force-reinstall"])
        .arg(&wheel))
    .unwrap();
    let mut pytest = Command::new(owmeta.join("bin/python"));
    pytest
        .current_dir(root().join("python/tests"))
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_owmeta.py",
        ])
        .env("LODE_TEST_REQUIRE_OWMETA", "1");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LODE_") {
            pytest.env_remove(k);
        }
    }
    match run(&mut pytest) {
        Ok(text) => eprintln!("{text}"),
        Err(e) => panic!("{e}"),
    }
}

/// `target/owmeta-venv` with owmeta-core and pytest. owmeta-core 0.13.5 pins wrapt 1.11,
/// which does not import on Python 3.11: a newer wrapt goes in after it
/// (../shared/notes/owmeta.md).
fn owmeta_venv() -> Result<PathBuf, String> {
    let dir = root().join("target/owmeta-venv");
    let py = dir.join("bin/python");
    let works = || {
        run(Command::new(&py).args(["-c", "import owmeta_core.datasource_loader, pytest"])).is_ok()
    };
    if works() {
        return Ok(dir);
    }
    let pip = dir.join("bin/pip");
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    run(Command::new(&pip).args(["install", "-q", "owmeta-core", "pytest"]))?;
    run(Command::new(&pip).args(["install", "-q", "wrapt>=1.14"]))?;
    if !works() {
        return Err("owmeta_core does not import after install".into());
    }
    Ok(dir)
}
