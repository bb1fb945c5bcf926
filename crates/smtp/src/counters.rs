//! What the gateway has done since it started: messages accepted and signed, refusals, and
//! deliveries (delivered, deferred, bounced), counted per message or recipient as named below.
//! One value is shared by the listeners, the sink and the delivery worker; reading it is a
//! snapshot, cheap enough to log every minute.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters. All start at zero.
#[derive(Debug, Default)]
pub struct Counters {
    values: [AtomicU64; Counter::ALL.len()],
}

/// One of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A message spooled and answered `250`.
    Accepted,
    /// A message that got a DKIM signature and was spooled (never one refused after signing).
    Signed,
    /// A reply with a 5xx to a client, at any stage after the greeting: relaying denied, a
    /// sender domain not accepted, bad credentials, smuggling, bad syntax.
    Refused,
    /// A reply with a 4xx to a client, at any stage after the greeting: a local problem such as
    /// a full disk, too many recipients, AUTH throttled, too many errors.
    Tempfailed,
    /// A connection refused before the greeting: too many sessions (in all, or from its
    /// address), or its address refused by the policy.
    TurnedAway,
    /// A session closed because the client ran out of time: a read or write deadline, or the
    /// deadline of a message's data.
    TimedOut,
    /// A login locked after too many failed AUTH attempts.
    Lockout,
    /// A recipient the next hop took.
    Delivered,
    /// A recipient the next hop put off (4xx, or no connection): tried again later.
    Deferred,
    /// A recipient given up on (5xx, or out of time), reported to the sender in a DSN.
    Bounced,
}

impl Counter {
    /// Every counter, in the order of the log line.
    pub const ALL: [Counter; 10] = [
        Counter::Accepted,
        Counter::Signed,
        Counter::Refused,
        Counter::Tempfailed,
        Counter::TurnedAway,
        Counter::TimedOut,
        Counter::Lockout,
        Counter::Delivered,
        Counter::Deferred,
        Counter::Bounced,
    ];

    /// What it counts, in a line (the `# HELP` of `/metrics`).
    pub fn help(self) -> &'static str {
        match self {
            Counter::Accepted => "Messages spooled and answered 250.",
            Counter::Signed => "Messages that got a DKIM signature and were spooled.",
            Counter::Refused => "Replies with a 5xx to a client after the greeting.",
            Counter::Tempfailed => "Replies with a 4xx to a client after the greeting.",
            Counter::TurnedAway => "Connections refused before the greeting.",
            Counter::TimedOut => "Sessions closed because the client ran out of time.",
            Counter::Lockout => "Logins locked after too many failed AUTH attempts.",
            Counter::Delivered => "Recipients the next hop took.",
            Counter::Deferred => "Recipients the next hop put off, tried again later.",
            Counter::Bounced => "Recipients given up on and reported in a DSN.",
        }
    }

    /// Its name in the log line.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Accepted => "accepted",
            Counter::Signed => "signed",
            Counter::Refused => "refused",
            Counter::Tempfailed => "tempfailed",
            Counter::TurnedAway => "turned_away",
            Counter::TimedOut => "timed_out",
            Counter::Lockout => "lockouts",
            Counter::Delivered => "delivered",
            Counter::Deferred => "deferred",
            Counter::Bounced => "bounced",
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub accepted: u64,
    pub signed: u64,
    pub refused: u64,
    pub tempfailed: u64,
    pub turned_away: u64,
    pub timed_out: u64,
    pub lockouts: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
}

impl Counters {
    /// Adds one.
    pub fn count(&self, counter: Counter) {
        self.values[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The value of one counter now.
    pub fn value(&self, counter: Counter) -> u64 {
        self.values[counter as usize].load(Ordering::Relaxed)
    }

    /// The values now.
    pub fn snapshot(&self) -> Snapshot {
        let read = |counter| self.value(counter);
        Snapshot {
            accepted: read(Counter::Accepted),
            signed: read(Counter::Signed),
            refused: read(Counter::Refused),
            tempfailed: read(Counter::Tempfailed),
            turned_away: read(Counter::TurnedAway),
            timed_out: read(Counter::TimedOut),
            lockouts: read(Counter::Lockout),
            delivered: read(Counter::Delivered),
            deferred: read(Counter::Deferred),
            bounced: read(Counter::Bounced),
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = [
            self.accepted,
            self.signed,
            self.refused,
            self.tempfailed,
            self.turned_away,
            self.timed_out,
            self.lockouts,
            self.delivered,
            self.deferred,
            self.bounced,
        ];
        for (i, (counter, value)) in Counter::ALL.iter().zip(values).enumerate() {
            let space = if i == 0 { "" } else { " " };
            write!(f, "{space}{}={value}", counter.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_counts_apart() {
        let counters = Counters::default();
        for (times, counter) in (1..).zip(Counter::ALL) {
            for _ in 0..times {
                counters.count(counter);
            }
        }
        assert_eq!(
            counters.snapshot().to_string(),
            "accepted=1 signed=2 refused=3 tempfailed=4 turned_away=5 timed_out=6 lockouts=7 \
             delivered=8 deferred=9 bounced=10"
        );
        assert_eq!(counters.value(Counter::Lockout), 7);
    }
}
