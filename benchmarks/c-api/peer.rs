//! One side of the C-against-Rust benchmark (benchmarks/c-api/run.sh)
//! through the Rust API: the same work as peer.c does through the C
//! interface (see there), with `Sender::send` and `Receiver::recv_into`.
//! Built as an example of the ffi crate (`bench_peer`), in the same
//! profile as libshmchan, so both sides run the same library code.

use std::process::Command;
use std::time::Instant;

use shmchan::{Channel, Key, Options};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("recv") if args.len() == 5 => recv_side(args[2].parse()?, args[3].parse()?, &args[4]),
        Some("send") if args.len() == 5 => {
            send_side(args[2].parse()?, args[3].parse()?, args[4].parse()?)
        }
        _ => Err("usage: bench_peer recv SIZE COUNT SENDER | bench_peer send ID SIZE COUNT".into()),
    }
}

fn send_side(id: i32, size: usize, count: u64) -> Res<()> {
    let mut tx = Channel::open_id(id)?.sender()?;
    let mut msg = vec![0u8; size.max(8)];
    for i in 0..count {
        let n = size.min(8);
        msg[..n].copy_from_slice(&i.to_ne_bytes()[..n]);
        tx.send(&msg[..size])?;
    }
    Ok(())
}

/// Reads every byte: a wrapping sum of 8-byte words and of the bytes
/// after the last whole word, as peer.c's `touch`.
fn touch(p: &[u8]) -> u64 {
    let words = p.chunks_exact(8);
    let rest: u64 = words.remainder().iter().map(|&b| u64::from(b)).sum();
    words
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or_default()))
        .fold(rest, u64::wrapping_add)
}

fn recv_side(size: usize, count: u64, sender: &str) -> Res<()> {
    let chan = Channel::create(Key::PRIVATE, &Options::new())?;
    let mut rx = chan.receiver()?;
    let mut child = Command::new(sender)
        .args([
            "send",
            &chan.id().to_string(),
            &size.to_string(),
            &count.to_string(),
        ])
        .spawn()?;
    let mut buf = Vec::with_capacity(size);
    let mut sum = 0u64;
    let mut first = Instant::now();
    for i in 0..count {
        let len = rx.recv_into(&mut buf)?;
        if len != size {
            return Err(format!("message {i} has {len} bytes, not {size}").into());
        }
        if i == 0 {
            first = Instant::now();
        }
        sum = sum.wrapping_add(touch(&buf));
    }
    let secs = first.elapsed().as_secs_f64();
    let ok = child.wait()?.success();
    println!(
        "{:.0} msg/s ({count} messages of {size} B in {secs:.3} s, sum {sum})",
        (count - 1) as f64 / secs
    );
    if ok {
        Ok(())
    } else {
        Err("the sender failed".into())
    }
}
