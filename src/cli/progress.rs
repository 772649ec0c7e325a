//! indicatif progress bars for the core's `Progress` trait: drawn on stderr when it is a
//! terminal, hidden otherwise or with `--quiet`, `--json`, `--no-progress`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lode::progress::Progress;

/// A byte-counting bar (or nothing, when hidden).
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// Makes a bar labelled `label`, visible only if `visible`.
    pub fn new(label: &str, visible: bool) -> Bar {
        let bar = if visible {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("template is valid"),
            );
            b.set_prefix(label.to_string());
            b
        } else {
            ProgressBar::hidden()
        };
        Bar { bar }
    }
}

impl Progress for Bar {
    fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }
    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
