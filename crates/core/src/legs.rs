//! Latency of the four legs of replica requests (the WARS legs of
//! probabilistically bounded staleness, Bailis et al.), as windowed
//! histograms a node keeps of the requests it coordinates:
//!
//! - **W**: coordinator sends a write -> replica receives it;
//! - **A**: replica sends its ack -> coordinator receives it;
//! - **R**: coordinator sends a read -> replica receives it;
//! - **S**: replica sends its reply -> coordinator receives it.
//!
//! A one-way leg is the difference of two clocks: the sender's stamp and the
//! receiver's. The node takes both from the runtime's wall clock, so a leg
//! is exact when the clocks agree (one host, as in tests) and off by the
//! clocks' offset otherwise (NTP keeps it well under a millisecond on a LAN;
//! the sum W + A and R + S is exact whatever the offset). A negative
//! difference, from clock offset, counts as 0.
//!
//! Memory is bounded and the view is live: each leg keeps two generations
//! of [`WINDOW_SAMPLES`] samples; when the current one is full it replaces
//! the previous one, so the histograms describe the last 4,096 to 8,192
//! samples of each leg.

use hdrhistogram::Histogram;

use crate::pbs::Empirical;

/// Samples per generation of a [`LegWindow`].
pub const WINDOW_SAMPLES: u64 = 4_096;

/// The longest leg recorded, in µs; longer ones count as this (a minute:
/// longer than any request's timeout).
pub const LEG_US_MAX: u64 = 60_000_000;

/// One of the four legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Leg {
    /// Coordinator -> replica, a write.
    Write,
    /// Replica -> coordinator, a write's ack.
    Ack,
    /// Coordinator -> replica, a read.
    Read,
    /// Replica -> coordinator, a read's reply.
    Response,
}

/// A new histogram for one generation: 1 µs to [`LEG_US_MAX`], two
/// significant digits (1 % resolution), 32-bit counts.
fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, LEG_US_MAX, 2).expect("valid histogram bounds")
}

/// One leg's latencies: the last [`WINDOW_SAMPLES`] to twice as many.
#[derive(Clone, Debug)]
pub struct LegWindow {
    current: Histogram<u32>,
    previous: Histogram<u32>,
}

impl Default for LegWindow {
    fn default() -> Self {
        LegWindow {
            current: histogram(),
            previous: histogram(),
        }
    }
}

impl LegWindow {
    /// Records one latency, in µs (capped at [`LEG_US_MAX`]).
    pub fn record(&mut self, us: u64) {
        if self.current.len() >= WINDOW_SAMPLES {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.reset();
        }
        self.current.saturating_record(us.min(LEG_US_MAX));
    }

    /// How many samples the window holds.
    pub fn count(&self) -> u64 {
        self.current.len() + self.previous.len()
    }

    /// Adds `other`'s samples to this window's (e.g. to pool nodes'
    /// windows); the sum is no longer bounded by the window size.
    pub fn merge(&mut self, other: &LegWindow) {
        // Same bounds on both sides: addition cannot fail.
        let _ = self.previous.add(&other.previous);
        let _ = self.previous.add(&other.current);
    }

    /// The window's distribution, for the model to draw from: each
    /// histogram bucket at its median value.
    pub fn empirical(&self) -> Empirical {
        let mut pairs: Vec<(u64, u64)> = Vec::new();
        for h in [&self.previous, &self.current] {
            for v in h.iter_recorded() {
                let value = h.median_equivalent(v.value_iterated_to());
                pairs.push((value, u64::from(v.count_at_value())));
            }
        }
        Empirical::from_weighted(pairs)
    }

    /// The latency at quantile `q` (0..=1), in µs; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let mut both = self.previous.clone();
        let _ = both.add(&self.current);
        both.value_at_quantile(q.clamp(0.0, 1.0))
    }
}

/// The four legs' windows.
#[derive(Clone, Debug, Default)]
pub struct LegHistograms {
    /// W: write to replica.
    pub write: LegWindow,
    /// A: ack to coordinator.
    pub ack: LegWindow,
    /// R: read to replica.
    pub read: LegWindow,
    /// S: reply to coordinator.
    pub response: LegWindow,
}

