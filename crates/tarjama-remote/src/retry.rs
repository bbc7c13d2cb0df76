//! When to try a request again, and how long to wait first.
//!
//! A remote server fails in ways that pass: a dropped connection, a timeout, a 429 while
//! it is busy, a 5xx while it restarts, an answer cut short. Those are retried with
//! exponential backoff and full jitter (so that many clients do not come back in step),
//! honouring the server's `Retry-After`. Anything else (a 400, a 401, a 404) would fail
//! the same way again and is reported at once.

use std::time::Duration;

use serde::Serialize;

/// Why an attempt is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The connection could not be made or was dropped.
    Connection,
    /// No answer, or no next piece of it, within the timeout.
    Timeout,
    /// 429: the server asks us to slow down.
    RateLimited,
    /// A 5xx status.
    ServerError,
    /// The answer ended before the server said it was complete.
    CutShort,
}

impl Cause {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Connection => "connection",
            Cause::Timeout => "timeout",
            Cause::RateLimited => "rate_limited",
            Cause::ServerError => "server_error",
            Cause::CutShort => "cut_short",
        }
    }
}

/// Retries made, by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Retries {
    /// Dropped or refused connections.
    pub connection: u64,
    /// Timeouts.
    pub timeout: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 5xx answers.
    pub server_error: u64,
    /// Answers cut short.
    pub cut_short: u64,
}

impl Retries {
    /// Counts one retry for `cause`.
    pub fn add(&mut self, cause: Cause) {
        *match cause {
            Cause::Connection => &mut self.connection,
            Cause::Timeout => &mut self.timeout,
            Cause::RateLimited => &mut self.rate_limited,
            Cause::ServerError => &mut self.server_error,
            Cause::CutShort => &mut self.cut_short,
        } += 1;
    }

    /// All retries.
    pub fn total(&self) -> u64 {
        self.connection + self.timeout + self.rate_limited + self.server_error + self.cut_short
    }
}

/// How many times to retry and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Retries after the first attempt (0: none).
    pub retries: u32,
    /// The wait before the first retry; it doubles with each one.
    pub base: Duration,
    /// The longest wait, also the cap on a server's `Retry-After`.
    pub cap: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retries: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl Policy {
    /// The wait before retry number `retry` (0 for the first): the server's `Retry-After`
    /// when it gave one (capped), else `base * 2^retry` (capped) scaled by `jitter`, a
    /// number in [0, 1) drawn at random by the caller: waits fall between half and all of
    /// the exponential step.
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.cap);
        }
        let step = self
            .base
            .saturating_mul(1u32 << retry.min(20))
            .min(self.cap);
        step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// A `Retry-After` header: delay-seconds (an HTTP-date is rare from these servers and is
/// treated as absent, which falls back to the backoff).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_between_half_and_all() {
        let p = Policy {
            retries: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert_eq!(p.wait(0, None, 1.0), Duration::from_millis(100));
        assert_eq!(p.wait(0, None, 0.0), Duration::from_millis(50));
        assert_eq!(p.wait(2, None, 1.0), Duration::from_millis(400));
        assert_eq!(p.wait(3, None, 0.5), Duration::from_millis(600));
        assert_eq!(p.wait(4, None, 1.0), Duration::from_secs(1), "capped");
        assert_eq!(p.wait(60, None, 1.0), Duration::from_secs(1), "no overflow");
    }

    #[test]
    fn retry_after_wins_over_the_backoff_but_not_over_the_cap() {
        let p = Policy::default();
        let after = parse_retry_after(" 2 ");
        assert_eq!(after, Some(Duration::from_secs(2)));
        assert_eq!(p.wait(0, after, 0.0), Duration::from_secs(2));
        assert_eq!(p.wait(0, parse_retry_after("3600"), 0.0), p.cap);
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn retries_are_counted_by_cause() {
        let mut r = Retries::default();
        for cause in [Cause::Connection, Cause::RateLimited, Cause::RateLimited] {
            r.add(cause);
        }
        assert_eq!((r.connection, r.rate_limited, r.total()), (1, 2, 3));
        assert_eq!(Cause::CutShort.name(), "cut_short");
    }
}
