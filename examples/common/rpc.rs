//! What `rpc_server` and `rpc_client` agree on: the default key file, the
//! option parser, and the messages. Every message is one line of text (the
//! payload of a call may be any bytes), a verb and its arguments:
//!
//! ```text
//! client -> server, on the server's channel       server -> client, on the client's own
//! hello SHMID   (first: where to answer)          welcome ID      (the client's SenderId)
//! call SEQ TEXT (numbered from 1)                 result SEQ TEXT (TEXT in capitals)
//! bye           (last)                            bye COUNT       (calls answered)
//!                                                 error WHAT      (a request it refused)
//! ```
//!
//! Each program uses one direction of each message; the `mod` line that
//! includes this file allows the other half to go unused.

use std::error::Error;
use std::ffi::OsString;

use crate::failure::fail;

/// The key file when none is given: not the tutorial pair's, so that
/// both servers can run at once.
pub(crate) const DEFAULT_PATH: &str = "/tmp/shmchan-rpc";

/// Takes `flag N` (a number) out of `args`, wherever it stands; `None` if
/// it is not there.
pub(crate) fn take_number(
    args: &mut Vec<OsString>,
    flag: &str,
) -> Result<Option<u64>, Box<dyn Error>> {
    let Some(at) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    args.remove(at);
    if at == args.len() {
        return Err(fail(format!("{flag} needs a number")));
    }
    let value = args.remove(at);
    match value.to_str().and_then(|v| v.parse().ok()) {
        Some(n) => Ok(Some(n)),
        None => Err(fail(format!("{flag} needs a number, not {value:?}"))),
    }
}

/// `1 call`, `3 calls`.
pub(crate) fn calls(n: u64) -> String {
    match n {
        1 => "1 call".into(),
        n => format!("{n} calls"),
    }
}

/// A message from a client to the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request<'a> {
    /// The client's first message: the id of the private channel on which
    /// it takes its answers.
    Hello { answers: i32 },
    /// Call number `seq`: put `text` in capitals.
    Call { seq: u64, text: &'a [u8] },
    /// The client's last message.
    Bye,
}

/// A message from the server to one client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer<'a> {
    /// To `hello`: the client's `SenderId`, as the server sees it.
    Welcome { id: &'a str },
    /// To call number `seq`.
    Result { seq: u64, text: &'a [u8] },
    /// To `bye`: how many calls the server answered for this client.
    Bye { answered: u64 },
    /// A request the server could not make sense of.
    Error { what: &'a str },
}

impl Request<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Request::Hello { answers } => format!("hello {answers}").into_bytes(),
            Request::Call { seq, text } => [format!("call {seq} ").as_bytes(), text].concat(),
            Request::Bye => b"bye".to_vec(),
        }
    }

    /// `None` for anything that is not a request.
    pub(crate) fn decode(msg: &[u8]) -> Option<Request<'_>> {
        match split(msg) {
            (b"hello", id) => Some(Request::Hello {
                answers: number(id)?,
            }),
            (b"call", rest) => {
                let (seq, text) = split(rest);
                Some(Request::Call {
                    seq: number(seq)?,
                    text,
                })
            }
            (b"bye", b"") => Some(Request::Bye),
            _ => None,
        }
    }
}

impl Answer<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Answer::Welcome { id } => format!("welcome {id}").into_bytes(),
            Answer::Result { seq, text } => [format!("result {seq} ").as_bytes(), text].concat(),
            Answer::Bye { answered } => format!("bye {answered}").into_bytes(),
            Answer::Error { what } => format!("error {what}").into_bytes(),
        }
    }

    /// `None` for anything that is not an answer.
    pub(crate) fn decode(msg: &[u8]) -> Option<Answer<'_>> {
        match split(msg) {
            (b"welcome", id) => Some(Answer::Welcome {
                id: std::str::from_utf8(id).ok()?,
            }),
            (b"result", rest) => {
                let (seq, text) = split(rest);
                Some(Answer::Result {
                    seq: number(seq)?,
                    text,
                })
            }
            (b"bye", n) => Some(Answer::Bye {
                answered: number(n)?,
            }),
            (b"error", what) => Some(Answer::Error {
                what: std::str::from_utf8(what).ok()?,
            }),
            _ => None,
        }
    }
}

/// The bytes before the first space, and those after it.
fn split(msg: &[u8]) -> (&[u8], &[u8]) {
    match msg.iter().position(|&b| b == b' ') {
        Some(at) => (&msg[..at], &msg[at + 1..]),
        None => (msg, &[]),
    }
}

/// A decimal number, and nothing else.
fn number<T: std::str::FromStr>(digits: &[u8]) -> Option<T> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_decodes_to_itself() {
        let requests = [
            Request::Hello { answers: 42 },
            Request::Call {
                seq: 7,
                text: b"two words",
            },
            Request::Call { seq: 1, text: b"" },
            Request::Bye,
        ];
        for r in requests {
            assert_eq!(Request::decode(&r.encode()), Some(r));
        }
        let answers = [
            Answer::Welcome { id: "3:17" },
            Answer::Result {
                seq: 7,
                text: b"TWO WORDS",
            },
            Answer::Bye { answered: 0 },
            Answer::Error {
                what: "not a request",
            },
        ];
        for a in answers {
            assert_eq!(Answer::decode(&a.encode()), Some(a));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for msg in [
            &b""[..],
            b"hello",
            b"hello x",
            b"call",
            b"call x y",
            b"bye now",
            b"HELLO 1",
        ] {
            assert_eq!(Request::decode(msg), None, "{msg:?}");
        }
        for msg in [&b""[..], b"result", b"bye x", b"welcome \xff", b"hello 1"] {
            assert_eq!(Answer::decode(msg), None, "{msg:?}");
        }
    }

    #[test]
    fn numbers_are_taken_out_of_the_arguments() {
        let mut args: Vec<OsString> = ["--requests", "3", "/tmp/k"].map(OsString::from).to_vec();
        assert_eq!(take_number(&mut args, "--requests").ok(), Some(Some(3)));
        assert_eq!(args, [OsString::from("/tmp/k")]);
        assert_eq!(take_number(&mut args, "--clients").ok(), Some(None));
        let mut bad: Vec<OsString> = ["--clients"].map(OsString::from).to_vec();
        assert!(take_number(&mut bad, "--clients").is_err());
    }
}
