//! The data directory's identity: its incarnation, the clean-shutdown marker,
//! and the lock that keeps two servers out of one directory.
//!
//! Files in the directory:
//! - `incarnation`: the random nonzero `u32` that, with the node id, names the
//!   node's writes (the `Actor` of every dot it makes). Written atomically
//!   (temporary file, fsync, rename, fsync of the directory).
//! - `clean-shutdown`: present only between a clean shutdown and the next
//!   start. [`DataDir::open`] removes it, so a process that dies leaves it
//!   absent and the next start knows the shutdown was unclean.
//! - `LOCK`: held with an exclusive file lock for as long as the [`DataDir`]
//!   lives.
//! - `store/`: the storage engine's files ([`DataDir::store_path`]).
//!
//! A node must never reuse a dot. After an unclean shutdown its disk may
//! hold less than it handed out: with `--sync periodic` a power cut loses
//! the last unsynced writes (and with them the counters of dots other nodes
//! already hold); in any sync mode a failed or interrupted fsync leaves
//! unknown what reached the disk, and a write was visible to reads (and
//! replicated) before its batch's fsync finished. So after every unclean
//! shutdown, whatever the sync mode, the node takes a new incarnation: its
//! next dots have a new actor. It costs one version-vector entry per key
//! the new incarnation writes.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use ringkv_storage::StoreError;

/// File holding the incarnation, in decimal.
pub(crate) const INCARNATION_FILE: &str = "incarnation";
/// Marker file present after a clean shutdown.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// File locked exclusively while a server uses the directory.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// Subdirectory holding the storage engine's files.
pub(crate) const STORE_DIR: &str = "store";

/// An open data directory: where it is, which incarnation of the node it holds,
/// and whether the previous run shut down cleanly. Holds the directory's lock
/// until dropped, so two servers can never use one directory at once.
#[derive(Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// The current incarnation (nonzero), to be used in the node's `Actor`.
    pub incarnation: u32,
    /// Whether the previous run shut down cleanly ([`DataDir::mark_clean_shutdown`]
    /// was its last act). `true` for a directory that is new, since no
    /// previous run could have lost anything.
    pub was_clean: bool,
    /// Whether this open created the directory's identity (a new or wiped
    /// directory): the node has no data and should expect to receive it.
    pub is_new: bool,
    /// The locked `LOCK` file; the lock is released when it is closed.
    _lock: File,
}

/// An I/O error with what was being done and to which path.
fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Engine(format!("{what} {}: {e}", path.display()))
}

/// Fsyncs a directory, so that the creation, rename or removal of an entry in
/// it is durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing directory", dir, e))
}

/// Writes `contents` to `dir/name` atomically and durably: a temporary file,
/// fsync, rename over the target, fsync of the directory.
fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), StoreError> {
    let target = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err("writing", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, &target).map_err(|e| io_err("renaming into place", &target, e))?;
    sync_dir(dir)
}

/// Reads the incarnation, `None` if the file does not exist.
fn read_incarnation(dir: &Path) -> Result<Option<u32>, StoreError> {
    let path = dir.join(INCARNATION_FILE);
    let raw = match fs::read(&path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", &path, e)),
    };
    let parsed = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n != 0);
    match parsed {
        Some(n) => Ok(Some(n)),
        None => Err(StoreError::Corrupt(format!(
            "{} does not hold a nonzero decimal u32 (it holds {:?}); \
             if the node's data is intact, delete the file and the node takes a new incarnation",
            path.display(),
            String::from_utf8_lossy(&raw[..raw.len().min(64)])
        ))),
    }
}

/// A random nonzero incarnation different from `previous`.
fn new_incarnation(previous: Option<u32>) -> u32 {
    loop {
        let n: u32 = rand::random();
        if n != 0 && Some(n) != previous {
            return n;
        }
    }
}

