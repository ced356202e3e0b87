//! `shmchan rm KEY...`: remove channels (segment and semaphore set).

use std::io::Write;

use shmchan::Error;
use shmchan::admin::{self, ChannelInfo, Kind, Removed};

use crate::Failure;
use crate::args::{KeyArg, parse_key};
use crate::human;

/// Remove channels (segment and semaphore set).
///
/// Refuses a channel with a live party unless --force, and any segment
/// that is not a shmchan channel.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The channels' KEYs.
    #[arg(required = true, value_parser = parse_key, allow_negative_numbers = true)]
    keys: Vec<KeyArg>,
    /// Remove even a channel in use: its parties get a "removed" error.
    #[arg(long, short)]
    force: bool,
}

pub(crate) fn run(args: Args, proj: u8) -> Result<(), Failure> {
    // The worst exit code so far: 1 for a runtime error, 2 for a usage one.
    let mut code = 0;
    for key in &args.keys {
        let (msg, c) = match remove(key, proj, args.force) {
            Ok(r) => {
                say(&removed_line(&r))?;
                continue;
            }
            Err(Failure::Runtime(msg)) => (msg, 1),
            Err(Failure::Usage(msg)) => (msg, 2),
            Err(e) => return Err(e),
        };
        crate::complain(&format!("shmchan rm: {msg}"));
        code = code.max(c);
    }
    match code {
        0 => Ok(()),
        c => Err(Failure::Reported(c)),
    }
}

fn say(line: &str) -> Result<(), Failure> {
    writeln!(std::io::stdout(), "{line}").map_err(Failure::output)
}

fn remove(key: &KeyArg, proj: u8, force: bool) -> Result<Removed, Failure> {
    let shmid = key.shmid(proj)?;
    match admin::remove(shmid, force) {
        Ok(r) => Ok(r),
        Err(Error::Busy { parties, .. }) => Err(Failure::Runtime(in_use(key, shmid, parties))),
        Err(Error::NotAChannel { reason, .. }) => {
            let what = match admin::inspect(shmid).map(|s| s.kind) {
                Ok(Kind::Unreadable { .. }) => "cannot be read",
                _ => "is not a shmchan channel",
            };
            Err(Failure::Runtime(format!(
                "{key} (shmid {shmid}) {what} ({reason}); not removed"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Why a channel in use was refused, with who is using it.
fn in_use(key: &KeyArg, shmid: i32, parties: u32) -> String {
    let roles = match admin::inspect(shmid).map(|s| s.kind) {
        Ok(Kind::Channel(c)) => roles(&c),
        _ => String::new(),
    };
    format!(
        "{key} (shmid {shmid}) is in use ({parties} parties{roles}); not removed: \
         --force removes it anyway"
    )
}

fn roles(c: &ChannelInfo) -> String {
    format!(
        ", sender {}, receiver {}",
        human::presence(c.sender),
        human::presence(c.receiver)
    )
}

fn removed_line(r: &Removed) -> String {
    let mut line = format!("removed key {} (shmid {}", human::key(r.key), r.shmid);
    if let Some(semid) = r.semid {
        line += &format!(", semid {semid}");
    }
    line += ")";
    if r.queued > 0 {
        line += &format!(", discarding {} queued", human::bytes(r.queued));
    }
    line
}
