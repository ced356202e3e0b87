//! `shmchan stat KEY`: one channel in detail, once or live (`--watch`).

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use shmchan::admin::{self, ChannelInfo, Counters, Kind, SegmentInfo};

use crate::Failure;
use crate::args::{KeyArg, parse_duration, parse_key};
use crate::human;
use crate::ls::{Row, json};

/// Show one channel in detail; --watch redraws it live.
///
/// Header fields, counters (messages and bytes each way, stalls, parks,
/// wake-ups) and fill level; with --watch, rates per second too.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The channel's KEY.
    #[arg(value_parser = parse_key, allow_negative_numbers = true)]
    key: KeyArg,
    /// Print one JSON document (shape in docs/cli.md).
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Redraw every SECONDS (like 1, 0.5, 2s), with rates per second, until
    /// Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = parse_interval)]
    watch: Option<Duration>,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d < Duration::from_millis(10) => Err(format!("a watch interval of {s} is too short")),
        d => Ok(d),
    }
}

/// `stat --json`: the `ls` row plus the detail.
#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    row: Row,
    creator_pid: u32,
    created: u64,
    fill: f64,
    membarrier: bool,
    sem_gid: Option<u32>,
    sent: Side,
    received: Side,
    lane_info: Vec<Lane>,
}

/// One lane in `stat --json`.
#[derive(Serialize)]
struct Lane {
    sender: &'static str,
    sessions: u64,
    queued: u64,
    sent: Side,
}

#[derive(Serialize, Clone, Copy)]
struct Side {
    messages: u64,
    bytes: u64,
    stalls: u64,
    parks: u64,
    wakes: u64,
    expired: u64,
}

impl From<Counters> for Side {
    fn from(c: Counters) -> Side {
        Side {
            messages: c.messages,
            bytes: c.bytes,
            stalls: c.stalls,
            parks: c.parks,
            wakes: c.wakes,
            expired: c.expired,
        }
    }
}

pub(crate) fn run(args: Args, proj: u8) -> Result<(), Failure> {
    let shmid = args.key.shmid(proj)?;
    match args.watch {
        Some(every) => watch(shmid, every),
        None => once(shmid, args.json),
    }
}

fn once(shmid: i32, as_json: bool) -> Result<(), Failure> {
    let (seg, chan) = channel(shmid)?;
    let text = if as_json {
        json(&detail(&seg, &chan))?
    } else {
        render(&seg, &chan, None)
    };
    print(&text)
}

fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Failure::output)
}

/// The segment, which must be a channel.
fn channel(shmid: i32) -> Result<(SegmentInfo, ChannelInfo), Failure> {
    let seg = admin::inspect(shmid)?;
    match &seg.kind {
        Kind::Channel(c) => {
            let c = c.clone();
            Ok((seg, c))
        }
        Kind::Foreign { reason } | Kind::Unreadable { reason } => Err(Failure::Runtime(format!(
            "shmid {shmid} is not a shmchan channel: {reason}"
        ))),
        _ => Err(Failure::Runtime(format!(
            "shmid {shmid} is not a shmchan channel"
        ))),
    }
}

fn detail(seg: &SegmentInfo, chan: &ChannelInfo) -> Detail {
    Detail {
        row: Row::of(seg),
        creator_pid: chan.creator_pid,
        created: chan.created,
        fill: fill(chan),
        membarrier: chan.membarrier,
        sem_gid: chan.sem_gid,
        sent: chan.sent.into(),
        received: chan.received.into(),
        lane_info: chan
            .lane_info
            .iter()
            .map(|l| Lane {
                sender: human::presence(l.sender),
                sessions: l.sessions,
                queued: l.queued,
                sent: l.sent.into(),
            })
            .collect(),
    }
}

fn fill(chan: &ChannelInfo) -> f64 {
    if chan.capacity == 0 {
        return 0.0;
    }
    chan.queued as f64 / chan.capacity as f64
}

/// Redraws until Ctrl-C (whose default action ends the process), or until
/// the channel is gone.
fn watch(shmid: i32, every: Duration) -> Result<(), Failure> {
    let mut prev: Option<(Instant, ChannelInfo)> = None;
    loop {
        let (seg, chan) = channel(shmid).map_err(|e| match e {
            Failure::Runtime(m) => Failure::Runtime(format!("{m} (any more)")),
            e => e,
        })?;
        let now = Instant::now();
        let rates = prev
            .as_ref()
            .map(|(t, p)| Rates::between(p, &chan, now - *t));
        let text = render(&seg, &chan, rates);
        let secs = every.as_secs_f64();
        print(&format!(
            "\x1b[H\x1b[2J{text}\nevery {secs}s; Ctrl-C to stop\n"
        ))?;
        prev = Some((now, chan));
        std::thread::sleep(every);
    }
}

