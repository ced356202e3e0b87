//! `shmchan gc`: remove stale channels and orphaned semaphore sets.

use std::io::Write;

use shmchan::admin::{self, Found, GcEntry, GcOptions, Outcome, Scope};

use crate::Failure;
use crate::args::{KeyArg, parse_key};
use crate::human;

/// Remove stale channels and orphaned semaphore sets.
///
/// Removes every stale channel (no party alive, not persisting) that holds
/// no message (with --queued, also those that do), every channel segment
/// whose semaphore set is gone and that nobody has attached, and every
/// semaphore set orphaned by a removed channel; says what it removed and
/// what it kept.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove stale channels that still hold messages.
    #[arg(long)]
    queued: bool,
    /// Only these channels (and orphaned sets at these keys); default: the
    /// whole host.
    #[arg(value_parser = parse_key, allow_negative_numbers = true, value_name = "KEY")]
    keys: Vec<KeyArg>,
}

pub(crate) fn run(args: Args, proj: u8) -> Result<(), Failure> {
    let opts = GcOptions {
        queued: args.queued,
        dry_run: args.dry_run,
        scope: scope(&args.keys, proj)?,
    };
    let entries = admin::gc(&opts)?;
    let mut text = String::new();
    for e in &entries {
        text += &line(e);
        text += "\n";
    }
    if entries.is_empty() {
        text += "nothing to collect\n";
    }
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(Failure::output)?;
    let failed = entries
        .iter()
        .any(|e| matches!(e.outcome, Outcome::Failed(_)));
    if failed {
        return Err(Failure::Reported(1));
    }
    Ok(())
}

fn scope(keys: &[KeyArg], proj: u8) -> Result<Option<Scope>, Failure> {
    if keys.is_empty() {
        return Ok(None);
    }
    let mut scope = Scope::default();
    for k in keys {
        match k {
            KeyArg::Id(id) => scope.shmids.push(*id),
            _ => scope.keys.push(k.key(proj)?),
        }
    }
    Ok(Some(scope))
}

fn line(e: &GcEntry) -> String {
    let what = match &e.found {
        Found::Channel {
            shmid,
            key,
            semid,
            queued,
            orphaned,
        } => {
            let kind = if *orphaned {
                "orphaned channel segment"
            } else {
                "stale channel"
            };
            let semid = semid.map_or(String::new(), |s| format!(", semid {s}"));
            let queued = match *queued {
                0 => String::new(),
                q => format!(", {} queued", human::bytes(q)),
            };
            format!(
                "{kind} key {} (shmid {shmid}{semid}{queued})",
                human::key(*key)
            )
        }
        Found::OrphanSet { semid, key } => {
            format!(
                "orphaned semaphore set semid {semid} (key {})",
                human::key(*key)
            )
        }
        _ => "something".into(),
    };
    match &e.outcome {
        Outcome::Removed => format!("removed {what}"),
        Outcome::WouldRemove => format!("would remove {what}"),
        Outcome::Kept(why) => format!("kept {what}: {why}"),
        Outcome::Failed(why) => format!("failed to remove {what}: {why}"),
    }
}
