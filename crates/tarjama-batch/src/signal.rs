//! Ctrl-C handling: the first SIGINT asks the run to stop after the current input; a
//! second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap and _exit.
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe (POSIX) and ends the process at once,
        // without running destructors or flushing buffers that the interrupted code may
        // hold half-written; output files are temporary until renamed, so none is left
        // truncated under its final name.
        unsafe { libc::_exit(super::INTERRUPTED) };
    }
}

/// Installs the handler. Without it (other platforms) Ctrl-C kills the run, which the
/// atomic writes and the manifest make safe too, only less polite.
pub fn install() {
    #[cfg(unix)]
    // SAFETY: the handler only touches an atomic and calls _exit, both signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
