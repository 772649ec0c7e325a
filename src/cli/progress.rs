//! indicatif progress bars for the core's `Progress` trait: drawn on stderr when it is a
//! terminal, hidden otherwise or with `--quiet`, `--json`, `--no-progress`.
//!
//! One bar per command, reset at each phase the core announces: its label becomes the
//! phase's name and its totals the phase's (known before the work starts, so they never
//! grow). A phase that ends well leaves a line, as git does:
//! `receiving 1,995/1,995 files, 215.00 MiB, 61.3 MiB/s, done.`
//!
//! `LODE_PROGRESS_TICK_MS` (for tests) redraws that often instead of every 100 ms.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{BinaryBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use lode::progress::Progress;

/// No known byte total.
const UNKNOWN: u64 = u64::MAX;

/// What the drawing thread reads besides indicatif's own state.
struct Shared {
    /// The current label (the command, then each phase's name).
    name: Mutex<String>,
    files: AtomicU64,
    files_total: AtomicU64,
}

/// A phase under way.
struct Current {
    name: &'static str,
    known: bool,
    started: Instant,
}

/// A bar counting files and bytes (or nothing, when hidden).
pub struct Bar {
    bar: ProgressBar,
    visible: bool,
    tick: Duration,
    shared: Arc<Shared>,
    /// The byte total of the phase, or [`UNKNOWN`] (read on every `inc`, so an atomic).
    len: AtomicU64,
    current: Mutex<Option<Current>>,
}

/// `n` with thousands separators: 1,203.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a phase counts.
fn unit(name: &str) -> &'static str {
    if name == "verifying" || name == "indexing" {
        "objects"
    } else {
        "files"
    }
}

impl Bar {
    /// Makes a bar labelled `label`, visible only if `visible`.
    pub fn new(label: &str, visible: bool) -> Bar {
        let tick = std::env::var("LODE_PROGRESS_TICK_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_millis(100), |ms| {
                Duration::from_millis(ms.max(1))
            });
        let shared = Arc::new(Shared {
            name: Mutex::new(label.to_string()),
            files: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
        });
        let bar = if visible {
            // Redraws at most as often as the tick asks, and no less than indicatif's 20/s.
            let hz = (1000 / tick.as_millis().max(1)).clamp(20, 255) as u8;
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(hz));
            b.set_style(style(&shared, "{phase} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}"));
            b
        } else {
            ProgressBar::hidden()
        };
        Bar {
            bar,
            visible,
            tick,
            shared,
            len: AtomicU64::new(UNKNOWN),
            current: Mutex::new(None),
        }
    }

    /// Leaves the line of the phase under way, if any, as done.
    fn end_phase(&self, current: &mut Option<Current>) {
        let Some(c) = current.take() else {
            return;
        };
        let bytes = self.bar.position();
        let files = self.shared.files.load(Relaxed);
        let mut line = c.name.to_string();
        if c.known {
            let total = self.shared.files_total.load(Relaxed);
            line.push_str(&format!(
                " {}/{} {}, {}",
                thousands(files),
                thousands(total),
                unit(c.name),
                BinaryBytes(bytes)
            ));
            let secs = c.started.elapsed().as_secs_f64();
            if bytes > 0 && secs > 0.0 {
                line.push_str(&format!(
                    ", {}/s",
                    BinaryBytes((bytes as f64 / secs) as u64)
                ));
            }
        } else {
            if files > 0 {
                line.push_str(&format!(" {} {}", thousands(files), unit(c.name)));
            }
            if bytes > 0 {
                line.push_str(&format!(" {}", BinaryBytes(bytes)));
            }
        }
        line.push_str(", done.");
        self.bar.println(line);
    }

    /// Ends the phase under way and starts `name`.
    fn start(&self, name: &'static str, totals: Option<(u64, u64)>) {
        if !self.visible {
            return;
        }
        let mut current = self.current.lock().expect("not poisoned");
        // The clock's thread draws too: stopped (joined) first, so that no frame shows the
        // new phase's name in the old phase's template.
        self.bar.disable_steady_tick();
        self.end_phase(&mut current);
        *self.shared.name.lock().expect("not poisoned") = name.to_string();
        self.shared.files.store(0, Relaxed);
        let (files, bytes) = totals.unwrap_or((0, UNKNOWN));
        self.shared.files_total.store(files, Relaxed);
        self.len.store(bytes, Relaxed);
        let template = if totals.is_some() {
            "{phase} {wide_bar} {files}  {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  eta {eta}"
        } else {
            "{phase} {spinner} {sofar}  {elapsed}"
        };
        self.bar.set_style(style(&self.shared, template));
        // One update (one draw) with the new total and a zero position, then the clock.
        self.bar.update(|s| {
            s.set_pos(0);
            if let Some((_, b)) = totals {
                s.set_len(b);
            }
        });
        self.bar.reset();
        self.bar.enable_steady_tick(self.tick);
        *current = Some(Current {
            name,
            known: totals.is_some(),
            started: Instant::now(),
        });
    }
}

/// The bar's style: `template` with lode's keys (`phase`, `files`, `sofar`).
fn style(shared: &Arc<Shared>, template: &str) -> ProgressStyle {
    let (a, b, c) = (shared.clone(), shared.clone(), shared.clone());
    ProgressStyle::with_template(template)
        .expect("template is valid")
        .with_key(
            "phase",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", a.name.lock().expect("not poisoned"));
            },
        )
        .with_key(
            "files",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let name = b.name.lock().expect("not poisoned").clone();
                let _ = write!(
                    w,
                    "{}/{} {}",
                    thousands(b.files.load(Relaxed)),
                    thousands(b.files_total.load(Relaxed)),
                    unit(&name)
                );
            },
        )
        .with_key(
            "sofar",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let name = c.name.lock().expect("not poisoned").clone();
                let files = c.files.load(Relaxed);
                if files > 0 {
                    let _ = write!(w, "{} {}", thousands(files), unit(&name));
                }
                if s.pos() > 0 {
                    let _ = write!(w, " {}", BinaryBytes(s.pos()));
                }
            },
        )
}

impl Progress for Bar {
    fn phase(&self, name: &'static str, files: u64, bytes: u64) {
        self.start(name, Some((files, bytes)));
    }
    fn scan(&self, name: &'static str) {
        self.start(name, None);
    }
    fn set_total(&self, total: u64) {
        if self.visible {
            self.len.store(total, Relaxed);
            self.bar.set_length(total);
        }
    }
    fn inc(&self, n: u64) {
        if !self.visible {
            return;
        }
        // A retried transfer may count bytes twice: never draw more than the total.
        let len = self.len.load(Relaxed);
        if len != UNKNOWN && self.bar.position().saturating_add(n) > len {
            self.bar.set_position(len);
        } else {
            self.bar.inc(n);
        }
    }
    fn file_done(&self) {
        if self.visible {
            self.shared.files.fetch_add(1, Relaxed);
        }
    }
    fn finish(&self) {
        if !self.visible {
            return;
        }
        let mut current = self.current.lock().expect("not poisoned");
        self.end_phase(&mut current);
        self.bar.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
