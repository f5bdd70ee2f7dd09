//! A hybrid logical clock (HLC) for last-write-wins timestamps and for
//! versioning cluster metadata.
//!
//! An [`Hlc`] is a physical time in milliseconds plus a logical counter, and
//! an [`HlcClock`] hands out stamps that are strictly increasing on one node
//! and that order after every stamp the node has observed in a message, even
//! when the node's wall clock lags or jumps backwards. A write whose
//! coordinator has seen an earlier write (it stored it, or a message carried
//! its stamp) therefore gets a larger stamp, whatever the clocks say.
//!
//! # Packing
//! A stamp is one `u64`: the top 48 bits are milliseconds since the Unix
//! epoch (enough until the year 10889), the low 16 bits the logical counter.
//! The integer order is the HLC order, so a stamp fits the existing
//! [`Sibling::timestamp_ms`](crate::version::Sibling::timestamp_ms) field and
//! compares correctly there without a format change. A plain millisecond value
//! written before the HLC existed reads as a stamp from early 1970 (its
//! `wall_ms` is the value divided by 65 536), so it loses to every HLC stamp:
//! older data sorts first, which is what last-write-wins needs.
//!
//! # Drift
//! [`HlcClock::observe`] takes a `max_drift_ms`. A remote stamp more than that
//! ahead of the local wall clock is *clamped*: the clock advances only to the
//! largest stamp within the drift (`wall + max_drift_ms`, logical `u16::MAX`),
//! and `observe` returns `true` so the caller can count and log it. CockroachDB
//! rejects such messages instead; we never fail a write or drop a message
//! because of another node's clock. Without the clamp one node with a clock
//! years ahead would drag every clock it talks to into the future, for good.
//! The price: a local write made after observing a clamped stamp can get a
//! smaller stamp than that remote write and lose to it under last-write-wins,
//! until the local wall clock catches up.
//!
//! Everything here is pure: the wall clock reading is an argument.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Bits of the logical counter in a packed stamp.
const LOGICAL_BITS: u32 = 16;

/// Largest wall-clock value a stamp can hold, in ms since the Unix epoch
/// (48 bits: the year 10889). Larger readings are clamped to it.
pub const WALL_MS_MAX: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

/// A hybrid logical clock stamp: 48 bits of milliseconds since the Unix epoch
/// and a 16-bit logical counter, packed in a `u64` whose integer order is the
/// stamp order (see the [module docs](self) on packing).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Hlc(u64);

impl Hlc {
    /// The smallest stamp; every issued stamp is larger.
    pub const ZERO: Hlc = Hlc(0);

    /// A stamp from its parts; `wall_ms` above [`WALL_MS_MAX`] is clamped to it.
    pub fn from_parts(wall_ms: u64, logical: u16) -> Hlc {
        Hlc((wall_ms.min(WALL_MS_MAX) << LOGICAL_BITS) | u64::from(logical))
    }

    /// The physical part: milliseconds since the Unix epoch.
    pub fn wall_ms(&self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter: orders stamps within one millisecond.
    pub fn logical(&self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// The packed form, as stored in `Sibling::timestamp_ms`.
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// Reads a packed stamp (every `u64` is one).
    pub fn from_u64(v: u64) -> Hlc {
        Hlc(v)
    }

    /// The next stamp: logical + 1, or the next millisecond with logical 0
    /// when the counter is full (the carry of the packed `+ 1`). Saturates at
    /// the largest stamp, which a real clock never reaches.
    fn successor(self) -> Hlc {
        Hlc(self.0.saturating_add(1))
    }
}

impl fmt::Display for Hlc {
    /// `wall_ms.logical`, e.g. `1700000000000.3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ms(), self.logical())
    }
}

/// One node's hybrid logical clock: remembers the last stamp issued or
/// observed, so every new stamp is larger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// A clock that has issued and observed nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock resuming after `last` (for instance the largest stamp found in
    /// local data after a restart), so it never reissues a stamp.
    pub fn resume_after(last: Hlc) -> Self {
        HlcClock { last }
    }

