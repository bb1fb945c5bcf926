//! Log lines an attacker cannot multiply: at most so many per window, the rest counted and
//! reported with the next line that gets through. Pure: `now` is passed in.

use std::time::{Duration, Instant};

/// At most `per_window` lines per `window`.
#[derive(Debug, Clone)]
pub struct LogLimit {
    per_window: u32,
    window: Duration,
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    /// A limit of `per_window` lines every `window`.
    pub const fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            window_start: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)` with the number of lines left out since
    /// the last one logged (log it with the line), `None` when this one is left out too.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let new_window = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if new_window {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < self.per_window {
            self.logged += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_beyond_the_limit_are_counted_and_reported_later() {
        let mut limit = LogLimit::new(2, Duration::from_secs(10));
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let allowed: Vec<Option<u64>> = [0, 1, 2, 3, 9, 10, 11, 12, 25]
            .into_iter()
            .map(|s| limit.allow(at(s)))
            .collect();
        assert_eq!(
            allowed,
            [
                Some(0),
                Some(0),
                None,
                None,
                None,
                Some(3), // a new window: the three left out are reported
                Some(0),
                None,
                Some(1),
            ]
        );
    }
}
