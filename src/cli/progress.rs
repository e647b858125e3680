//! Progress bars for the operations a person waits for (`log copy`, `backup`, `restore`,
//! `log verify`, `dev seed`, a first `sync --once`), on standard error, and only when standard
//! error is a terminal: piped or logged output gets the commands' summary lines alone, and so
//! does a command the service runs for a CLI (its terminal is not the caller's).

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars are drawn at all.
fn drawn() -> bool {
    std::io::stderr().is_terminal() && !super::output::is_captured()
}

/// A bar of `len` steps (records, users…) with `message` before it; hidden off a terminal.
pub(crate) fn bar(len: u64, message: String) -> ProgressBar {
    if !drawn() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {human_pos}/{human_len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// A spinner for work of unknown length, with `message` and the time taken; hidden off a
/// terminal.
pub(crate) fn spinner(message: String) -> ProgressBar {
    if !drawn() {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_message(message);
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}