    /// The last stamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A new stamp for a local event, given the wall clock reading in ms since
    /// the Unix epoch: strictly greater than every stamp issued or observed
    /// before (observed stamps beyond the drift count as their clamped value),
    /// and at least `wall_ms` when the wall clock is ahead of everything seen.
    /// A wall clock that stands still or jumps backwards only advances the
    /// logical counter; a full counter carries into the millisecond part.
    pub fn now(&mut self, wall_ms: u64) -> Hlc {
        let physical = Hlc::from_parts(wall_ms, 0);
        self.last = if physical > self.last {
            physical
        } else {
            self.last.successor()
        };
        self.last
    }

    /// Observes a stamp from a message, so later local stamps order after it.
    ///
    /// A stamp more than `max_drift_ms` ahead of `wall_ms` is still accepted
    /// but clamped: the clock advances only to `wall_ms + max_drift_ms` (with
    /// the largest logical counter). Returns whether the stamp was beyond the
    /// drift, for the caller to count; nothing is ever refused (see the
    /// [module docs](self) on drift).
    pub fn observe(&mut self, remote: Hlc, wall_ms: u64, max_drift_ms: u64) -> bool {
        let limit_ms = wall_ms.saturating_add(max_drift_ms);
        let beyond = remote.wall_ms() > limit_ms;
        let seen = if beyond {
            Hlc::from_parts(limit_ms, u16::MAX)
        } else {
            remote
        };
        self.last = self.last.max(seen);
        beyond
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packs_and_unpacks() {
        let h = Hlc::from_parts(1_700_000_000_000, 7);
        assert_eq!(h.wall_ms(), 1_700_000_000_000);
        assert_eq!(h.logical(), 7);
        assert_eq!(Hlc::from_u64(h.to_u64()), h);
        assert_eq!(h.to_string(), "1700000000000.7");
        assert!(Hlc::from_parts(5, u16::MAX) < Hlc::from_parts(6, 0));
        assert_eq!(Hlc::from_parts(u64::MAX, 0).wall_ms(), WALL_MS_MAX);
    }

    #[test]
    fn follows_the_wall_clock_and_counts_within_a_millisecond() {
        let mut c = HlcClock::new();
        assert_eq!(c.now(100), Hlc::from_parts(100, 0));
        assert_eq!(c.now(100), Hlc::from_parts(100, 1));
        // The wall clock jumps back: only the counter moves.
        assert_eq!(c.now(50), Hlc::from_parts(100, 2));
        assert_eq!(c.now(101), Hlc::from_parts(101, 0));
    }

    #[test]
    fn a_full_counter_carries_into_the_millisecond() {
        let mut c = HlcClock::resume_after(Hlc::from_parts(100, u16::MAX - 1));
        assert_eq!(c.now(100), Hlc::from_parts(100, u16::MAX));
        assert_eq!(c.now(100), Hlc::from_parts(101, 0));
        assert_eq!(c.now(100), Hlc::from_parts(101, 1));
    }

    #[test]
    fn observing_within_drift_orders_later_events_after_the_remote() {
        let mut c = HlcClock::new();
        let remote = Hlc::from_parts(1_500, 3);
        assert!(!c.observe(remote, 1_000, 1_000));
        assert_eq!(c.now(1_000), Hlc::from_parts(1_500, 4));
    }

    #[test]
    fn a_stamp_beyond_drift_is_clamped_and_reported() {
        let mut c = HlcClock::new();
        let far = Hlc::from_parts(10_000_000, 0);
        assert!(c.observe(far, 1_000, 500));
        assert_eq!(c.last(), Hlc::from_parts(1_500, u16::MAX));
        assert_eq!(c.now(1_000), Hlc::from_parts(1_501, 0));
        // An old stamp never moves the clock back.
        assert!(!c.observe(Hlc::from_parts(10, 0), 1_000, 500));
        assert_eq!(c.last(), Hlc::from_parts(1_501, 0));
    }

    #[test]
    fn serializes_as_the_packed_integer() {
        let h = Hlc::from_parts(3, 2);
        assert_eq!(
            postcard::from_bytes::<Hlc>(&postcard::to_stdvec(&h).unwrap()).unwrap(),
            h
        );
        assert_eq!(
            postcard::to_stdvec(&h).unwrap(),
            postcard::to_stdvec(&h.to_u64()).unwrap()
        );
    }

    #[derive(Clone, Debug)]
    enum Event {
        Now { wall: u64 },
        Observe { remote: u64, wall: u64, drift: u64 },
    }

    /// Wall readings over a small range, so they repeat, stall and go backwards,
    /// and remote stamps near them, sometimes far beyond any drift.
    fn event() -> impl Strategy<Value = Event> {
        let wall = 1_000u64..1_100;
        prop_oneof![
            wall.clone().prop_map(|wall| Event::Now { wall }),
            (
                prop_oneof![
                    (900u64..1_300, any::<u16>()).prop_map(|(w, l)| Hlc::from_parts(w, l).to_u64()),
                    any::<u64>(),
                ],
                wall,
                0u64..200
            )
                .prop_map(|(remote, wall, drift)| Event::Observe {
                    remote,
                    wall,
                    drift
                }),
        ]
    }

    proptest! {
        #[test]
        fn stamps_are_strictly_increasing_and_follow_observations(events in proptest::collection::vec(event(), 0..200)) {
            let mut c = HlcClock::new();
            let mut last_issued: Option<Hlc> = None;
            // The largest observation within drift (or clamped value) since the last `now`.
            let mut pending: Option<Hlc> = None;
            for e in events {
                let before = c.last();
                match e {
                    Event::Now { wall } => {
                        let t = c.now(wall);
                        prop_assert!(t > before);
                        prop_assert!(t.wall_ms() >= wall);
                        if let Some(prev) = last_issued {
                            prop_assert!(t > prev);
                        }
                        if let Some(p) = pending.take() {
                            prop_assert!(t > p);
                        }
                        last_issued = Some(t);
                    }
                    Event::Observe { remote, wall, drift } => {
                        let remote = Hlc::from_u64(remote);
                        let beyond = c.observe(remote, wall, drift);
                        prop_assert_eq!(beyond, remote.wall_ms() > wall + drift);
                        prop_assert!(c.last() >= before);
                        if beyond {
                            prop_assert!(c.last().wall_ms() <= (wall + drift).max(before.wall_ms()));
                        } else {
                            prop_assert!(c.last() >= remote);
                            pending = Some(pending.map_or(remote, |p| p.max(remote)));
                        }
                    }
                }
            }
        }

        #[test]
        fn now_after_observe_is_greater_than_the_observed(remote_wall in 0u64..1_000_000, logical in any::<u16>(), wall in 0u64..1_000_000, drift in 0u64..1_000_000, prior in 0u64..1_000_000) {
            let mut c = HlcClock::new();
            c.now(prior);
            let remote = Hlc::from_parts(remote_wall, logical);
            let beyond = c.observe(remote, wall, drift);
            let t = c.now(wall);
            if beyond {
                prop_assert!(t.wall_ms() <= (wall + drift + 1).max(prior + 1));
            } else {
                prop_assert!(t > remote);
            }
        }

        #[test]
        fn order_of_stamps_is_order_of_parts(a in any::<u64>(), b in any::<u64>()) {
            let (x, y) = (Hlc::from_u64(a), Hlc::from_u64(b));
            prop_assert_eq!(x.cmp(&y), (x.wall_ms(), x.logical()).cmp(&(y.wall_ms(), y.logical())));
            prop_assert_eq!(Hlc::from_parts(x.wall_ms(), x.logical()), x);
        }
    }
}
