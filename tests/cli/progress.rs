//! Progress drawn on a terminal: the real binary runs under a pseudo-terminal (util-linux
//! `script`), and what it drew is checked: named phases, totals known from the first frame
//! (they never grow), no position past its total, and a final `…, done.` line per phase
//! with the real counts.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crate::common::peers::serve;
use crate::common::*;

/// Runs `lode ARGS` as peer `home` in `cwd` under a pseudo-terminal; returns everything it
/// wrote (stdout and stderr share the terminal), or None when `script` is missing.
fn run_on_tty(env: &TestEnv, home: &str, cwd: &str, args: &[&str]) -> Option<String> {
    let inner = env.cmd_as(home, cwd, args);
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(lode_bin())
        .chain(args.iter().copied())
        .map(quote)
        .collect();
    let mut c = Command::new("script");
    c.args(["-qfec", &line.join(" "), "/dev/null"])
        .env_clear()
        .current_dir(inner.get_current_dir().expect("cwd set"))
        .stdin(Stdio::null());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    // Redraw every millisecond, so that even short phases draw frames.
    c.env("LODE_PROGRESS_TICK_MS", "1");
    let out = match c.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "util-linux `script` is needed to test progress on a terminal"
            );
            eprintln!("skipped: no `script` (util-linux) on this machine");
            return None;
        }
        Err(e) => panic!("cannot run script: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "lode {args:?} on a terminal failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(text)
}

/// The drawn text without terminal escapes, cut into what each redraw left: the frames
/// and lines, in order.
fn segments(raw: &str) -> Vec<String> {
    let mut plain = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, final byte in @..~.
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// indicatif's binary byte units, as the bar draws them.
fn binary(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in ["KiB", "MiB", "GiB", "TiB"] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.2} {unit}")
}

/// Bytes of a drawn `NUMBER UNIT`.
fn parse_bytes(num: &str, unit: &str) -> Option<f64> {
    let v: f64 = num.parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(v * scale)
}

/// A drawn `X/Y` pair: x, y, and y as drawn.
type Pair<T> = (T, T, String);

/// The `X/Y` pairs a frame draws: file counts (`1,203/1,995 files`) and byte amounts
/// (`183.00 MiB/215.00 MiB`).
fn pairs(frame: &str) -> (Vec<Pair<u64>>, Vec<Pair<f64>>) {
    let words: Vec<&str> = frame.split_whitespace().collect();
    let mut files = Vec::new();
    let mut bytes = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let Some((a, b)) = w.split_once('/') else {
            continue;
        };
        let next = words.get(i + 1).copied().unwrap_or("");
        let count = |s: &str| s.replace(',', "").parse::<u64>().ok();
        if next.starts_with("files") || next.starts_with("objects") {
            if let (Some(x), Some(y)) = (count(a), count(b)) {
                files.push((x, y, b.to_string()));
            }
            continue;
        }
        // `NUM UNIT/NUM UNIT` splits into words `NUM`, `UNIT/NUM`, `UNIT`.
        if i == 0 {
            continue;
        }
        if let (Some(x), Some(y)) = (parse_bytes(words[i - 1], a), parse_bytes(b, next)) {
            bytes.push((x, y, format!("{b} {next}")));
        }
    }
    (files, bytes)
}

