//! The AUTH brute-force throttle: a pure record of failed logins, with `now` passed in.
//!
//! Failures are counted per login (as the client typed it: an unknown login is throttled
//! exactly like a real one, so nothing tells them apart) and per client address (IPv6 by /64).
//! Each failure delays the next attempt for that login and that address (Postfix's
//! `smtpd_error_sleep_time`, anvil-like): the delay starts at [`ThrottleConfig::delay`] and
//! doubles per failure up to [`ThrottleConfig::max_delay`]. Attempts wait their turn, so
//! concurrent sessions from one address gain nothing. After [`ThrottleConfig::max_failures`]
//! the login is locked for [`ThrottleConfig::lockout`]: every attempt is refused without
//! looking at the password. Memory is bounded by [`ThrottleConfig::max_entries`] per table;
//! logins are kept as keyed hashes, whatever their length.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How failed logins slow down and lock out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// The delay after the first failure (zero: no delays, lock-out only).
    pub delay: Duration,
    /// The longest delay; also how long an attempt waits for its turn before `454`.
    pub max_delay: Duration,
    /// Failures of one login before it is locked (zero: never locked).
    pub max_failures: u32,
    /// How long a lock lasts; failures older than this are forgotten.
    pub lockout: Duration,
    /// Most logins and most addresses remembered (each table apart).
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(32),
            max_failures: 10,
            lockout: Duration::from_mins(15),
            max_entries: 10_000,
        }
    }
}

/// Whether an AUTH attempt may check its password now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Check it; the attempt has taken its turn (later ones wait behind it).
    Go,
    /// Not before this instant: ask again then.
    WaitUntil(Instant),
    /// The login is locked: refuse as for a wrong password, without checking it, after
    /// holding the reply for `delay`.
    Locked {
        /// When the lock ends.
        until: Instant,
        /// How long to hold the refusal (the address's failures, this one counted).
        delay: Duration,
    },
}

/// What a failure led to, for the log and the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failures of this login so far (within the lock-out window).
    pub login_failures: u32,
    /// Failures from this address so far.
    pub address_failures: u32,
    /// Hold the reply this long (the next attempt waits as long).
    pub delay: Duration,
    /// This failure locked the login, until then.
    pub locked_until: Option<Instant>,
}

/// The throttle's state. One per listener, behind a mutex.
#[derive(Debug)]
pub struct AuthThrottle {
    config: ThrottleConfig,
    hasher: RandomState,
    logins: Table<u64>,
    addresses: Table<IpAddr>,
}

/// How often an attempt asks again while the login has as many guesses in flight as it has left.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    /// Attempts that went ahead and have not ended yet (logins only).
    in_flight: u32,
    last_failure: Instant,
    /// The next attempt may not start before this.
    next_try: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
struct Table<K> {
    records: HashMap<K, Record>,
}

impl AuthThrottle {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            hasher: RandomState::new(),
            logins: Table::default(),
            addresses: Table::default(),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Asks whether an attempt by `login` from `address` may go ahead at `now`. `Go` takes the
    /// turn (concurrent attempts are spaced by the current delay) and puts the attempt in
    /// flight: report how it ended with [`Self::failed`], [`Self::succeeded`] or
    /// [`Self::abandoned`]. `Locked` has already counted the attempt against the address.
    pub fn turn(&mut self, login: &str, address: IpAddr, now: Instant) -> Turn {
        let (login, address) = (self.login_key(login), address_key(address));
        let config = self.config;
        let login_record = self.logins.current(&login, now, config.lockout);
        let address_record = self.addresses.current(&address, now, config.lockout);
        let not_before = [login_record, address_record]
            .into_iter()
            .flatten()
            .map(|r| r.next_try)
            .max();
        if let Some(not_before) = not_before.filter(|t| *t > now) {
            return Turn::WaitUntil(not_before);
        }
        if let Some(until) = login_record
            .and_then(|r| r.locked_until)
            .filter(|until| *until > now)
        {
            let record = self.addresses.fail(address, now, &config);
            return Turn::Locked {
                until,
                delay: delay(&config, record.failures),
            };
        }
        // Never more guesses under way than the lock-out leaves: a burst of parallel sessions
        // must not get past `max_failures` before the first of them fails.
        if login_record.is_some_and(|r| {
            config.max_failures > 0 && r.failures + r.in_flight >= config.max_failures
        }) {
            return Turn::WaitUntil(now + IN_FLIGHT_POLL);
        }
        if let Some(record) = self.addresses.records.get_mut(&address) {
            record.next_try = now + delay(&config, record.failures);
        }
        let record = self.logins.entry(login, now, &config);
        record.next_try = now + delay(&config, record.failures);
        record.in_flight += 1;
        Turn::Go
    }

