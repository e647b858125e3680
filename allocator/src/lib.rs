//! The settings of the `idpsync` binary's allocator (mimalloc), applied once at the start of
//! `main`, before any thread is started. The benchmarks that measure with the binary's
//! allocator apply them too.
//!
//! mimalloc keeps memory that was freed committed for a while before it returns it to the
//! system (its `purge_delay`): 1 s in mimalloc 3, ten times that for its arenas. Under a large
//! sync, whose plan, listing and snapshot each free hundreds of megabytes soon after taking
//! them, those delays stacked one peak on the next: the sync's process peaked at 472 MiB with
//! them and at 390 MiB with 10 ms (the value mimalloc's documentation gives, and mimalloc 2's),
//! and the full sync was no slower (benches/README.md).

use std::ffi::c_long;

/// mimalloc's `mi_option_purge_delay`: the sys crate leaves its numeric options unnamed and
/// points to mimalloc's header for their values (the options' order in `mi_option_t`).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays committed, in milliseconds.
const PURGE_DELAY_MS: c_long = 10;

/// The environment variable by which an operator sets mimalloc's purge delay instead.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// Applies the settings; an operator's own `MIMALLOC_PURGE_DELAY` is left as it is. Call it
/// first in `main`, before any thread starts: mimalloc's options are not set thread-safely.
#[allow(unsafe_code)]
pub fn configure() {
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    // SAFETY: sets one of mimalloc's numeric options to a value it documents; called before
    // the program starts any thread, as `mi_option_set` requires.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
    // A purge scheduled before `main`, with the delay mimalloc started with, would hold every
    // later one back until it expires: purge now, so that the next are scheduled anew.
    // SAFETY: a collection of the calling thread's heap, which mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn the_option_set_is_the_purge_delay_and_configure_sets_it() {
        if std::env::var_os(PURGE_DELAY_VAR).is_some() {
            return;
        }
        // SAFETY: reads an option; nothing else in this test process sets mimalloc's options.
        let before = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        // The purge delay's default in mimalloc 3: another option at this index, after an
        // upgrade, would not have it.
        assert_eq!(before, 1000, "mimalloc's option {PURGE_DELAY} is not the purge delay");
        configure();
        // SAFETY: as above.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, PURGE_DELAY_MS);
    }
}
