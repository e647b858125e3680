//! Where a command's output goes: standard output, or, for a read command the server runs for
//! a CLI on its control socket ([`super::control`]), a buffer sent back to that CLI.
//!
//! The `out!` / `outln!` / `warnln!` macros write through here, so a command is written once
//! and prints the same wherever it runs.

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

/// What a command wrote while captured.
#[derive(Default)]
pub(crate) struct Captured {
    /// Its standard output.
    pub(crate) stdout: Vec<u8>,
    /// Its warnings (standard error).
    pub(crate) stderr: String,
}

tokio::task_local! {
    static CAPTURE: Arc<Mutex<Captured>>;
}

/// Writes to the captured output of the current task, or to standard output.
pub(crate) fn write_out(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    match CAPTURE.try_with(|captured| {
        captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stdout
            .write_fmt(args)
    }) {
        Ok(written) => written,
        Err(_) => std::io::stdout().lock().write_fmt(args),
    }
}

/// Writes a warning line to the captured output of the current task, or to standard error.
pub(crate) fn write_warning(args: fmt::Arguments<'_>) {
    let captured = CAPTURE.try_with(|captured| {
        let mut captured = captured.lock().unwrap_or_else(|p| p.into_inner());
        let _ = fmt::Write::write_fmt(&mut captured.stderr, args);
        captured.stderr.push('\n');
    });
    if captured.is_err() {
        eprintln!("{args}");
    }
}

/// Whether the current task's output is captured (the service runs the command for a CLI).
pub(crate) fn is_captured() -> bool {
    CAPTURE.try_with(|_| ()).is_ok()
}

/// Runs `work` with everything it writes captured; returns its result and what it wrote.
pub(crate) async fn capture<T>(work: impl Future<Output = T>) -> (T, Captured) {
    let buffer = Arc::new(Mutex::new(Captured::default()));
    let result = CAPTURE.scope(Arc::clone(&buffer), work).await;
    let captured = std::mem::take(&mut *buffer.lock().unwrap_or_else(|p| p.into_inner()));
    (result, captured)
}
