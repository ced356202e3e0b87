//! What every command shares: KEY, sizes, durations, modes, framings, and
//! opening (or creating) the channel a KEY names.
//!
//! Syntax is checked while parsing (a malformed value is a usage error,
//! exit 2); what a well-formed KEY names (a path, a channel) is looked up
//! when the command runs (exit 1 when it is not there).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use shmchan::{Channel, Error, Key, Options, admin};

use crate::Failure;

/// A KEY as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyArg {
    /// A raw key (0 is `IPC_PRIVATE`).
    Raw(i32),
    /// `id:N`, a segment id.
    Id(i32),
    /// A path for ftok.
    Path(PathBuf),
}

impl fmt::Display for KeyArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyArg::Raw(k) => write!(f, "{}", Key::from_raw(*k)),
            KeyArg::Id(id) => write!(f, "shmid {id}"),
            KeyArg::Path(p) => write!(f, "path {}", p.display()),
        }
    }
}

/// Parses a KEY: `id:N`; a number, decimal or `0x` hex, 32 bits (a
/// string that starts like a number must be one); else a path.
pub(crate) fn parse_key(s: &str) -> Result<KeyArg, String> {
    if let Some(id) = s.strip_prefix("id:") {
        return match id.parse::<i32>() {
            Ok(n) if n >= 0 => Ok(KeyArg::Id(n)),
            _ => Err(format!("'{id}' is not a segment id (id:N, N from 0)")),
        };
    }
    if s.is_empty() {
        return Err("an empty KEY names nothing".into());
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.starts_with(|c: char| c.is_ascii_digit()) {
        return raw_key(s).map(KeyArg::Raw).ok_or_else(|| {
            format!(
                "'{s}' is not a 32-bit key (decimal, or hex with 0x; \
                 write ./{s} for a file of that name)"
            )
        });
    }
    Ok(KeyArg::Path(PathBuf::from(s)))
}

/// A 32-bit key: `0x` hex, unsigned decimal, or negative decimal `key_t`.
fn raw_key(s: &str) -> Option<i32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok().map(|v| v as i32);
    }
    if s.starts_with('-') {
        return s.parse::<i32>().ok();
    }
    s.parse::<u32>().ok().map(|v| v as i32)
}

impl KeyArg {
    /// The System V key (`ftok` for a path).
    pub(crate) fn key(&self, proj: u8) -> Result<Key, Failure> {
        match self {
            KeyArg::Raw(k) => Ok(Key::from_raw(*k)),
            KeyArg::Id(_) => Err(Failure::Usage(format!(
                "{self} names an existing segment; creating needs a key or a path"
            ))),
            KeyArg::Path(p) => ftok(p, proj),
        }
    }

    /// The segment id of the channel named, found without joining it.
    pub(crate) fn shmid(&self, proj: u8) -> Result<i32, Failure> {
        match self {
            KeyArg::Id(id) => Ok(*id),
            _ => {
                let key = self.existing_key(proj)?;
                Ok(admin::find(key)?)
            }
        }
    }

    /// A key that can name an existing channel (not `IPC_PRIVATE`).
    fn existing_key(&self, proj: u8) -> Result<Key, Failure> {
        let key = self.key(proj)?;
        if key.is_private() {
            return Err(Failure::Usage(
                "key 0 is IPC_PRIVATE, which names no existing channel: use id:SHMID".into(),
            ));
        }
        Ok(key)
    }

    /// Opens the channel named (never creates).
    pub(crate) fn open(&self, proj: u8) -> Result<Channel, Failure> {
        match self {
            KeyArg::Id(id) => Ok(Channel::open_id(*id)?),
            _ => Ok(Channel::open(self.existing_key(proj)?)?),
        }
    }

    /// Opens the channel, or with `create` makes it first if it does not
    /// exist. Race-safe: a create that finds the key taken opens instead,
    /// and an open that finds it gone (last party just left) creates again.
    pub(crate) fn open_or_create(
        &self,
        proj: u8,
        create: Option<&Options>,
    ) -> Result<Channel, Failure> {
        let Some(opts) = create else {
            return self.open(proj);
        };
        let key = self.key(proj)?;
        let mut last = None;
        for _ in 0..5 {
            match Channel::create(key, opts) {
                Err(Error::AlreadyExists { channel }) => last = Some(channel),
                r => return Ok(r?),
            }
            match Channel::open(key) {
                Err(Error::NotFound { .. }) => continue,
                r => return Ok(r?),
            }
        }
        let channel = last.unwrap_or_else(|| key.to_string());
        Err(Error::AlreadyExists { channel }.into())
    }
}

/// `ftok`, with a missing path reported as such.
fn ftok(path: &std::path::Path, proj: u8) -> Result<Key, Failure> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(Failure::Runtime(match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "path {} does not exist (a KEY that is not a number or id:N is a path for ftok)",
                path.display()
            ),
            _ => format!("path {}: {e}", path.display()),
        }));
    }
    Ok(Key::ftok(path, proj)?)
}

