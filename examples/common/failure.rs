//! The examples' error for `main` to return: it prints as its message.

use std::error::Error;
use std::fmt;

/// An error as `main` should print it. Returning `Err` from `main` prints
/// it with `{:?}`, so `Debug` here shows the readable message.
struct Failure(String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Failure {}

/// `msg` as an error that `main` prints as it is.
pub(crate) fn fail(msg: String) -> Box<dyn Error> {
    Box::new(Failure(msg))
}
