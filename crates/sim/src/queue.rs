//! The discrete-event queue: events ordered by (time, sequence number).
//!
//! Simulated time jumps from one event to the next. Two events at the same
//! microsecond run in the order they were scheduled (the sequence number), so
//! the order never depends on anything but the run's own choices.
//!
//! The heap holds only `(time, seq, slot)`; the events themselves (peer
//! messages with whole objects) sit still in a slab of reused slots instead
//! of being moved at every heap swap.
//!
//! Many events are scheduled a fixed delay after "now" (a coordinator's
//! timeout, a client's timeout). Their times never decrease, so they go to
//! FIFO *lanes* instead of the heap ([`EventQueue::push_fifo`]): O(1) each,
//! and the heap stays small (it holds the messages in flight). `pop` takes
//! the smallest `(time, seq)` among the heap's top and the lanes' fronts, so
//! the order is exactly the one a single heap would give.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Most FIFO lanes; later lane keys fall back to the heap.
const LANES_MAX: usize = 8;

/// A scheduled event's place: (time µs, sequence number, slab slot).
type Entry = (u64, u64, usize);

/// Where the next event comes from.
#[derive(Clone, Copy)]
enum Source {
    Heap,
    Lane(usize),
}

/// A time-ordered queue of events of type `E`; times are simulated µs.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry>>,
    /// `(lane key, (time, seq, slot))` in non-decreasing time.
    lanes: Vec<(u64, VecDeque<Entry>)>,
    slots: Vec<Option<E>>,
    free: Vec<usize>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            lanes: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn store(&mut self, event: E) -> (u64, usize) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(event);
                s
            }
            None => {
                self.slots.push(Some(event));
                self.slots.len() - 1
            }
        };
        let seq = self.seq;
        self.seq += 1;
        (seq, slot)
    }

    /// Schedules `event` at `at_us`.
    pub fn push(&mut self, at_us: u64, event: E) {
        let (seq, slot) = self.store(event);
        self.heap.push(Reverse((at_us, seq, slot)));
    }

    /// Schedules `event` at `at_us` in the FIFO lane named `lane` (say, the
    /// delay it was scheduled with). Same order as [`EventQueue::push`];
    /// faster when a lane's times never decrease (otherwise, or when there
    /// are too many lanes, the event goes to the heap).
    pub fn push_fifo(&mut self, lane: u64, at_us: u64, event: E) {
        let i = match self.lanes.iter().position(|(k, _)| *k == lane) {
            Some(i) => Some(i),
            None if self.lanes.len() < LANES_MAX => {
                self.lanes.push((lane, VecDeque::new()));
                Some(self.lanes.len() - 1)
            }
            None => None,
        };
        let (seq, slot) = self.store(event);
        match i {
            Some(i) if self.lanes[i].1.back().is_none_or(|b| b.0 <= at_us) => {
                self.lanes[i].1.push_back((at_us, seq, slot));
            }
            _ => self.heap.push(Reverse((at_us, seq, slot))),
        }
    }

    /// The earliest event and its time (the first scheduled among equals).
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let mut best = self.heap.peek().map(|Reverse(e)| (e.0, e.1));
        let mut from = Source::Heap;
        for (i, (_, lane)) in self.lanes.iter().enumerate() {
            if let Some(&(at, seq, _)) = lane.front()
                && best.is_none_or(|b| (at, seq) < b)
            {
                best = Some((at, seq));
                from = Source::Lane(i);
            }
        }
        best?;
        let (at, _, slot) = match from {
            Source::Heap => self.heap.pop().expect("peeked").0,
            Source::Lane(i) => self.lanes[i].1.pop_front().expect("peeked"),
        };
        let event = self.slots[slot]
            .take()
            .expect("a queued slot holds its event");
        self.free.push(slot);
        Some((at, event))
    }

    /// The time of the earliest event, without taking it.
    pub fn peek_us(&self) -> Option<u64> {
        let heap = self.heap.peek().map(|Reverse(e)| e.0);
        let lanes = self
            .lanes
            .iter()
            .filter_map(|(_, l)| l.front().map(|e| e.0));
        heap.into_iter().chain(lanes).min()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len() + self.lanes.iter().map(|(_, l)| l.len()).sum::<usize>()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_by_insertion() {
        let mut q = EventQueue::new();
        q.push(30, "c");
        q.push(10, "a1");
        q.push(20, "b");
        q.push(10, "a2");
        assert_eq!(q.len(), 4);
        assert_eq!(q.pop(), Some((10, "a1")));
        q.push(10, "a3");
        assert_eq!(q.pop(), Some((10, "a2")));
        assert_eq!(q.pop(), Some((10, "a3")));
        assert_eq!(q.pop(), Some((20, "b")));
        assert_eq!(q.pop(), Some((30, "c")));
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn lanes_keep_the_order_of_a_single_heap() {
        // The same schedule through lanes and through the heap alone.
        let mut lanes = EventQueue::new();
        let mut heap = EventQueue::new();
        let mut x = 12345u64;
        let mut now = 0;
        for i in 0..2_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            now += (x >> 60) % 3;
            let (lane, at) = match (x >> 40) % 4 {
                0 => (1, now + 100),
                1 => (2, now + 7),
                2 => (3, now + (x >> 20) % 50), // not monotone: falls back
                _ => (99 + i % 20, now + 5),    // too many lanes: falls back
            };
            lanes.push_fifo(lane, at, i);
            heap.push(at, i);
            if x.is_multiple_of(3) {
                assert_eq!(lanes.pop(), heap.pop());
            }
        }
        assert_eq!(lanes.len(), heap.len());
        while let Some(e) = heap.pop() {
            assert_eq!(lanes.pop(), Some(e));
        }
        assert!(lanes.is_empty());
    }

    #[test]
    fn reuses_slots() {
        let mut q = EventQueue::new();
        for round in 0..100u64 {
            q.push(round, round);
            q.push(round, round + 1000);
            assert_eq!(q.pop(), Some((round, round)));
            assert_eq!(q.pop(), Some((round, round + 1000)));
        }
        assert!(q.slots.len() <= 2);
    }
}