/// Parses a size: an integer with an optional K, M or G suffix (powers of
/// 1024; `KiB`, `kb`, `B` and such are accepted too).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a size (like 65536, 64K, 1M, 1G)");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    num.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// A channel capacity: a size from 1 byte to 2 GiB (rounded up by the
/// library to a power of two, at least 4 KiB).
pub(crate) fn parse_capacity(s: &str) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    if bytes == 0 {
        return Err("a capacity of 0 bytes cannot hold a message".into());
    }
    if bytes > admin::MAX_CAPACITY {
        return Err(format!(
            "capacity {s} exceeds the maximum of 2G ({} bytes)",
            admin::MAX_CAPACITY
        ));
    }
    usize::try_from(bytes).map_err(|_| format!("capacity {s} does not fit this machine"))
}

/// A permission mode in octal: `600`, `0640`, `0o600`; at most `0777`.
pub(crate) fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("'{s}' is not an octal mode (like 600 or 0640)"))?;
    if mode > 0o777 {
        return Err(format!("mode {s} has bits beyond 0777"));
    }
    Ok(mode)
}

/// A group as given on the command line (`--group NAME|GID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupArg {
    /// A number: the gid as it is.
    Id(u32),
    /// A name, looked up when the command runs.
    Name(String),
}

impl GroupArg {
    /// The gid: the number, or the named group's (`getgrnam_r`).
    pub(crate) fn gid(&self) -> Result<u32, Failure> {
        match self {
            GroupArg::Id(gid) => Ok(*gid),
            GroupArg::Name(name) => admin::group_id(name)?
                .ok_or_else(|| Failure::Runtime(format!("no group named '{name}'"))),
        }
    }
}

/// Parses `--group`: digits are a gid (32 bits, not 4294967295, which is
/// `(gid_t)-1`); anything else is a group name.
pub(crate) fn parse_group(s: &str) -> Result<GroupArg, String> {
    if s.is_empty() {
        return Err("an empty group names nothing (a name or a gid)".into());
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(GroupArg::Name(s.to_owned()));
    }
    match s.parse::<u32>() {
        Ok(gid) if gid != u32::MAX => Ok(GroupArg::Id(gid)),
        _ => Err(format!("'{s}' is not a gid (0 to 4294967294)")),
    }
}

/// A duration: `500ms`, `2s`, `1.5s`, `1m`, `1h`; a plain number is
/// seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration (like 500ms, 2s, 1.5s, 1m)");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => num / 1000.0,
        "" | "s" => num,
        "m" | "min" => num * 60.0,
        "h" => num * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// How messages map to bytes on stdin and stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Framing {
    /// Each line, without its newline, is a message; recv prints each
    /// message followed by a newline.
    Lines,
    /// A stream of records: 4-byte little-endian length, then the payload.
    Len32,
    /// The byte stream in chunks of at most the maximum message size;
    /// recv writes the payloads back to back.
    Raw,
}

/// `--create` and the options of the channel it makes (send, recv).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CreateOpts {
    /// Create the channel if it does not exist (else open it).
    #[arg(long)]
    pub(crate) create: bool,
    /// With --create: data bytes in the ring (like 64K, 1M; rounded up to
    /// a power of two, at least 4K) [default: 4M].
    #[arg(long, value_name = "BYTES", value_parser = parse_capacity, requires = "create")]
    pub(crate) capacity: Option<usize>,
    /// With --create: permission bits, in octal.
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode, requires = "create")]
    pub(crate) mode: Option<u32>,
    /// With --create: keep the channel after the last party leaves.
    #[arg(long, requires = "create")]
    pub(crate) persist: bool,
}

impl CreateOpts {
    /// The options to create with, if --create was given.
    pub(crate) fn options(&self) -> Option<Options> {
        self.create
            .then(|| options(self.capacity, self.mode, self.persist))
    }
}

/// Library options from the command's values (library defaults otherwise).
pub(crate) fn options(capacity: Option<usize>, mode: Option<u32>, persist: bool) -> Options {
    let mut opts = Options::new().persist(persist);
    if let Some(c) = capacity {
        opts = opts.capacity(c);
    }
    if let Some(m) = mode {
        opts = opts.mode(m);
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(parse_key("0x10"), Ok(KeyArg::Raw(16)));
        assert_eq!(parse_key("0xffffffff"), Ok(KeyArg::Raw(-1)));
        assert_eq!(parse_key("2147483648"), Ok(KeyArg::Raw(i32::MIN)));
        assert_eq!(parse_key("-5"), Ok(KeyArg::Raw(-5)));
        assert_eq!(parse_key("id:7"), Ok(KeyArg::Id(7)));
        assert_eq!(parse_key("/tmp"), Ok(KeyArg::Path("/tmp".into())));
        for bad in [
            "0xZZ",
            "0x",
            "4294967296",
            "12ab",
            "id:",
            "id:-1",
            "id:x",
            "",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_capacity("0").is_err());
        assert!(parse_capacity("3G").is_err());
        assert_eq!(parse_capacity("2G"), Ok(2 << 30));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("0o666"), Ok(0o666));
        for bad in ["rw", "800", "1777", "-1", ""] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups() {
        assert_eq!(parse_group("0"), Ok(GroupArg::Id(0)));
        assert_eq!(parse_group("54321"), Ok(GroupArg::Id(54321)));
        assert_eq!(parse_group("staff"), Ok(GroupArg::Name("staff".into())));
        assert_eq!(parse_group("-1"), Ok(GroupArg::Name("-1".into())));
        for bad in ["", "4294967295", "4294967296"] {
            assert!(parse_group(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "1x", "-1s", "1e999", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
