//! The readable event trace a failing seed prints: the last events before the failure, or every
//! event when asked.

use std::collections::VecDeque;

use fjord_types::Timestamp;

/// Lines kept when not keeping everything.
const TAIL: usize = 400;

/// One line per event, with its virtual time.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    lines: VecDeque<String>,
    keep_all: bool,
    dropped: usize,
}

impl Trace {
    /// A trace keeping the last 400 lines, or all of them.
    pub(crate) fn new(keep_all: bool) -> Trace {
        Trace { lines: VecDeque::new(), keep_all, dropped: 0 }
    }

    /// Adds a line at `now`.
    pub(crate) fn line(&mut self, now: Timestamp, text: impl AsRef<str>) {
        if !self.keep_all && self.lines.len() == TAIL {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(format!("{:>8} ms  {}", now.0, text.as_ref()));
    }

    /// The lines, oldest first, with a note of how many earlier ones were dropped.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.lines.len() + 1);
        if self.dropped > 0 {
            out.push(format!("... {} earlier lines (run with --trace for all)", self.dropped));
        }
        out.extend(self.lines.iter().cloned());
        out
    }
}