/// Takes the exclusive lock on `dir/LOCK`.
fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_err("opening lock file", &path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Engine(format!(
            "data directory {} is in use by another ringkv server (it holds the lock on {}); \
             stop that server first, or give this one a different --data-dir",
            dir.display(),
            path.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(io_err("locking", &path, e)),
    }
}

impl DataDir {
    /// Opens the data directory at `path`, creating it if missing, and
    /// settles the node's incarnation.
    ///
    /// - Takes the directory's exclusive lock (fails with a clear message if
    ///   another server holds it).
    /// - Notes whether the previous run shut down cleanly, then removes the
    ///   marker (durably), so that if this run dies the next open knows.
    /// - On first open, creates a random incarnation. After an unclean
    ///   shutdown (in any sync mode: a crash may have lost writes, and with
    ///   them dots other nodes have seen), replaces it with a new one, so
    ///   the node never reuses a dot.
    pub fn open(path: &Path) -> Result<DataDir, StoreError> {
        fs::create_dir_all(path).map_err(|e| io_err("creating data directory", path, e))?;
        let lock = lock(path)?;

        let marker = path.join(CLEAN_SHUTDOWN_FILE);
        let marker_present = marker
            .try_exists()
            .map_err(|e| io_err("checking", &marker, e))?;

        let previous = read_incarnation(path)?;
        let (incarnation, was_clean, is_new) = match previous {
            None => (new_incarnation(None), true, true),
            Some(n) if !marker_present => (new_incarnation(Some(n)), false, false),
            Some(n) => (n, true, false),
        };
        if Some(incarnation) != previous {
            write_atomic(
                path,
                INCARNATION_FILE,
                format!("{incarnation}\n").as_bytes(),
            )?;
        }

        if marker_present {
            match fs::remove_file(&marker) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", &marker, e)),
            }
            sync_dir(path)?;
        }

        Ok(DataDir {
            path: path.to_path_buf(),
            incarnation,
            was_clean,
            is_new,
            _lock: lock,
        })
    }

    /// Records that this run is shutting down cleanly (the marker file,
    /// fsynced with its directory). Call it last, after the store was synced
    /// and closed: the next open then keeps the incarnation.
    pub fn mark_clean_shutdown(&self) -> Result<(), StoreError> {
        let marker = self.path.join(CLEAN_SHUTDOWN_FILE);
        let mut f = File::create(&marker).map_err(|e| io_err("creating", &marker, e))?;
        f.write_all(b"clean\n")
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err("writing", &marker, e))?;
        sync_dir(&self.path)
    }

    /// Where the storage engine keeps its files: `path/store`.
    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_directory_gets_an_incarnation() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/b/data");
        let d = DataDir::open(&path).unwrap();
        assert!(path.is_dir());
        assert_ne!(d.incarnation, 0);
        assert!(d.is_new);
        assert!(d.was_clean);
        assert_eq!(d.store_path(), path.join("store"));
        let on_disk = fs::read_to_string(path.join(INCARNATION_FILE)).unwrap();
        assert_eq!(on_disk.trim().parse::<u32>().unwrap(), d.incarnation);
        assert!(!path.join("incarnation.tmp").exists());
        assert!(!path.join(CLEAN_SHUTDOWN_FILE).exists());
    }

    #[test]
    fn clean_reopen_keeps_incarnation() {
        let root = tempfile::tempdir().unwrap();
        for run in 0..2 {
            let path = root.path().join(format!("d{run}"));
            let first = DataDir::open(&path).unwrap();
            first.mark_clean_shutdown().unwrap();
            assert!(path.join(CLEAN_SHUTDOWN_FILE).exists());
            let inc = first.incarnation;
            drop(first);
            let second = DataDir::open(&path).unwrap();
            assert_eq!(second.incarnation, inc);
            assert!(second.was_clean);
            assert!(!second.is_new);
            // The marker is consumed: dying now would be unclean.
            assert!(!path.join(CLEAN_SHUTDOWN_FILE).exists());
        }
    }

    #[test]
    fn unclean_start_changes_incarnation_whatever_the_sync_mode() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("d");
        let first = DataDir::open(&path).unwrap();
        let inc = first.incarnation;
        drop(first); // no mark_clean_shutdown: the process "died"
        let second = DataDir::open(&path).unwrap();
        assert!(!second.was_clean);
        assert!(!second.is_new);
        assert_ne!(second.incarnation, inc);
        assert_ne!(second.incarnation, 0);
        let inc2 = second.incarnation;
        drop(second);
        // The new incarnation was persisted: a clean cycle keeps it.
        let third = DataDir::open(&path).unwrap();
        assert_ne!(third.incarnation, inc2, "unclean again, so new again");
        third.mark_clean_shutdown().unwrap();
        let inc3 = third.incarnation;
        drop(third);
        assert_eq!(DataDir::open(&path).unwrap().incarnation, inc3);
    }

    #[test]
    fn second_open_while_first_is_alive_fails() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("d");
        let first = DataDir::open(&path).unwrap();
        let err = DataDir::open(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("in use"), "{err}");
        assert!(err.contains("--data-dir"), "{err}");
        // The failed open changed nothing.
        let inc = first.incarnation;
        first.mark_clean_shutdown().unwrap();
        drop(first);
        let again = DataDir::open(&path).unwrap();
        assert_eq!(again.incarnation, inc);
        assert!(again.was_clean);
    }

    #[test]
    fn corrupt_incarnation_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("d");
        drop(DataDir::open(&path).unwrap());
        for bad in [&b"banana"[..], b"0\n", b"", &[0xff, 0xfe], b"99999999999"] {
            fs::write(path.join(INCARNATION_FILE), bad).unwrap();
            let err = DataDir::open(&path).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        }
    }

    #[test]
    fn path_that_is_a_file_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f");
        fs::write(&path, b"x").unwrap();
        assert!(DataDir::open(&path).is_err());
    }
}
