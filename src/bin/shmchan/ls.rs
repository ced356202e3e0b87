//! `shmchan ls`: every channel on the host, as `ipcs -m` lists segments.
//! Reads only: attaches read-only, never joins, never changes a byte.

use std::io::Write;

use serde::Serialize;
use shmchan::admin::{self, ChannelInfo, Kind, Presence, SegmentInfo, State};

use crate::Failure;
use crate::human;

/// List every shmchan channel on the host.
///
/// Key, ids, capacity, bytes queued, sender and receiver (attached, gone,
/// never), mode, owner, group and state (ok, stale, corrupt, ...). Reads only.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Also list segments that are not shmchan channels, marked foreign
    /// (segments that cannot be read are always listed: they may be
    /// channels).
    #[arg(long)]
    all: bool,
    /// Print one JSON document (shape in docs/cli.md).
    #[arg(long)]
    json: bool,
}

/// One row of `ls`: every field always present (`null` where it does not
/// apply), so that the JSON shape is stable.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) key: String,
    pub(crate) shmid: i32,
    pub(crate) semid: Option<i32>,
    pub(crate) shmchan: bool,
    pub(crate) state: &'static str,
    pub(crate) reason: Option<String>,
    pub(crate) capacity: Option<u64>,
    pub(crate) max_message: Option<u64>,
    pub(crate) queued: Option<u64>,
    pub(crate) persist: Option<bool>,
    pub(crate) parties: Option<u32>,
    /// How many senders the channel takes at once (its lanes).
    pub(crate) lanes: Option<u32>,
    /// How many of its lanes a sender holds now.
    pub(crate) senders: Option<u32>,
    pub(crate) sender: Option<&'static str>,
    pub(crate) receiver: Option<&'static str>,
    pub(crate) mode: String,
    pub(crate) uid: u32,
    pub(crate) owner: String,
    pub(crate) gid: u32,
    pub(crate) group: String,
    pub(crate) size: u64,
    pub(crate) nattch: u64,
    pub(crate) removed: bool,
}

#[derive(Serialize)]
struct Listing {
    channels: Vec<Row>,
}

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    let segs = admin::list()?;
    let rows: Vec<Row> = segs
        .iter()
        .filter(|s| args.all || !matches!(s.kind, Kind::Foreign { .. }))
        .map(Row::of)
        .collect();
    let text = if args.json {
        json(&Listing { channels: rows })?
    } else {
        table(&rows)
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(Failure::output)
}

/// Pretty JSON and a final newline.
pub(crate) fn json(value: &impl Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| Failure::Runtime(format!("JSON: {e}")))
}

impl Row {
    pub(crate) fn of(seg: &SegmentInfo) -> Row {
        let mut row = Row {
            key: human::key(seg.key),
            shmid: seg.shmid,
            semid: None,
            shmchan: false,
            state: "foreign",
            reason: None,
            capacity: None,
            max_message: None,
            queued: None,
            persist: None,
            parties: None,
            lanes: None,
            senders: None,
            sender: None,
            receiver: None,
            mode: human::mode(seg.mode),
            uid: seg.uid,
            owner: human::user(seg.uid),
            gid: seg.gid,
            group: human::group(seg.gid),
            size: seg.size as u64,
            nattch: seg.nattch,
            removed: seg.removed,
        };
        match &seg.kind {
            Kind::Channel(c) => row.fill(c),
            Kind::Foreign { reason } => row.reason = Some(reason.clone()),
            Kind::Unreadable { reason } => {
                row.state = "unreadable";
                row.reason = Some(reason.clone());
            }
            _ => row.state = "unknown",
        }
        row
    }

    fn fill(&mut self, c: &ChannelInfo) {
        let (state, reason) = state(&c.state);
        self.shmchan = true;
        self.state = state;
        self.reason = reason;
        if matches!(c.state, State::Initialising | State::Corrupt(_)) {
            return; // the header's numbers cannot be trusted
        }
        self.semid = (c.state != State::Orphaned).then_some(c.semid);
        self.capacity = Some(c.capacity);
        self.max_message = Some(c.max_message);
        self.queued = Some(c.queued);
        self.persist = Some(c.persist);
        self.parties = c.parties;
        self.sender = Some(human::presence(c.sender));
        self.lanes = Some(c.lanes);
        self.senders = Some(
            c.lane_info
                .iter()
                .filter(|l| l.sender == Presence::Attached)
                .count() as u32,
        );
        self.receiver = Some(human::presence(c.receiver));
    }
}

/// A state's name, and the reason that goes with it.
fn state(s: &State) -> (&'static str, Option<String>) {
    match s {
        State::Ok => ("ok", None),
        State::Stale => ("stale", None),
        State::Initialising => ("initialising", None),
        State::Closed => ("closed", None),
        State::Orphaned => ("orphaned", Some("its semaphore set is gone".into())),
        State::Corrupt(why) => ("corrupt", Some(why.clone())),
        _ => ("unknown", None),
    }
}

const HEADINGS: [&str; 11] = [
    "KEY", "SHMID", "SEMID", "CAPACITY", "QUEUED", "SENDER", "RECEIVER", "MODE", "OWNER", "GROUP",
    "STATE",
];

/// The rows as an aligned table (a header line even when empty).
fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 11]> = rows.iter().map(cells).collect();
    let mut widths = HEADINGS.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut text = line(&HEADINGS.map(String::from), &widths);
    for row in &cells {
        text += &line(row, &widths);
    }
    text
}

fn line(cells: &[String; 11], widths: &[usize; 11]) -> String {
    let mut out = String::new();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            out += cell; // the last column is not padded
        } else {
            out += &format!("{cell:<w$}  ");
        }
    }
    out + "\n"
}

/// The SENDER column: the sender's state, or for a channel of several
/// lanes how many of them a sender holds (`2/4 attached`).
fn sender_cell(r: &Row) -> String {
    match (r.lanes, r.senders) {
        (Some(lanes), Some(held)) if lanes > 1 => format!("{held}/{lanes} attached"),
        _ => r.sender.unwrap_or("-").to_owned(),
    }
}

fn cells(r: &Row) -> [String; 11] {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut state = r.state.to_owned();
    if r.persist == Some(true) {
        state += ", persists";
    }
    if r.removed {
        state += ", removed";
    }
    if let Some(why) = &r.reason {
        state += &format!(": {why}");
    }
    [
        r.key.clone(),
        r.shmid.to_string(),
        opt(r.semid.map(|s| s.to_string())),
        opt(r.capacity.map(human::bytes)),
        opt(r.queued.map(human::bytes)),
        sender_cell(r),
        r.receiver.unwrap_or("-").to_owned(),
        r.mode.clone(),
        r.owner.clone(),
        r.group.clone(),
        state,
    ]
}
