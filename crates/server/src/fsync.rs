//! The periodic fsync (`--sync periodic`) on a thread of its own.
//!
//! An fsync takes a millisecond or more. Made inline, it stopped the node's
//! loop for that long every interval, and every request the node was
//! coordinating or serving as a replica waited; with three nodes a request
//! ran into one of these stops often enough to show in the p99 latency
//! (docs/benchmarks.md, "Sixth round"). Replies in periodic mode never wait
//! for the fsync, so nothing needs the loop to wait either: the loop flushes
//! the journal to the OS as for every batch, then asks this thread to make
//! it durable, and goes on.

use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use ringkv_storage::StoreError;
use tracing::error;

/// A thread that makes flushed writes durable when asked.
pub struct BackgroundSync {
    requests: mpsc::SyncSender<()>,
    failure: Arc<Mutex<Option<String>>>,
}

impl BackgroundSync {
    /// Starts the thread. `sync` must make every write flushed before it is
    /// called durable. The thread ends when this handle is dropped, or
    /// after the first failed sync.
    pub fn start(
        mut sync: impl FnMut() -> Result<(), StoreError> + Send + 'static,
    ) -> std::io::Result<Self> {
        // One slot: a request waiting to start covers every flush before it
        // starts, so a second waiting request would add nothing.
        let (requests, pending) = mpsc::sync_channel::<()>(1);
        let failure = Arc::new(Mutex::new(None));
        let failed = Arc::clone(&failure);
        // The thread's log lines carry the node's span, as the tasks' do.
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("ringkv-fsync".into())
            .spawn(move || {
                let _node = span.enter();
                for () in pending {
                    if let Err(e) = sync() {
                        error!(error = %e, "the periodic fsync failed; the node refuses writes from now on");
                        *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                        // After a failed fsync the kernel may have dropped the
                        // dirty pages: a retry could succeed without making
                        // those writes durable. Stop instead.
                        return;
                    }
                }
            })?;
        Ok(BackgroundSync { requests, failure })
    }

    /// Asks for every write flushed so far to be made durable; never waits.
    pub fn request(&self) {
        match self.requests.try_send(()) {
            // A request already waiting covers this one.
            Ok(()) | Err(TrySendError::Full(())) => {}
            // The thread stopped after a failure, which `failure` reports.
            Err(TrySendError::Disconnected(())) => {}
        }
    }

    /// Why a sync failed, once one has: from then on the node cannot make
    /// writes durable.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Waits up to 10 s for `done`.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn requests_made_during_a_sync_are_served_by_one_more() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let counted = Arc::clone(&runs);
        let bg = BackgroundSync::start(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            // Every sync waits until the test lets it finish.
            gate.lock().unwrap().recv().unwrap();
            Ok(())
        })
        .unwrap();
        bg.request();
        wait_for("the first sync to start", || {
            runs.load(Ordering::SeqCst) == 1
        });
        for _ in 0..5 {
            bg.request();
        }
        release.send(()).unwrap();
        wait_for("the second sync to start", || {
            runs.load(Ordering::SeqCst) == 2
        });
        release.send(()).unwrap();
        // No third sync: the five requests shared the second.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(bg.failure(), None);
    }

    #[test]
    fn a_failed_sync_is_reported_and_never_retried() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let bg = BackgroundSync::start(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Engine("disk on fire".into()))
        })
        .unwrap();
        assert_eq!(bg.failure(), None);
        bg.request();
        wait_for("the failure", || bg.failure().is_some());
        assert!(bg.failure().unwrap().contains("disk on fire"));
        bg.request();
        bg.request();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(bg.failure().is_some());
    }
}
