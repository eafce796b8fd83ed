//! The one retry policy of Scoria's background loops: jittered exponential backoff.

use std::time::Duration;

use uuid::Uuid;

/// Pauses between attempts that double from a floor up to a cap, the second half of each
/// random so that many processes retrying at once do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Pauses from `min` (first attempt) doubling up to `max`.
    pub const fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            attempt: 0,
        }
    }

    /// The policy for reaching the message broker again: 0.1 s doubling up to 5 s.
    pub const fn reconnect() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The pause before the next attempt; each call counts one attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // A v4 uuid is 122 random bits: enough randomness without another dependency.
        let random = (Uuid::new_v4().as_u128() as u32) as f64 / u32::MAX as f64;
        ceiling.mul_f64(0.5 + 0.5 * random)
    }

    /// Sleeps for [`Backoff::next_delay`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        let mut backoff = Backoff::new(min, max);
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for ceiling in ceilings.map(Duration::from_millis) {
            let pause = backoff.next_delay();
            assert!(
                pause >= ceiling / 2 && pause <= ceiling,
                "{pause:?} for {ceiling:?}"
            );
        }
        assert_eq!(backoff.attempts(), ceilings.len() as u32);
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut backoff = Backoff::reconnect();
        for _ in 0..100 {
            assert!(backoff.next_delay() <= Duration::from_secs(5));
        }
    }
}