    /// Records that an attempt that went ahead failed (a wrong password, an unknown login).
    pub fn failed(&mut self, login: &str, address: IpAddr, now: Instant) -> Failure {
        let (login, address) = (self.login_key(login), address_key(address));
        let config = self.config;
        let record = self.logins.fail(login, now, &config);
        record.in_flight = record.in_flight.saturating_sub(1);
        let mut locked_until = None;
        if config.max_failures > 0
            && record.failures >= config.max_failures
            && record.locked_until.is_none()
        {
            record.locked_until = Some(now + config.lockout);
            locked_until = record.locked_until;
        }
        let login_failures = record.failures;
        let address_failures = self.addresses.fail(address, now, &config).failures;
        Failure {
            login_failures,
            address_failures,
            delay: delay(&config, login_failures.max(address_failures)),
            locked_until,
        }
    }

    /// Records a successful login: its failures are forgotten. The address's are not (an
    /// attacker's own valid login must not wipe its record).
    pub fn succeeded(&mut self, login: &str) {
        let login = self.login_key(login);
        self.logins.records.remove(&login);
    }

    /// An attempt that went ahead ended without a verdict (a temporary failure, a dropped
    /// session): it is no longer in flight, and counts for nothing.
    pub fn abandoned(&mut self, login: &str) {
        let login = self.login_key(login);
        if let Some(record) = self.logins.records.get_mut(&login) {
            record.in_flight = record.in_flight.saturating_sub(1);
        }
    }

