//! `Key`: a System V IPC key, from `ftok(3)`, a raw number, or `IPC_PRIVATE`.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Device and inode of the path a key was made from.
///
/// `ftok` keeps only 8 bits of the device and 16 of the inode, so two paths
/// can map to one key; the channel header records the full pair so that such
/// a collision is reported instead of silently shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// A System V IPC key naming a channel.
///
/// Keys are 32-bit: every value from `i32::MIN` to `i32::MAX` is valid
/// (`0x80000000..=0xffffffff` read as `key_t` are negative), and `0` is
/// [`Key::PRIVATE`]. Two keys are equal when their raw values are equal.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    raw: i32,
    origin: Option<FileId>,
}

impl Key {
    /// `IPC_PRIVATE`: `create` makes a new channel that no other key names;
    /// other processes reach it by its id ([`Channel::open_id`](crate::Channel::open_id)).
    pub const PRIVATE: Key = Key {
        raw: libc::IPC_PRIVATE,
        origin: None,
    };

    /// A key from a path and a project id, as `ftok(3)` makes it.
    ///
    /// The path must exist; `proj_id` must be non-zero (ftok uses only its
    /// low 8 bits, and 0 is reserved).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming the path when it does not exist or cannot be
    /// read, or when `proj_id` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let key = shmchan::Key::ftok("/tmp", b'A')?;
    /// assert_ne!(key, shmchan::Key::PRIVATE);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn ftok(path: impl AsRef<Path>, proj_id: u8) -> Result<Key> {
        let path = path.as_ref();
        let fail = |source: io::Error| Error::Os {
            call: "ftok",
            channel: format!("path {}", path.display()),
            source,
        };
        if proj_id == 0 {
            return Err(fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "proj_id must be non-zero",
            )));
        }
        let meta = std::fs::metadata(path).map_err(fail)?;
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        // SAFETY: cpath is a valid NUL-terminated string that outlives the call.
        let raw = unsafe { libc::ftok(cpath.as_ptr(), libc::c_int::from(proj_id)) };
        if raw == -1 {
            return Err(fail(io::Error::last_os_error()));
        }
        let origin = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        Ok(Key {
            raw,
            origin: Some(origin),
        })
    }

    /// A key from its raw `key_t` value. `Key::from_raw(0)` is [`Key::PRIVATE`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::Key;
    ///
    /// let key = Key::from_raw(0x00c0_ffee); // as `ipcs` prints it
    /// assert_eq!(key.to_string(), "key 0x00c0ffee");
    /// assert_eq!(Key::from_raw(0), Key::PRIVATE);
    /// ```
    pub const fn from_raw(raw: i32) -> Key {
        Key { raw, origin: None }
    }

    /// The raw `key_t` value.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::Key;
    ///
    /// assert_eq!(Key::from_raw(0x00c0_ffee).raw(), 0x00c0_ffee);
    /// assert_eq!(Key::from_raw(-1).raw() as u32, 0xffff_ffff); // `key_t` is signed
    /// assert_eq!(Key::PRIVATE.raw(), 0);
    /// ```
    pub const fn raw(&self) -> i32 {
        self.raw
    }

    /// Whether this is `IPC_PRIVATE`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::Key;
    ///
    /// assert!(Key::PRIVATE.is_private());
    /// assert!(!Key::ftok("/tmp", b'A')?.is_private());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub const fn is_private(&self) -> bool {
        self.raw == libc::IPC_PRIVATE
    }

    /// The path identity this key was made from, if it came from `ftok`.
    pub(crate) fn origin(&self) -> Option<FileId> {
        self.origin
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl fmt::Display for Key {
    /// `key 0x0000abcd`, or `IPC_PRIVATE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_private() {
            f.write_str("IPC_PRIVATE")
        } else {
            write!(f, "key {:#010x}", self.raw as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftok_of_missing_path_names_it() {
        let err = Key::ftok("/no/such/shmchan/path", 1).unwrap_err();
        assert!(err.to_string().contains("/no/such/shmchan/path"), "{err}");
    }

    #[test]
    fn ftok_rejects_proj_zero() {
        assert!(matches!(Key::ftok("/", 0), Err(Error::Os { .. })));
    }

    #[test]
    fn high_keys_display_unsigned() {
        assert_eq!(Key::from_raw(-1).to_string(), "key 0xffffffff");
        assert_eq!(Key::from_raw(0).to_string(), "IPC_PRIVATE");
    }
}
