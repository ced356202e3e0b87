//! The one error type of the crate.

use std::io;

/// Which side of a channel a handle plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The writing side ([`Sender`](crate::Sender)).
    Sender,
    /// The reading side ([`Receiver`](crate::Receiver)).
    Receiver,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        })
    }
}

/// Everything that can go wrong with a channel.
///
/// Each variant is a situation a caller can act on. Messages name the channel
/// (`key 0x…` or `shmid N`) and, for OS errors, the call and the errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No channel exists at that key or id (or it is being removed).
    #[error("no shmchan channel at {channel}")]
    NotFound {
        /// The key or id that was asked for.
        channel: String,
    },
    /// `create` found a segment or semaphore set already at that key.
    #[error("{channel} already exists")]
    AlreadyExists {
        /// The key that was asked for.
        channel: String,
    },
    /// The OS refused access (EACCES / EPERM).
    #[error("permission denied on {channel} ({call}: {source})")]
    PermissionDenied {
        /// The key or id.
        channel: String,
        /// The system call that was refused.
        call: &'static str,
        /// The OS error, with its errno.
        source: io::Error,
    },
    /// The segment exists but is not a shmchan channel.
    #[error("{channel} is not a shmchan channel: {reason}")]
    NotAChannel {
        /// The key or id.
        channel: String,
        /// What gave it away.
        reason: String,
    },
    /// The segment is a shmchan channel of another layout version.
    #[error("{channel} has layout version {found}, this library speaks version {expected}")]
    VersionMismatch {
        /// The key or id.
        channel: String,
        /// The version found in the header.
        found: u32,
        /// The version this library implements.
        expected: u32,
    },
    /// Another live handle already holds this role on the channel.
    #[error("the {role} role of {channel} is already taken")]
    RoleTaken {
        /// The key or id.
        channel: String,
        /// The role that was asked for.
        role: Role,
    },
    /// The message is longer than the channel's maximum; nothing was written.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// The length that was asked for.
        len: usize,
        /// The channel's `max_message_len()`.
        max: usize,
    },
    /// `try_send`/`try_reserve`: the ring has no room right now.
    #[error("channel is full")]
    Full,
    /// `try_recv`/`try_recv_ref`: no message is queued right now.
    #[error("channel is empty")]
    Empty,
    /// A `*_timeout` call ran out of time.
    #[error("timed out")]
    Timeout,
    /// The peer this handle has seen is gone (and, for a receiver, every
    /// message it committed has been received). Not sticky: a new peer may
    /// attach.
    #[error("the peer has disconnected")]
    Disconnected,
    /// A removal without `force` ([`admin::remove`](crate::admin::remove))
    /// refused a channel in use: a party is alive, or, for a channel whose
    /// semaphore set is gone, a process has it attached.
    #[error("{channel} is in use by {parties} {}", if *.parties == 1 { "party" } else { "parties" })]
    Busy {
        /// The key or id.
        channel: String,
        /// How many hold it: its live parties (or attached processes).
        parties: u32,
    },
    /// The channel was removed (`Channel::remove`, `shmchan rm`, `ipcrm`).
    #[error("{channel} was removed")]
    Removed {
        /// The key or id.
        channel: String,
    },
    /// The shared header or a frame failed validation. The handle is
    /// poisoned: every later call on it returns this error again.
    #[error("{channel} is corrupted: {what}")]
    Corrupted {
        /// The key or id.
        channel: String,
        /// What was wrong.
        what: String,
    },
    /// `send_value` (feature `serde`): the value could not be serialized
    /// (its `Serialize` impl failed, or wrote other bytes on the second
    /// pass than on the first). Nothing was sent.
    #[cfg(feature = "serde")]
    #[error("could not encode a value of type {type_name}: {cause}")]
    Encode {
        /// The value's type (`std::any::type_name`).
        type_name: &'static str,
        /// What postcard, or the check after it, said (the type's own
        /// failure is said as such: postcard's error keeps no text of it).
        cause: String,
    },
    /// `recv_value` (feature `serde`): the message is not a postcard
    /// encoding of the type asked for, or has bytes left over after it.
    /// The message was consumed: the next call receives the next one.
    #[cfg(feature = "serde")]
    #[error("could not decode a message as {type_name}: {cause}")]
    Decode {
        /// The type asked for (`std::any::type_name`).
        type_name: &'static str,
        /// What postcard said, or how many bytes were left over. The
        /// type's own refusal (an enum variant it does not have, a
        /// `try_from` that failed) is said as such: postcard's error
        /// keeps no text of it.
        cause: String,
    },
    /// A plain-old-data call (feature `bytemuck`) met a message whose
    /// length is not the type's size, or a type aligned above 8 bytes
    /// (payloads are 8-byte aligned in the ring). `send_pod` sent
    /// nothing; `recv_pod` consumed the message.
    #[cfg(feature = "bytemuck")]
    #[error("{}", pod_mismatch(.type_name, *.len, *.expected, *.align))]
    PodMismatch {
        /// The type asked for (`std::any::type_name`).
        type_name: &'static str,
        /// The message's length (for `send_pod`, the type's size).
        len: usize,
        /// The type's size.
        expected: usize,
        /// The type's alignment (at most 8 is accepted).
        align: usize,
    },
    /// A batch ([`Sender::send_batch`](crate::Sender::send_batch) and its
    /// `try_`, `_timeout` and `_deadline` forms) stopped before its end:
    /// its first `sent` messages are committed, in order, and none after
    /// them; `source` says why it stopped ([`Error::Full`],
    /// [`Error::Timeout`], [`Error::Disconnected`], [`Error::Removed`],
    /// [`Error::Corrupted`], [`Error::MessageTooLarge`] for the message at
    /// index `sent`, ...). Every error of a non-empty batch comes in this
    /// form, `sent` 0 included, so a caller can always go on from the
    /// message at index `sent` (or past it, when it is too large).
    #[error("a batch stopped after {}: {source}", counted(*.sent, "committed message"))]
    BatchIncomplete {
        /// How many of the batch's first messages were committed.
        sent: usize,
        /// Why it stopped.
        source: Box<Error>,
    },
    /// Any other OS error.
    #[error("{call} on {channel} failed: {source}")]
    Os {
        /// The system call.
        call: &'static str,
        /// The key, id or path it was made on.
        channel: String,
        /// The OS error, with its errno.
        source: io::Error,
    },
}

/// `n` and `what`, plural but for 1: "1 byte", "0 bytes", "12 bytes".
fn counted(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// [`Error::PodMismatch`]'s text: the alignment when that is the reason,
/// else the lengths.
#[cfg(feature = "bytemuck")]
fn pod_mismatch(type_name: &str, len: usize, expected: usize, align: usize) -> String {
    if align > 8 {
        return format!(
            "{type_name} is aligned to {align} bytes, above the 8 that payloads are aligned \
             to in the ring: no message can be one"
        );
    }
    format!(
        "a message of {} is not a {type_name}, whose size is {}",
        byte_count(len),
        byte_count(expected)
    )
}

/// "1 byte", "0 bytes", "12 bytes".
#[cfg(any(feature = "serde", feature = "bytemuck"))]
pub(crate) fn byte_count(n: usize) -> String {
    counted(n, "byte")
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
