//! The TCP listener's admission control, and a throttle for the log lines that floods cause.
//!
//! [`ConnectionTable`] counts the open TCP connections, in all and per client address; a
//! connection beyond either cap is refused (closed at once) rather than left waiting in the
//! kernel's backlog, where it would hold up the connections behind it. Neither type reads a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Open connections, in all and per address, against their caps.
#[derive(Debug)]
pub(crate) struct ConnectionTable {
    total_cap: usize,
    per_address_cap: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The address has `per_address_cap` connections open already.
    AddressFull,
    /// The server has `total_cap` connections open already.
    ServerFull,
}

/// One admitted connection; its place is given back when this is dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    table: Arc<ConnectionTable>,
    address: IpAddr,
}

impl ConnectionTable {
    pub(crate) fn new(total_cap: usize, per_address_cap: usize) -> Arc<ConnectionTable> {
        Arc::new(ConnectionTable {
            total_cap: total_cap.max(1),
            per_address_cap: per_address_cap.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// Admits one more connection from `address`, or says which cap it would exceed.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admission, Refusal> {
        let address = address.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.total_cap {
            return Err(Refusal::ServerFull);
        }
        let count = open.by_address.entry(address).or_default();
        if *count >= self.per_address_cap {
            return Err(Refusal::AddressFull);
        }
        *count += 1;
        open.total += 1;
        Ok(Admission {
            table: Arc::clone(self),
            address,
        })
    }

    #[cfg(test)]
    fn open(&self) -> (usize, usize) {
        let open = self.open.lock().unwrap();
        (open.total, open.by_address.len())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total -= 1;
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// Counts events (refused connections, limited responses, failed accepts) and says when to log
/// them: at most once per `interval`, with the number since the last report, so a flood cannot
/// flood the log too.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    last: Option<Instant>,
    pending: u64,
}

impl LogThrottle {
    pub(crate) const fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval,
            last: None,
            pending: 0,
        }
    }

    /// One more event at `now`: `Some(events since the last report)` when it is time to log.
    pub(crate) fn event(&mut self, now: Instant) -> Option<u64> {
        self.pending += 1;
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.interval)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn connections_are_capped_per_address_and_in_all() {
        let table = ConnectionTable::new(5, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = table.admit(a).unwrap();
        let second = table.admit(a).unwrap();
        assert_eq!(table.admit(a).unwrap_err(), Refusal::AddressFull);
        // The same address written as IPv4-mapped IPv6 is the same client.
        assert_eq!(
            table
                .admit("::ffff:192.0.2.1".parse().unwrap())
                .unwrap_err(),
            Refusal::AddressFull
        );
        drop(first);
        let third = table.admit(a).unwrap();
        let others: Vec<Admission> = ["192.0.2.2", "192.0.2.3", "192.0.2.4"]
            .iter()
            .map(|ip| table.admit(ip.parse().unwrap()).unwrap())
            .collect();
        assert_eq!(table.admit(b).unwrap_err(), Refusal::ServerFull);
        drop(others);
        assert_eq!(table.open(), (2, 1));
        drop(third);
        drop(second);
        assert_eq!(table.open(), (0, 0), "nothing left behind");
    }

    #[test]
    fn the_log_throttle_reports_counts_at_most_once_per_interval() {
        let start = Instant::now();
        let mut throttle = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(throttle.event(start), Some(1));
        for s in 1..10 {
            assert_eq!(throttle.event(at(start, s * 1000)), None);
        }
        assert_eq!(throttle.event(at(start, 10_000)), Some(10));
        assert_eq!(throttle.event(at(start, 10_001)), None);
    }
}
