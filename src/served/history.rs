//! Zone histories, for IXFR (RFC 1995): what each change to a zone removed and added, from
//! one SOA serial to the next, kept in memory beside the served index.
//!
//! Why here: the index already learns of every commit as the names it changed (its delta),
//! read in the commit's own snapshot, and holds the records those names had before. The
//! difference of the two is exactly what a secondary at the old serial lacks, at the cost of
//! comparing a few records per commit; nothing is written to SQLite for it. A step spans one
//! commit of this process (a group commit of many updates included) or, for outside writers,
//! everything one catch-up read: a secondary whose serial is not the start of a step gets the
//! whole zone (AXFR), as the RFC says for a serial the server has no history for. So does a
//! secondary after a restart, or after the index had to reload everything.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::records::ServedRecord;

/// How much history each zone keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Steps older than this are forgotten.
    pub age: Duration,
    /// Most records (removed and added, over all steps) kept per zone; the oldest steps go
    /// first.
    pub records: usize,
}

/// What one change did to a zone: from serial `from` to serial `to`, these records went and
/// these came (the SOA aside: IXFR carries the two SOAs around them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The serial before.
    pub from: u32,
    /// The serial after.
    pub to: u32,
    /// Records served at `from` and not at `to`.
    pub removed: Vec<ServedRecord>,
    /// Records served at `to` and not at `from`.
    pub added: Vec<ServedRecord>,
}

impl Step {
    /// How many records it carries.
    pub fn records(&self) -> usize {
        self.removed.len() + self.added.len()
    }
}

/// What IXFR can tell a secondary at some serial.
#[derive(Debug, Clone)]
pub enum Since {
    /// Its serial is the current one (or newer): nothing to send but the SOA.
    Current,
    /// These steps, in order, lead from its serial to the current one.
    Steps(Vec<Arc<Step>>),
    /// No history from that serial: the whole zone (AXFR).
    Unknown,
}

/// One zone's steps, oldest first, each with when it was kept.
#[derive(Debug, Default)]
pub(super) struct History {
    steps: VecDeque<(Instant, Arc<Step>)>,
    /// Records over all steps.
    records: usize,
}

impl History {
    /// Keeps `step`, then forgets what `limits` no longer allow.
    pub(super) fn push(&mut self, step: Step, limits: HistoryLimits) {
        let now = Instant::now();
        // A step that does not continue the last (a serial set by hand) leaves nothing
        // earlier usable.
        if self
            .steps
            .back()
            .is_some_and(|(_, last)| last.to != step.from)
        {
            self.clear();
        }
        self.records += step.records();
        self.steps.push_back((now, Arc::new(step)));
        while let Some((at, oldest)) = self.steps.front() {
            if self.records <= limits.records && now.duration_since(*at) <= limits.age {
                break;
            }
            self.records -= oldest.records();
            self.steps.pop_front();
        }
    }

    /// Forgets every step (a change no step can express).
    pub(super) fn clear(&mut self) {
        self.steps.clear();
        self.records = 0;
    }

    /// What leads from `serial` to `current` (the zone's serial now).
    pub(super) fn since(&self, serial: u32, current: u32) -> Since {
        if serial == current || serial_after(serial, current) {
            return Since::Current;
        }
        let Some(start) = self.steps.iter().position(|(_, step)| step.from == serial) else {
            return Since::Unknown;
        };
        let steps: Vec<Arc<Step>> = self
            .steps
            .iter()
            .skip(start)
            .map(|(_, step)| Arc::clone(step))
            .collect();
        if steps.last().is_none_or(|step| step.to != current) {
            return Since::Unknown;
        }
        Since::Steps(steps)
    }
}

/// Whether serial `a` is after `b` in RFC 1982 arithmetic (32 bits): a secondary ahead of us
/// (it saw a serial from before a restore) is told the current SOA, not a history.
pub fn serial_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// What went and what came at one name: `before` and `after` compared as multisets (a record
/// is its type, content and TTL), in their own order.
pub(super) fn difference(
    before: Vec<ServedRecord>,
    after: Vec<ServedRecord>,
) -> (Vec<ServedRecord>, Vec<ServedRecord>) {
    let same = |a: &ServedRecord, b: &ServedRecord| {
        a.record_type == b.record_type && a.content == b.content && a.ttl == b.ttl
    };
    let mut added = after;
    let mut removed = Vec::new();
    for record in before {
        match added.iter().position(|new| same(new, &record)) {
            Some(kept) => {
                added.swap_remove(kept);
            }
            None => removed.push(record),
        }
    }
    (removed, added)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::rdata::{ServedType, StaticType};
    use crate::store::records::RecordSource;

    fn record(content: &str) -> ServedRecord {
        ServedRecord {
            name: "h.example".into(),
            record_type: ServedType::Stored(StaticType::Txt),
            content: content.into(),
            ttl: 60,
            source: RecordSource::Static,
        }
    }

    fn step(from: u32, to: u32, records: usize) -> Step {
        Step {
            from,
            to,
            removed: vec![],
            added: (0..records).map(|i| record(&i.to_string())).collect(),
        }
    }

    const LIMITS: HistoryLimits = HistoryLimits {
        age: Duration::from_secs(3600),
        records: 10,
    };

    #[test]
    fn a_secondary_gets_the_steps_from_its_serial_or_the_whole_zone() {
        let mut history = History::default();
        history.push(step(1, 2, 1), LIMITS);
        history.push(step(2, 5, 1), LIMITS);
        history.push(step(5, 6, 1), LIMITS);
        let Since::Steps(steps) = history.since(2, 6) else {
            panic!()
        };
        assert_eq!(
            steps.iter().map(|s| (s.from, s.to)).collect::<Vec<_>>(),
            [(2, 5), (5, 6)]
        );
        assert!(matches!(history.since(6, 6), Since::Current));
        assert!(matches!(history.since(7, 6), Since::Current), "ahead");
        assert!(
            matches!(history.since(3, 6), Since::Unknown),
            "inside a step"
        );
        assert!(
            matches!(history.since(1, 7), Since::Unknown),
            "the history ends before the current serial"
        );
        // Past the record limit, the oldest go first.
        history.push(step(6, 7, 8), LIMITS);
        assert!(matches!(history.since(1, 7), Since::Unknown));
        assert!(matches!(history.since(5, 7), Since::Steps(s) if s.len() == 2));
        // A serial set by hand: nothing before it is usable.
        history.push(step(100, 101, 1), LIMITS);
        assert!(matches!(history.since(6, 101), Since::Unknown));
        assert!(matches!(history.since(100, 101), Since::Steps(s) if s.len() == 1));
    }

    #[test]
    fn serials_compare_as_rfc_1982_says() {
        assert!(serial_after(2, 1));
        assert!(!serial_after(1, 2));
        assert!(serial_after(1, u32::MAX), "across the wrap");
        assert!(!serial_after(u32::MAX, 1));
        assert!(!serial_after(5, 5));
    }

    #[test]
    fn the_difference_at_a_name_is_what_went_and_what_came() {
        let (removed, added) = difference(
            vec![record("a"), record("b"), record("b")],
            vec![record("b"), record("c")],
        );
        assert_eq!(removed, [record("a"), record("b")]);
        assert_eq!(added, [record("c")]);
        let (removed, added) = difference(vec![record("a")], vec![record("a")]);
        assert!(removed.is_empty() && added.is_empty());
    }
}
