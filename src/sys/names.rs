//! Groups by name and by id (`getgrnam_r(3)`, `getgrgid_r(3)`) and users
//! by id (`getpwuid_r(3)`), so that every source the host's NSS
//! configuration names (`/etc/group` and `/etc/passwd`, LDAP, systemd's
//! dynamic users and groups) answers, never a file read by hand.

use std::ffi::{CStr, CString};
use std::io;

use super::Fail;

/// The largest buffer a lookup grows to (a group with very many members
/// needs a large one); past it the lookup fails with `ERANGE`.
const MAX_BUFFER: usize = 1 << 20;

/// The gid of the group named `name`; `None` when there is none (a name
/// holding a NUL byte names none).
#[doc(alias = "getgrnam_r")]
pub(crate) fn group_id(name: &str) -> io::Result<Option<u32>> {
    let Ok(name) = CString::new(name) else {
        return Ok(None);
    };
    lookup(
        |grp, buf, found| {
            // SAFETY: name is NUL-terminated; grp, found and buf (of
            // buf.len() bytes) are valid and writable for the call.
            unsafe {
                libc::getgrnam_r(
                    name.as_ptr(),
                    grp,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    found,
                )
            }
        },
        |grp| grp.gr_gid,
    )
}

/// The name of group `gid`; `None` when no group has that id.
#[doc(alias = "getgrgid_r")]
pub(crate) fn group_name(gid: u32) -> io::Result<Option<String>> {
    lookup(
        |grp, buf, found| {
            // SAFETY: grp, found and buf (of buf.len() bytes) are valid and
            // writable for the call.
            unsafe { libc::getgrgid_r(gid, grp, buf.as_mut_ptr().cast(), buf.len(), found) }
        },
        |grp| {
            // SAFETY: a found entry's gr_name points to a NUL-terminated
            // string in the lookup's buffer, which outlives this call.
            let name = unsafe { CStr::from_ptr(grp.gr_name) };
            name.to_string_lossy().into_owned()
        },
    )
}

/// The name of user `uid`; `None` when no user has that id.
#[doc(alias = "getpwuid_r")]
pub(crate) fn user_name(uid: u32) -> io::Result<Option<String>> {
    lookup(
        |pwd, buf, found| {
            // SAFETY: pwd, found and buf (of buf.len() bytes) are valid and
            // writable for the call.
            unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), found) }
        },
        |pwd| {
            // SAFETY: a found entry's pw_name points to a NUL-terminated
            // string in the lookup's buffer, which outlives this call.
            let name = unsafe { CStr::from_ptr(pwd.pw_name) };
            name.to_string_lossy().into_owned()
        },
    )
}

/// An entry of the user or group database: a C struct of integers and
/// pointers, for which all-zero bytes are a valid value.
trait Entry {}
impl Entry for libc::group {}
impl Entry for libc::passwd {}

/// Runs a `getgr*_r` or `getpw*_r` call (`call(entry, buf, found)`) with a
/// buffer that grows while the call says it is too small, and reads the
/// entry it found with `read` while the buffer still holds its strings.
fn lookup<E: Entry, T>(
    mut call: impl FnMut(&mut E, &mut [u8], &mut *mut E) -> libc::c_int,
    read: impl FnOnce(&E) -> T,
) -> io::Result<Option<T>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: E is `libc::group` or `libc::passwd` (the `Entry`
        // trait is private and implemented for those only): plain old
        // data, for which all-zero is a valid value.
        let mut entry: E = unsafe { std::mem::zeroed() };
        let mut found: *mut E = std::ptr::null_mut();
        // These calls return the error number rather than set errno.
        let rc = call(&mut entry, &mut buf, &mut found);
        if rc == 0 {
            return Ok((!found.is_null()).then(|| read(&entry)));
        }
        let e = io::Error::from_raw_os_error(rc);
        match Fail::of(&e) {
            Fail::NotFound => return Ok(None),
            Fail::Range if buf.len() < MAX_BUFFER => buf.resize(buf.len() * 2, 0),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_agree() {
        // SAFETY: getegid has no preconditions and cannot fail.
        let gid = unsafe { libc::getegid() };
        if let Some(name) = group_name(gid).expect("getgrgid_r") {
            assert_eq!(group_id(&name).expect("getgrnam_r"), Some(gid));
        }
        assert_eq!(group_id("no such group, surely").unwrap(), None);
        assert_eq!(group_id("nul\0inside").unwrap(), None);
    }

    #[test]
    fn root_is_a_user() {
        assert_eq!(user_name(0).expect("getpwuid_r").as_deref(), Some("root"));
    }
}
