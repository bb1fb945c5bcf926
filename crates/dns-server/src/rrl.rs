//! Response rate limiting (RRL) for UDP, against reflection and amplification: a forged query
//! costs its sender a few dozen bytes and sends the victim (the forged source) an answer ten times
//! as big. Each source prefix (/24 for IPv4, /56 for IPv6, as Knot and BIND count) gets a token
//! bucket of `rate` responses a second, with a burst of one second's worth. Beyond it, responses
//! are dropped, except every [`SLIP`]th one, which is sent empty with TC=1: a real resolver behind
//! that prefix retries over TCP (which cannot be forged) and is served; the victim of a forged
//! flood gets a trickle of small packets.
//!
//! The bucket is kept as a GCRA "theoretical arrival time" (one integer per prefix). The table
//! has a fixed size (memory is bounded whatever the number of sources): a prefix hashes to one
//! slot; a slot whose bucket is full again is taken over by the next prefix, and two active
//! prefixes meeting in one slot share its bucket — which can only make the limit stricter, never
//! let a flood through. The hash is keyed per process, so a sender cannot aim for a slot.
//!
//! The limiter reads no clock: `now` is passed in. It is shared by the UDP workers; the table is
//! split into shards behind their own locks, so two workers rarely wait for each other.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Every `SLIP`th limited response is sent truncated (TC=1, empty sections); the others are
/// dropped. 2 is BIND's default.
pub const SLIP: u32 = 2;

const SHARDS: usize = 32;
const SLOTS_PER_SHARD: usize = 1024;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: send it.
    Answer,
    /// Over the rate, and this one slips through: send it truncated ([`truncate`]).
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// The shared rate limiter; see the module documentation.
#[derive(Debug)]
pub struct ResponseRateLimiter {
    shards: Box<[Mutex<Box<[Slot]>>]>,
    hasher: std::hash::RandomState,
    /// Nanoseconds per response (the emission interval).
    interval: u64,
    /// How far ahead of now a bucket's arrival time may run: the burst, less one response.
    tolerance: u64,
    epoch: Instant,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The source prefix ([`prefix_key`]); 0 for a slot never used.
    prefix: u64,
    /// When the bucket is full again, in nanoseconds since the epoch.
    full_at: u64,
    /// Responses limited so far (for the slip count).
    limited: u32,
}