    /// How many logins and addresses are remembered.
    pub fn len(&self) -> (usize, usize) {
        (self.logins.records.len(), self.addresses.records.len())
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    fn login_key(&self, login: &str) -> u64 {
        self.hasher.hash_one(login)
    }
}

/// IPv4 addresses count one by one, IPv6 by /64 (one host usually holds a whole /64).
/// An IPv4 client of a dual-stack listener (`::ffff:a.b.c.d`) counts as its IPv4 address.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => address.to_canonical(),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// The delay after `failures` failures: none, then `delay` doubling up to `max_delay`.
fn delay(config: &ThrottleConfig, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    config.delay.saturating_mul(factor).min(config.max_delay)
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Self {
            records: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> Table<K> {
    /// The record of `key`, unless it has expired (then it is dropped).
    fn current(&mut self, key: &K, now: Instant, forget: Duration) -> Option<Record> {
        let record = *self.records.get(key)?;
        if expired(&record, now, forget) {
            self.records.remove(key);
            return None;
        }
        Some(record)
    }

    /// The record of `key`, a fresh one if there is none (making room first if the table is
    /// full).
    fn entry(&mut self, key: K, now: Instant, config: &ThrottleConfig) -> &mut Record {
        if !self.records.contains_key(&key) && self.records.len() >= config.max_entries.max(1) {
            self.make_room(now, config);
        }
        self.records.entry(key).or_insert(Record {
            failures: 0,
            in_flight: 0,
            last_failure: now,
            next_try: now,
            locked_until: None,
        })
    }

    /// Counts a failure for `key`.
    fn fail(&mut self, key: K, now: Instant, config: &ThrottleConfig) -> &mut Record {
        let record = self.entry(key, now, config);
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        record.next_try = record.next_try.max(now + delay(config, record.failures));
        record
    }

    /// Drops expired records; if that frees nothing, the record that failed longest ago (an
    /// unlocked one when there is any, so spraying fresh logins does not lift a lock).
    fn make_room(&mut self, now: Instant, config: &ThrottleConfig) {
        self.records
            .retain(|_, record| !expired(record, now, config.lockout));
        if self.records.len() < config.max_entries.max(1) {
            return;
        }
        let oldest = |locked_too: bool| {
            self.records
                .iter()
                .filter(|(_, r)| locked_too || r.locked_until.is_none_or(|until| until <= now))
                .min_by_key(|(_, r)| r.last_failure)
                .map(|(key, _)| *key)
        };
        if let Some(victim) = oldest(false).or_else(|| oldest(true)) {
            self.records.remove(&victim);
        }
    }
}

/// A record is forgotten when its lock is over (the count starts again), or, never locked,
/// when its last failure is `forget` old; never while an attempt is in flight.
fn expired(record: &Record, now: Instant, forget: Duration) -> bool {
    record.in_flight == 0
        && match record.locked_until {
            Some(until) => now >= until,
            None => now >= record.last_failure + forget,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            delay: SECOND,
            max_delay: 8 * SECOND,
            max_failures: 5,
            lockout: Duration::from_mins(15),
            max_entries: 100,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Fails `login` from `address` once, waiting for its turn first; returns the new `now`.
    fn fail_once(
        throttle: &mut AuthThrottle,
        login: &str,
        address: IpAddr,
        mut now: Instant,
    ) -> (Instant, Failure) {
        while let Turn::WaitUntil(until) = throttle.turn(login, address, now) {
            now = until;
        }
        (now, throttle.failed(login, address, now))
    }

    #[test]
    fn the_delay_doubles_up_to_the_cap() {
        let config = config();
        let delays: Vec<u64> = (0..7).map(|f| delay(&config, f).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 8, 8]);
        assert_eq!(delay(&config, u32::MAX), 8 * SECOND);
        let none = ThrottleConfig {
            delay: Duration::ZERO,
            ..config
        };
        assert_eq!(delay(&none, 9), Duration::ZERO);
    }

    #[test]
    fn a_fresh_login_goes_at_once_and_success_forgets_it() {
        let mut throttle = AuthThrottle::new(config());
        let now = Instant::now();
        assert_eq!(throttle.turn("ann", ip("192.0.2.1"), now), Turn::Go);
        let failure = throttle.failed("ann", ip("192.0.2.1"), now);
        assert_eq!(failure.delay, SECOND);
        assert_eq!(
            throttle.turn("ann", ip("192.0.2.1"), now),
            Turn::WaitUntil(now + SECOND)
        );
        assert_eq!(
            throttle.turn("ann", ip("192.0.2.1"), now + SECOND),
            Turn::Go
        );
        throttle.succeeded("ann");
        // The address still remembers its failure; another address is not slowed at all.
        assert_eq!(
            throttle.turn("ann", ip("192.0.2.2"), now + SECOND),
            Turn::Go
        );
        throttle.succeeded("ann");
        assert_eq!(throttle.len(), (0, 1));
    }

    #[test]
    fn failures_delay_per_login_and_per_address() {
        let mut throttle = AuthThrottle::new(config());
        let start = Instant::now();
        let mut now = start;
        for expected in [1, 2, 4] {
            let (then, failure) = fail_once(&mut throttle, "ann", ip("192.0.2.1"), now);
            assert_eq!(failure.delay, expected * SECOND);
            now = then;
        }
        // The login is slowed from any address, the address for any login.
        assert!(matches!(
            throttle.turn("ann", ip("198.51.100.7"), now),
            Turn::WaitUntil(_)
        ));
        assert!(matches!(
            throttle.turn("nobody-at-all", ip("192.0.2.1"), now),
            Turn::WaitUntil(_)
        ));
        assert_eq!(throttle.turn("bob", ip("198.51.100.7"), now), Turn::Go);
    }

    #[test]
    fn concurrent_attempts_wait_their_turn() {
        let mut throttle = AuthThrottle::new(config());
        let now = Instant::now();
        let address = ip("192.0.2.1");
        let (now, _) = fail_once(&mut throttle, "a", address, now);
        let (now, _) = fail_once(&mut throttle, "b", address, now); // address: 2 failures
        let ready = now + 2 * SECOND;
        // Sixteen sessions ask at once: one goes when the delay is over, the rest wait behind.
        let turns: Vec<Turn> = (0..16)
            .map(|i| throttle.turn(&format!("guess{i}"), address, ready))
            .collect();
        assert_eq!(turns[0], Turn::Go);
        assert!(
            turns[1..]
                .iter()
                .all(|t| *t == Turn::WaitUntil(ready + 2 * SECOND)),
            "{turns:?}"
        );
    }

    #[test]
    fn a_login_locks_after_max_failures_and_unlocks_after_the_lockout() {
        let mut throttle = AuthThrottle::new(config());
        let mut now = Instant::now();
        let mut last = None;
        for _ in 0..5 {
            let (then, failure) = fail_once(&mut throttle, "ann", ip("192.0.2.1"), now);
            now = then;
            last = Some(failure);
        }
        let lock = last
            .unwrap()
            .locked_until
            .expect("locked at the fifth failure");
        assert_eq!(lock, now + Duration::from_mins(15));
        // Locked from every address, however long one waits for a turn; such attempts count
        // for the address (held 1 s here, its first failure), never for the login.
        let mut at = now + 8 * SECOND;
        assert_eq!(
            throttle.turn("ann", ip("203.0.113.9"), at),
            Turn::Locked {
                until: lock,
                delay: SECOND
            }
        );
        assert_eq!(
            throttle.turn("ann", ip("203.0.113.9"), at + SECOND),
            Turn::Locked {
                until: lock,
                delay: 2 * SECOND
            }
        );
        at = lock;
        assert_eq!(throttle.turn("ann", ip("203.0.113.10"), at), Turn::Go);
        // After the lock the count starts over.
        let after = throttle.failed("ann", ip("203.0.113.10"), at);
        assert_eq!(after.login_failures, 1);
    }

    #[test]
    fn a_parallel_burst_gets_no_more_guesses_than_the_lock_out_allows() {
        let mut throttle = AuthThrottle::new(config()); // 5 failures lock
        let now = Instant::now();
        let turns: Vec<Turn> = (0..16)
            .map(|i| {
                let address = IpAddr::from([192, 0, 2, i]);
                throttle.turn("ann", address, now)
            })
            .collect();
        let went = turns.iter().filter(|t| **t == Turn::Go).count();
        assert_eq!(went, 5, "{turns:?}");
        // One of them ends without a verdict: its place is free again.
        throttle.abandoned("ann");
        assert_eq!(throttle.turn("ann", ip("198.51.100.1"), now), Turn::Go);
        for i in 0..5 {
            throttle.failed("ann", IpAddr::from([192, 0, 2, i]), now);
        }
        assert!(matches!(
            throttle.turn("ann", ip("198.51.100.2"), now + 20 * SECOND),
            Turn::Locked { .. }
        ));
    }

    #[test]
    fn failures_are_forgotten_after_the_lockout_period() {
        let mut throttle = AuthThrottle::new(config());
        let now = Instant::now();
        let (now, _) = fail_once(&mut throttle, "ann", ip("192.0.2.1"), now);
        let later = now + Duration::from_mins(15);
        assert_eq!(throttle.turn("ann", ip("192.0.2.1"), later), Turn::Go);
        assert_eq!(throttle.len(), (1, 0), "only the attempt in flight");
        throttle.succeeded("ann");
        assert!(throttle.is_empty());
    }

    #[test]
    fn ipv6_counts_by_slash_64() {
        let mut throttle = AuthThrottle::new(config());
        let now = Instant::now();
        throttle.failed("a", ip("2001:db8:1:2::1"), now);
        assert!(matches!(
            throttle.turn("b", ip("2001:db8:1:2:ffff::9"), now),
            Turn::WaitUntil(_)
        ));
        assert_eq!(throttle.turn("b", ip("2001:db8:1:3::1"), now), Turn::Go);
        // IPv4 clients of a dual-stack listener are told apart, and match their IPv4 selves.
        throttle.failed("c", ip("::ffff:192.0.2.1"), now);
        assert_eq!(throttle.turn("d", ip("::ffff:192.0.2.2"), now), Turn::Go);
        assert!(matches!(
            throttle.turn("d", ip("192.0.2.1"), now),
            Turn::WaitUntil(_)
        ));
    }

    #[test]
    fn memory_stays_bounded_and_locks_outlive_sprayed_logins() {
        let mut throttle = AuthThrottle::new(ThrottleConfig {
            max_entries: 10,
            max_failures: 2,
            ..config()
        });
        let now = Instant::now();
        throttle.failed("victim", ip("192.0.2.1"), now);
        throttle.failed("victim", ip("192.0.2.1"), now);
        for i in 0..1000u32 {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            throttle.failed(&format!("spray{i}"), address, now + SECOND);
        }
        let (logins, addresses) = throttle.len();
        assert!(logins <= 10 && addresses <= 10, "{logins} {addresses}");
        assert!(matches!(
            throttle.turn("victim", ip("198.51.100.1"), now + 20 * SECOND),
            Turn::Locked { .. }
        ));
        assert!(throttle.len().0 <= 10);
        // A login of any length costs the same few bytes.
        throttle.failed(&"x".repeat(10_000), ip("192.0.2.2"), now);
    }
}