impl LegHistograms {
    /// The window of `leg`.
    pub fn get(&self, leg: Leg) -> &LegWindow {
        match leg {
            Leg::Write => &self.write,
            Leg::Ack => &self.ack,
            Leg::Read => &self.read,
            Leg::Response => &self.response,
        }
    }

    /// Records a replica's reply to a request this node sent at `sent_us`:
    /// the replica received it at `replica_recv_us` and answered at
    /// `replica_sent_us` (its clock), the answer arrived at `now_us`. The
    /// request's leg is `out`, the reply's `back`. A reply whose stamps
    /// are out of order on the replica's own clock, or zero (not stamped),
    /// is ignored.
    pub fn record_reply(
        &mut self,
        (out, back): (Leg, Leg),
        sent_us: u64,
        (replica_recv_us, replica_sent_us): (u64, u64),
        now_us: u64,
    ) {
        if sent_us == 0 || replica_recv_us == 0 || replica_sent_us < replica_recv_us {
            return;
        }
        self.window(out)
            .record(replica_recv_us.saturating_sub(sent_us));
        self.window(back)
            .record(now_us.saturating_sub(replica_sent_us));
    }

    fn window(&mut self, leg: Leg) -> &mut LegWindow {
        match leg {
            Leg::Write => &mut self.write,
            Leg::Ack => &mut self.ack,
            Leg::Read => &mut self.read,
            Leg::Response => &mut self.response,
        }
    }

    /// Adds `other`'s samples, leg by leg.
    pub fn merge(&mut self, other: &LegHistograms) {
        self.write.merge(&other.write);
        self.ack.merge(&other.ack);
        self.read.merge(&other.read);
        self.response.merge(&other.response);
    }

    /// Samples held, per leg: `[W, A, R, S]`.
    pub fn counts(&self) -> [u64; 4] {
        [
            self.write.count(),
            self.ack.count(),
            self.read.count(),
            self.response.count(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_keeps_between_one_and_two_generations() {
        let mut w = LegWindow::default();
        for i in 0..WINDOW_SAMPLES {
            w.record(1_000 + i % 7);
        }
        assert_eq!(w.count(), WINDOW_SAMPLES);
        for _ in 0..WINDOW_SAMPLES {
            w.record(50_000);
        }
        assert_eq!(w.count(), 2 * WINDOW_SAMPLES);
        w.record(50_000);
        // The first generation (about 1 ms) is gone.
        assert_eq!(w.count(), WINDOW_SAMPLES + 1);
        assert!(w.quantile_us(0.0) >= 49_000, "{}", w.quantile_us(0.0));
    }

    #[test]
    fn replies_make_both_legs_and_bad_stamps_none() {
        let mut h = LegHistograms::default();
        h.record_reply((Leg::Write, Leg::Ack), 1_000, (6_000, 6_500), 9_500);
        assert_eq!(h.counts(), [1, 1, 0, 0]);
        let w = h.write.quantile_us(0.5);
        let a = h.ack.quantile_us(0.5);
        assert!((4_950..=5_050).contains(&w), "{w}");
        assert!((2_970..=3_030).contains(&a), "{a}");
        // Not stamped, or the replica's own stamps out of order.
        h.record_reply((Leg::Read, Leg::Response), 0, (6_000, 6_500), 9_500);
        h.record_reply((Leg::Read, Leg::Response), 1_000, (6_000, 5_000), 9_500);
        assert_eq!(h.counts(), [1, 1, 0, 0]);
        // Clock offset: a replica clock behind ours gives 0, not a wrap.
        h.record_reply((Leg::Read, Leg::Response), 8_000, (6_000, 6_500), 9_500);
        assert_eq!(h.read.quantile_us(1.0), 0);
    }

    #[test]
    fn empirical_draws_follow_the_window() {
        let mut w = LegWindow::default();
        for _ in 0..300 {
            w.record(2_000);
        }
        for _ in 0..100 {
            w.record(10_000);
        }
        let e = w.empirical();
        assert_eq!(e.total(), 400);
        let near = |a: u64, b: u64| a.abs_diff(b) * 100 <= b;
        assert!(near(e.draw(0), 2_000));
        assert!(near(e.draw(299), 2_000));
        assert!(near(e.draw(300), 10_000));
        assert!(near(e.draw(399), 10_000));
    }
}
