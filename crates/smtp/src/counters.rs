//! What the gateway has done since it started: messages accepted and signed, refusals, and
//! deliveries (delivered, deferred, bounced), counted per message or recipient as named below.
//! One value is shared by the listeners, the sink and the delivery worker; reading it is a
//! snapshot, cheap enough to log every minute.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters. All start at zero.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    signed: AtomicU64,
    refused: AtomicU64,
    delivered: AtomicU64,
    deferred: AtomicU64,
    bounced: AtomicU64,
}

/// One of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A message spooled and answered `250`.
    Accepted,
    /// A message that got a DKIM signature on the way in.
    Signed,
    /// A command (MAIL, RCPT, AUTH) or a message refused with a 5xx: relaying denied, a
    /// sender domain not accepted, bad credentials, smuggling.
    Refused,
    /// A recipient the next hop took.
    Delivered,
    /// A recipient the next hop put off (4xx, or no connection): tried again later.
    Deferred,
    /// A recipient given up on (5xx, or out of time), reported to the sender in a DSN.
    Bounced,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub accepted: u64,
    pub signed: u64,
    pub refused: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
}

impl Counters {
    /// Adds one.
    pub fn count(&self, counter: Counter) {
        self.counter(counter).fetch_add(1, Ordering::Relaxed);
    }

    /// The values now.
    pub fn snapshot(&self) -> Snapshot {
        let read = |counter| self.counter(counter).load(Ordering::Relaxed);
        Snapshot {
            accepted: read(Counter::Accepted),
            signed: read(Counter::Signed),
            refused: read(Counter::Refused),
            delivered: read(Counter::Delivered),
            deferred: read(Counter::Deferred),
            bounced: read(Counter::Bounced),
        }
    }

    fn counter(&self, counter: Counter) -> &AtomicU64 {
        match counter {
            Counter::Accepted => &self.accepted,
            Counter::Signed => &self.signed,
            Counter::Refused => &self.refused,
            Counter::Delivered => &self.delivered,
            Counter::Deferred => &self.deferred,
            Counter::Bounced => &self.bounced,
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} signed={} refused={} delivered={} deferred={} bounced={}",
            self.accepted, self.signed, self.refused, self.delivered, self.deferred, self.bounced
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_counts_apart() {
        let counters = Counters::default();
        for (counter, times) in [
            (Counter::Accepted, 3),
            (Counter::Signed, 2),
            (Counter::Refused, 1),
            (Counter::Delivered, 4),
            (Counter::Deferred, 5),
            (Counter::Bounced, 6),
        ] {
            for _ in 0..times {
                counters.count(counter);
            }
        }
        assert_eq!(
            counters.snapshot().to_string(),
            "accepted=3 signed=2 refused=1 delivered=4 deferred=5 bounced=6"
        );
    }
}
