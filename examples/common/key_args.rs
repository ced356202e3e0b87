//! The examples' key arguments, `[PATH [PROJ]]`: the file that `ftok`
//! turns into a key, and the project id.

use std::error::Error;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::failure::fail;

const DEFAULT_PROJ: u8 = b'A';

/// `[PATH [PROJ]]` from `operands` (the arguments after any options), with
/// `default_path` and project id `A` for what is missing; `usage` is the
/// error for more.
pub(crate) fn parse_key(
    operands: impl IntoIterator<Item = OsString>,
    default_path: &str,
    usage: &str,
) -> Result<(PathBuf, u8), Box<dyn Error>> {
    let mut args = operands.into_iter();
    let path = args
        .next()
        .map_or_else(|| default_path.into(), PathBuf::from);
    let proj = match args.next() {
        None => DEFAULT_PROJ,
        Some(p) => parse_proj(&p.to_string_lossy())?,
    };
    if args.next().is_some() {
        return Err(fail(usage.into()));
    }
    Ok((path, proj))
}

/// One character (`A`) or a number from 1 to 255.
fn parse_proj(s: &str) -> Result<u8, Box<dyn Error>> {
    let proj = match s.as_bytes() {
        [c] if !c.is_ascii_digit() => Some(*c),
        _ => s.parse::<u8>().ok(),
    };
    match proj {
        Some(p) if p != 0 => Ok(p),
        _ => Err(fail(format!(
            "PROJ must be one character or a number from 1 to 255, not {s:?}"
        ))),
    }
}
