//! Formatting for people: sizes, user names, times, key names.

use shmchan::Key;
use shmchan::admin::Presence;

/// `16 B`, `4 KiB`, `1.5 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96 KiB would print as "1024.0 KiB": that is 1.0 MiB.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The key as `ipcs` prints it: `0x0000abcd`.
pub(crate) fn key(key: Key) -> String {
    format!("{:#010x}", key.raw() as u32)
}

/// A mode as four octal digits: `0600`.
pub(crate) fn mode(mode: u32) -> String {
    format!("{mode:04o}")
}

/// `attached`, `gone` or `never`.
pub(crate) fn presence(p: Presence) -> &'static str {
    match p {
        Presence::Attached => "attached",
        Presence::Gone => "gone",
        Presence::Never => "never",
    }
}

/// A user's name (`getpwuid_r`, every name service source), else the uid
/// as a number.
pub(crate) fn user(uid: u32) -> String {
    shmchan::admin::user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// A group's name (`getgrgid_r`, every name service source), else the gid
/// as a number.
pub(crate) fn group(gid: u32) -> String {
    shmchan::admin::group_name(gid).unwrap_or_else(|| gid.to_string())
}

/// Seconds since the epoch as `YYYY-MM-DD hh:mm:ss UTC`.
pub(crate) fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1 << 20), "1 MiB");
        assert_eq!(bytes(1_048_536), "1.0 MiB");
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn keys_and_modes() {
        assert_eq!(key(Key::from_raw(-1)), "0xffffffff");
        assert_eq!(mode(0o600), "0600");
    }
}
