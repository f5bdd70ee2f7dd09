//! The `Store` conformance suite against the fjall engine, each case on a
//! store of its own in a temporary directory.

use ringkv_storage::conformance::{Engine, RING_SIZE};
use ringkv_storage_fjall::fjall_store::FjallStore;

/// A fjall store in a temporary directory that lives as long as the test.
/// A restart closes the store and opens the directory again.
struct TempFjall {
    dir: tempfile::TempDir,
}

impl TempFjall {
    fn new() -> Self {
        TempFjall {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }
}

impl Engine for TempFjall {
    type Store = FjallStore;

    fn open(&mut self) -> FjallStore {
        FjallStore::open(self.dir.path(), RING_SIZE).expect("opening the store")
    }

    fn restart(&mut self, store: FjallStore) -> FjallStore {
        drop(store);
        self.open()
    }
}

ringkv_storage::store_conformance_tests!(TempFjall::new());
