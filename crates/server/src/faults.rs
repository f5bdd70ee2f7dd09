//! Test-only fault injection for real processes: drop or delay the traffic
//! this node sends to chosen peers. There is no kernel traffic shaping on
//! the machines we test on, so partitions of real processes are made here,
//! in the transport. Served under `/v1/admin/faults` only when the node was
//! started with `--fault-injection`.

use std::sync::{Arc, Mutex};

use ringkv_core::NodeId;
use ringkv_core::api::FaultTable;

pub use ringkv_core::api::{DELAY_MS_MAX, LinkFault};

/// The faults in force, per peer; shared by the HTTP API and the links.
#[derive(Clone, Default)]
pub struct Faults {
    table: Arc<Mutex<FaultTable>>,
}

impl Faults {
    /// The fault on the link to `peer`, if any.
    pub fn get(&self, peer: &NodeId) -> Option<LinkFault> {
        self.table.lock().expect("faults lock").get(peer).cloned()
    }

    /// Sets (replaces) the fault on the link to `peer`.
    pub fn set(&self, peer: NodeId, fault: LinkFault) {
        self.table.lock().expect("faults lock").insert(peer, fault);
    }

    /// Removes the fault on the link to `peer`; returns whether there was one.
    pub fn clear(&self, peer: &NodeId) -> bool {
        self.table
            .lock()
            .expect("faults lock")
            .remove(peer)
            .is_some()
    }

    /// Removes every fault.
    pub fn clear_all(&self) {
        self.table.lock().expect("faults lock").clear();
    }

    /// Every fault in force.
    pub fn all(&self) -> FaultTable {
        self.table.lock().expect("faults lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_tracks_faults() {
        assert!(
            LinkFault {
                drop: 1.5,
                delay_ms: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            LinkFault {
                drop: 0.5,
                delay_ms: DELAY_MS_MAX + 1,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        let f = Faults::default();
        let n2 = NodeId::from("n2");
        f.set(
            n2.clone(),
            LinkFault {
                drop: 1.0,
                delay_ms: 0,
                ..Default::default()
            },
        );
        assert_eq!(f.get(&n2).unwrap().drop, 1.0);
        assert!(f.clear(&n2));
        assert!(!f.clear(&n2));
        assert!(f.all().is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// The body of `PUT /v1/admin/faults/{peer}`, decoded and checked as
        /// the route does: arbitrary bytes are a valid fault or an error.
        #[test]
        fn arbitrary_fault_bodies_are_valid_or_refused(
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            if let Ok(f) = serde_json::from_slice::<LinkFault>(&b)
                && f.validate().is_ok()
            {
                proptest::prop_assert!((0.0..=1.0).contains(&f.drop));
                proptest::prop_assert!(f.delay_ms <= DELAY_MS_MAX);
            }
        }

        /// Numbers of every kind, NaN-like and huge ones included.
        #[test]
        fn fault_numbers_are_checked(
            drop in "-?[0-9]{0,400}(\\.[0-9]{0,5})?(e-?[0-9]{1,4})?|NaN|Infinity|null|\"1\"",
            delay in "-?[0-9]{0,25}(\\.5)?|null|1e3",
        ) {
            let body = format!("{{\"drop\": {drop}, \"delay_ms\": {delay}}}");
            if let Ok(f) = serde_json::from_str::<LinkFault>(&body) {
                let checked = f.validate();
                let in_range = (0.0..=1.0).contains(&f.drop) && f.delay_ms <= DELAY_MS_MAX;
                proptest::prop_assert_eq!(checked.is_ok(), in_range);
            }
        }
    }
}