/// Checks every phase of `segments` and returns, per phase name, its `done` line.
/// `expect` gives, for the phases that must appear, their file count and bytes.
fn check(raw: &str, expect: &[(&str, u64, u64)], scans: &[&str]) -> BTreeMap<String, String> {
    let segs = segments(raw);
    let mut done = BTreeMap::new();
    let names: Vec<&str> = expect
        .iter()
        .map(|(n, _, _)| *n)
        .chain(scans.iter().copied())
        .collect();
    let mut first: BTreeMap<&str, String> = BTreeMap::new();
    for s in &segs {
        let Some(name) = names.iter().copied().find(|n| {
            s.strip_prefix(n)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with(','))
        }) else {
            continue;
        };
        if s.ends_with(", done.") {
            assert!(
                done.insert(name.to_string(), s.clone()).is_none(),
                "one done line per phase {name:?}: {segs:#?}"
            );
            continue;
        }
        first.entry(name).or_insert_with(|| s.clone());
        let (files, bytes) = pairs(s);
        if let Some((_, want_files, want_bytes)) = expect.iter().find(|(n, _, _)| *n == name) {
            assert_eq!(files.len(), 1, "a file count in frame {s:?}");
            assert_eq!(bytes.len(), 1, "a byte pair in frame {s:?}");
            let (x, y, _) = &files[0];
            assert!(x <= y, "drawn {x} of {y} files in {s:?}");
            assert_eq!(*y, *want_files, "the file total from the start: {s:?}");
            let (x, y, shown) = &bytes[0];
            assert!(x <= y, "drawn {x} of {y} bytes in {s:?}");
            assert_eq!(
                *shown,
                binary(*want_bytes),
                "the byte total from the start: {s:?}"
            );
        }
    }
    for (name, files, bytes) in expect {
        assert!(
            first.contains_key(name),
            "phase {name:?} drew a frame: {segs:#?}"
        );
        let line = done
            .get(*name)
            .unwrap_or_else(|| panic!("a done line for {name:?}: {segs:#?}"));
        let f = thousands(*files);
        let want = format!("{name} {f}/{f} files, {}", binary(*bytes));
        assert!(
            line.starts_with(&want),
            "{line:?} should start with {want:?}"
        );
    }
    for name in scans {
        assert!(
            done.contains_key(*name),
            "a done line for {name:?}: {segs:#?}"
        );
    }
    done
}

fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes 300 files of distinct content (about 20 MiB, a few over 1 MiB) into `ds` in a
/// few directories; returns their total size.
fn write_dataset(env: &TestEnv, ds: &str) -> u64 {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut total = 0;
    for i in 0..300u64 {
        let size = if i % 30 == 7 {
            (1 << 20) + i * 1000
        } else {
            20_000 + (i * 7919) % 40_000
        };
        let mut data = Vec::with_capacity(size as usize);
        while (data.len() as u64) < size {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        data.truncate(size as usize);
        env.write(&format!("{ds}/d{}/f{i}.bin", i % 6), &data);
        total += size;
    }
    total
}

#[test]
fn add_on_a_terminal_draws_phases_with_known_totals() {
    let env = TestEnv::new();
    let ds = env.init();
    let total = write_dataset(&env, ds);
    let Some(out) = run_on_tty(&env, "home", ds, &["add", "."]) else {
        return;
    };
    let done = check(&out, &[("hashing", 300, total)], &["scanning"]);
    assert!(
        done["scanning"].starts_with("scanning 300 files"),
        "{:?}",
        done["scanning"]
    );
    assert!(out.contains("300 added"), "{out}");
    // Nothing to hash the second time (the stat cache matches): no hashing phase.
    let again = run_on_tty(&env, "home", ds, &["add", "."]).expect("script ran before");
    assert!(
        !segments(&again).iter().any(|s| s.starts_with("hashing")),
        "{again}"
    );
    // Not a terminal: nothing drawn.
    env.write("ds/d0/new.bin", b"new");
    let piped = env.run(ds, &["add", "."]);
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success());
    assert!(!err.contains("hashing") && !err.contains('\r'), "{err}");
}

#[test]
fn clone_on_a_terminal_receives_then_checks_out_with_known_totals() {
    let env = TestEnv::new();
    let ds = env.init();
    let total = write_dataset(&env, ds);
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "three hundred files"]);
    let server = serve(&env, "srv", ds);
    let Some(out) = run_on_tty(&env, "home", "", &["clone", &server.ticket, "copy"]) else {
        return;
    };
    // Every file's content is distinct: 300 objects to receive, 300 files to write.
    let done = check(
        &out,
        &[("receiving", 300, total), ("checking out", 300, total)],
        &["listing"],
    );
    let segs = segments(&out);
    let at = |name: &str| segs.iter().position(|s| s == &done[name]).unwrap();
    assert!(at("receiving") < at("checking out"), "{segs:#?}");
    assert!(out.contains("cloned into"), "{out}");
    // A verify on the terminal counts the objects it re-hashes.
    let v = run_on_tty(&env, "home", "copy", &["verify"]).expect("script ran before");
    let line = segments(&v)
        .into_iter()
        .find(|s| s.starts_with("verifying") && s.ends_with("done."))
        .unwrap_or_else(|| panic!("a verify done line: {v}"));
    let counts = line.split_whitespace().nth(1).unwrap_or_default();
    let (checked, of) = counts.split_once('/').unwrap_or_default();
    assert!(!checked.is_empty() && checked == of, "{line}");
    assert!(line.contains(" objects, "), "{line}");
    drop(server);
}