/// Messages and bytes per second, per side, over the last interval.
#[derive(Clone, Copy)]
struct Rates {
    sent: (f64, f64),
    received: (f64, f64),
}

impl Rates {
    fn between(old: &ChannelInfo, new: &ChannelInfo, dt: Duration) -> Rates {
        let dt = dt.as_secs_f64().max(1e-9);
        let per = |a: u64, b: u64| b.wrapping_sub(a) as f64 / dt;
        Rates {
            sent: (
                per(old.sent.messages, new.sent.messages),
                per(old.sent.bytes, new.sent.bytes),
            ),
            received: (
                per(old.received.messages, new.received.messages),
                per(old.received.bytes, new.received.bytes),
            ),
        }
    }
}

fn render(seg: &SegmentInfo, chan: &ChannelInfo, rates: Option<Rates>) -> String {
    let row = Row::of(seg);
    let mut t = String::new();
    let mut field = |name: &str, value: String| t += &format!("{name:<10}{value}\n");
    field("key", row.key.clone());
    field("shmid", row.shmid.to_string());
    field("semid", row.semid.map_or("-".into(), |s| s.to_string()));
    let reason = row
        .reason
        .as_ref()
        .map_or(String::new(), |r| format!(": {r}"));
    field("state", format!("{}{reason}", row.state));
    field(
        "capacity",
        format!(
            "{} (largest message {} bytes)",
            human::bytes(chan.capacity),
            chan.max_message
        ),
    );
    field(
        "queued",
        format!(
            "{} ({:.1}% full)",
            human::bytes(chan.queued),
            fill(chan) * 100.0
        ),
    );
    field("persist", if chan.persist { "yes" } else { "no" }.into());
    field(
        "wake-up",
        if chan.membarrier {
            "membarrier (no fence per message)"
        } else {
            "fence per message"
        }
        .into(),
    );
    field(
        "parties",
        chan.parties.map_or("-".into(), |p| p.to_string()),
    );
    field("sender", human::presence(chan.sender).into());
    if chan.lanes > 1 {
        for (i, lane) in chan.lane_info.iter().enumerate() {
            field(
                &format!("lane {i}"),
                format!(
                    "{}, {} sessions, {} queued, {} messages sent",
                    human::presence(lane.sender),
                    lane.sessions,
                    human::bytes(lane.queued),
                    lane.sent.messages
                ),
            );
        }
    }
    field("receiver", human::presence(chan.receiver).into());
    field("mode", permissions(&row, chan));
    field(
        "created",
        format!("{} by pid {}", human::utc(chan.created), chan.creator_pid),
    );
    t + &counters(chan, rates)
}

/// `0660, owner alice, group staff`; the semaphore set's group too when it
/// is not the segment's (its members could attach but not take part).
fn permissions(row: &Row, chan: &ChannelInfo) -> String {
    let mut t = format!("{}, owner {}, group {}", row.mode, row.owner, row.group);
    if let Some(gid) = chan.sem_gid.filter(|&g| g != row.gid) {
        t += &format!(" (semaphore set: group {})", human::group(gid));
    }
    t
}

fn counters(chan: &ChannelInfo, rates: Option<Rates>) -> String {
    let head = [
        "", "messages", "bytes", "stalls", "parks", "wake-ups", "expired", "msg/s", "bytes/s",
    ];
    let side = |name: &str, c: &Counters, r: Option<(f64, f64)>| {
        let (m, b) = r.map_or(("-".into(), "-".into()), |(m, b)| {
            (format!("{m:.0}"), human::bytes(b as u64) + "/s")
        });
        [
            name.to_owned(),
            c.messages.to_string(),
            human::bytes(c.bytes),
            c.stalls.to_string(),
            c.parks.to_string(),
            c.wakes.to_string(),
            c.expired.to_string(),
            m,
            b,
        ]
    };
    let rows = [
        head.map(String::from),
        side("sent", &chan.sent, rates.map(|r| r.sent)),
        side("received", &chan.received, rates.map(|r| r.received)),
    ];
    let mut t = String::from("\n");
    for r in &rows {
        let cells: Vec<String> = r.iter().map(|c| format!("{c:<10}")).collect();
        t += cells.join(" ").trim_end();
        t += "\n";
    }
    t + "stalls: times the sender found the ring full, or the receiver found it empty; \
         expired: parks that ran out instead of being woken\n"
}
