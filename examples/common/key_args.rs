//! The server's and the client's arguments, `[PATH [PROJ]]`: the file that
//! `ftok` turns into a key, and the project id.

use std::error::Error;
use std::path::PathBuf;

use crate::failure::fail;

const DEFAULT_PATH: &str = "/tmp/shmchan-example";
const DEFAULT_PROJ: u8 = b'A';

/// `[PATH [PROJ]]`, with the defaults; `usage` is the error for more.
pub(crate) fn parse_args(usage: &str) -> Result<(PathBuf, u8), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let path = args
        .next()
        .map_or_else(|| DEFAULT_PATH.into(), PathBuf::from);
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
