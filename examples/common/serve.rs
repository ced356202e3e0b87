//! What both servers (`server`, `rpc_server`) need besides the channel:
//! a key file for `ftok`, a readable project id, and Ctrl-C as a flag.

use std::error::Error;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::failure::fail;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed since [`catch_ctrl_c`].
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// `'A'` for a printable project id, else its number.
pub(crate) fn show_proj(proj: u8) -> String {
    if proj.is_ascii_graphic() {
        format!("{:?}", char::from(proj))
    } else {
        proj.to_string()
    }
}

/// `ftok` needs an existing file: make the default one if it is missing.
pub(crate) fn ensure_file(path: &Path) -> Result<(), Box<dyn Error>> {
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
    Ok(())
}

extern "C" fn on_sigint(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Turns Ctrl-C into a flag ([`interrupted`]) that the server checks while
/// it waits, so that the handles drop normally and the channel is removed.
/// (Without a handler the kernel's SEM_UNDO still uncounts this process,
/// but nobody would remove the segment: the next server replaces it,
/// thanks to `replace_stale`.)
pub(crate) fn catch_ctrl_c() -> Result<(), Box<dyn Error>> {
    let handler = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is allowed in a
    // signal handler; no other code in this program handles SIGINT.
    if unsafe { libc::signal(libc::SIGINT, handler) } == libc::SIG_ERR {
        return Err(fail(format!(
            "cannot handle SIGINT: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// A library error met by server `program`, with a hint where the user
/// can do something about it.
pub(crate) fn explain(e: shmchan::Error, program: &str) -> Box<dyn Error> {
    use shmchan::Error as E;
    let hint = match &e {
        E::AlreadyExists { .. } => {
            format!("another {program} is running with this PATH and PROJ")
        }
        E::NotAChannel { .. } => {
            "another program uses this key: choose another PATH or PROJ".into()
        }
        E::PermissionDenied { .. } => "the key is taken by another user's channel".into(),
        E::Os { call: "ftok", .. } => "PATH must be a file or directory you can read".into(),
        E::Removed { .. } => "someone removed the channel (ipcrm or Channel::remove)".into(),
        _ => return fail(e.to_string()),
    };
    fail(format!("{e}\n  hint: {hint}"))
}
