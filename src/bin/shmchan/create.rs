//! `shmchan create KEY`: make a channel that outlives the command.

use std::io::Write;

use shmchan::Channel;

use crate::Failure;
use crate::args::{GroupArg, KeyArg, options, parse_capacity, parse_group, parse_key, parse_mode};
use crate::human;

/// Create a persisting channel; print its key, shmid and semid.
///
/// The channel outlives this command and its parties, until `shmchan rm`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The channel's KEY (0 makes a private channel, named by its id).
    #[arg(value_parser = parse_key, allow_negative_numbers = true)]
    key: KeyArg,
    /// Data bytes in the ring (like 64K, 1M; rounded up to a power of two,
    /// at least 4K) [default: 4M].
    #[arg(long, value_name = "BYTES", value_parser = parse_capacity)]
    capacity: Option<usize>,
    /// Permission bits of the segment and the semaphore set, in octal
    /// [default: 600].
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    mode: Option<u32>,
    /// The group of the segment and the semaphore set, by name or gid
    /// [default: the creator's]. With --mode 660 its members may use the
    /// channel.
    #[arg(long, value_name = "NAME|GID", value_parser = parse_group)]
    group: Option<GroupArg>,
    /// How many senders may be attached at once, each on a lane of its own
    /// of --capacity bytes (1 to 64) [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    max_senders: Option<u32>,
    /// Keep the channel after its last party leaves. Always on for create
    /// (accepted for symmetry with send/recv --create).
    #[arg(long)]
    persist: bool,
}

pub(crate) fn run(args: Args, proj: u8) -> Result<(), Failure> {
    let key = args.key.key(proj)?;
    let mut opts = options(args.capacity, args.mode, true);
    if let Some(group) = &args.group {
        opts = opts.group(group.gid()?);
    }
    if let Some(n) = args.max_senders {
        opts = opts.max_senders(n);
    }
    let chan = Channel::create(key, &opts)?;
    let text = format!(
        "key       {}\nshmid     {}\nsemid     {}\ncapacity  {}\n{}",
        human::key(chan.key()),
        chan.id(),
        chan.sem_id(),
        human::bytes(chan.capacity() as u64),
        match args.max_senders {
            Some(n) if n > 1 => format!("senders   {n} (a lane of that capacity each)\n"),
            _ => String::new(),
        },
    );
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(Failure::output)
}