impl ResponseRateLimiter {
    /// A limiter of `responses_per_second` per source prefix (at least 1); `epoch` is any
    /// instant not after the first `now` that [`check`](Self::check) will see.
    pub fn new(responses_per_second: u32, epoch: Instant) -> ResponseRateLimiter {
        let rate = u64::from(responses_per_second.max(1));
        let second = 1_000_000_000u64;
        let interval = second / rate;
        ResponseRateLimiter {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(vec![Slot::default(); SLOTS_PER_SHARD].into_boxed_slice()))
                .collect(),
            hasher: std::hash::RandomState::new(),
            interval,
            tolerance: interval * (rate - 1),
            epoch,
        }
    }

    /// Counts one response to `source` at `now` and says what to do with it.
    pub fn check(&self, source: IpAddr, now: Instant) -> Verdict {
        let key = prefix_key(source);
        let hash = self.hasher.hash_one(key);
        #[allow(clippy::cast_possible_truncation)] // the low bits pick the shard and slot
        let (shard, index) = (
            hash as usize % SHARDS,
            (hash >> 32) as usize % SLOTS_PER_SHARD,
        );
        let now = nanos_since(self.epoch, now);
        let mut shard = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = &mut shard[index];
        if slot.prefix != key && (slot.prefix == 0 || slot.full_at <= now) {
            *slot = Slot {
                prefix: key,
                full_at: now,
                limited: 0,
            };
        }
        let full_at = slot.full_at.max(now);
        if full_at - now <= self.tolerance {
            slot.full_at = full_at + self.interval;
            return Verdict::Answer;
        }
        slot.limited = slot.limited.wrapping_add(1);
        if slot.limited.is_multiple_of(SLIP) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// The source's prefix as a table key, never 0: a tag byte (4 or 6) and the prefix bits.
fn prefix_key(source: IpAddr) -> u64 {
    match source.to_canonical() {
        IpAddr::V4(v4) => (4 << 56) | u64::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => {
            #[allow(clippy::cast_possible_truncation)] // the top 64 bits, of which 56 are kept
            let top = (u128::from(v6) >> 64) as u64;
            (6 << 56) | (top >> 8)
        }
    }
}

fn nanos_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Turns a UDP response into its slipped form: the header with TC=1 and the question, nothing
/// else. The client learns to ask again over TCP, and the packet is no bigger than the query.
pub fn truncate(response: &mut Vec<u8>) {
    const HEADER: usize = 12;
    if response.len() < HEADER {
        response.clear();
        return;
    }
    let questions = u16::from_be_bytes([response[4], response[5]]);
    let end = if questions == 1 {
        question_end(response)
    } else {
        None
    };
    response[2] |= 0x02; // TC
    let qdcount = u16::from(end.is_some());
    response[4..6].copy_from_slice(&qdcount.to_be_bytes());
    response[6..12].fill(0);
    response.truncate(end.unwrap_or(HEADER));
}

/// Where the (single, uncompressed) question of a message ends.
fn question_end(message: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = usize::from(*message.get(at)?);
        if len > 63 {
            return None; // a compression pointer: not in a question we wrote
        }
        at += len + 1;
        if len == 0 {
            break;
        }
    }
    let end = at + 4;
    (end <= message.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_gets_the_rate_then_every_second_limited_response_slips() {
        let start = Instant::now();
        let limiter = ResponseRateLimiter::new(20, start);
        let verdicts: Vec<Verdict> = (0..30)
            .map(|_| limiter.check(ip("192.0.2.7"), start))
            .collect();
        assert!(verdicts[..20].iter().all(|v| *v == Verdict::Answer));
        assert_eq!(
            verdicts[20..],
            [
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
            ]
        );
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let start = Instant::now();
        let limiter = ResponseRateLimiter::new(10, start);
        let source = ip("198.51.100.1");
        for _ in 0..10 {
            assert_eq!(limiter.check(source, start), Verdict::Answer);
        }
        assert_ne!(limiter.check(source, start), Verdict::Answer);
        // One response every 100 ms: one more each 100 ms, not two.
        assert_eq!(limiter.check(source, at(start, 100)), Verdict::Answer);
        assert_ne!(limiter.check(source, at(start, 100)), Verdict::Answer);
        assert_eq!(limiter.check(source, at(start, 200)), Verdict::Answer);
        // After a quiet second the whole burst is back, and no more.
        let later = at(start, 1300);
        for _ in 0..10 {
            assert_eq!(limiter.check(source, later), Verdict::Answer);
        }
        assert_ne!(limiter.check(source, later), Verdict::Answer);
    }

    #[test]
    fn a_steady_client_within_the_rate_is_never_limited() {
        let start = Instant::now();
        let limiter = ResponseRateLimiter::new(20, start);
        for i in 0..10_000 {
            assert_eq!(
                limiter.check(ip("203.0.113.9"), at(start, i * 50)),
                Verdict::Answer,
                "query {i}"
            );
        }
    }

    #[test]
    fn sources_are_counted_by_prefix() {
        let start = Instant::now();
        let limiter = ResponseRateLimiter::new(5, start);
        for _ in 0..5 {
            assert_eq!(limiter.check(ip("192.0.2.1"), start), Verdict::Answer);
        }
        // The same /24 shares the bucket; the next /24 has its own.
        assert_ne!(limiter.check(ip("192.0.2.200"), start), Verdict::Answer);
        assert_eq!(limiter.check(ip("192.0.3.1"), start), Verdict::Answer);
        // An IPv4-mapped IPv6 address is its IPv4 address.
        assert_ne!(
            limiter.check(ip("::ffff:192.0.2.9"), start),
            Verdict::Answer
        );
        // IPv6: a /56 shares, the next /56 does not.
        for _ in 0..5 {
            assert_eq!(
                limiter.check(ip("2001:db8:0:100::1"), start),
                Verdict::Answer
            );
        }
        assert_ne!(
            limiter.check(ip("2001:db8:0:1ff::53"), start),
            Verdict::Answer
        );
        assert_eq!(
            limiter.check(ip("2001:db8:0:200::1"), start),
            Verdict::Answer
        );
    }

    #[test]
    fn many_sources_fit_in_bounded_memory_and_never_loosen_the_limit() {
        let start = Instant::now();
        let limiter = ResponseRateLimiter::new(3, start);
        // Far more prefixes than slots, each over its rate: a prefix may share a slot with an
        // active one (stricter), but never gets more than its own burst.
        let mut answered = std::collections::HashMap::<u32, u32>::new();
        for round in 0..5 {
            for n in 0..100_000u32 {
                let source = IpAddr::from(std::net::Ipv4Addr::from((n << 8) | 1));
                if limiter.check(source, at(start, round)) == Verdict::Answer {
                    *answered.entry(n).or_default() += 1;
                }
            }
        }
        assert!(answered.values().all(|&n| n <= 3));
        assert_eq!(
            std::mem::size_of::<Slot>() * SHARDS * SLOTS_PER_SHARD,
            24 * 32 * 1024
        );
    }

    #[test]
    fn a_slipped_response_keeps_only_header_and_question() {
        use hickory_proto::op::{Message, Query};
        use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::TXT};
        use std::str::FromStr;
        let name = Name::from_str("a.dkim.example.net.").unwrap();
        let mut message = Message::query();
        message.metadata.id = 99;
        message.metadata.message_type = hickory_proto::op::MessageType::Response;
        message.add_query(Query::query(name.clone(), RecordType::TXT));
        message.add_answer(Record::from_rdata(
            name,
            60,
            RData::TXT(TXT::new(vec!["x".repeat(200)])),
        ));
        let mut bytes = message.to_vec().unwrap();
        truncate(&mut bytes);
        let slipped = Message::from_vec(&bytes).unwrap();
        assert!(slipped.metadata.truncation);
        assert_eq!(slipped.metadata.id, 99);
        assert_eq!(slipped.queries, message.queries);
        assert!(slipped.answers.is_empty() && slipped.additionals.is_empty());

        let mut header_only = bytes[..12].to_vec();
        header_only[4..6].copy_from_slice(&1u16.to_be_bytes()); // claims a question it lacks
        truncate(&mut header_only);
        assert_eq!(header_only.len(), 12);
        assert!(Message::from_vec(&header_only).unwrap().queries.is_empty());
    }
}
