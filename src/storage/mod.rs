//! The one redb file: opening it safely, its schema version, and every table.
//!
//! The file is opened with quick repair: each commit records the allocator state and
//! uses two-phase commit, so reopening after `kill -9` does not walk the whole file.
//! Opening refuses, with one clear error, a file from a newer build, a corrupt file and
//! a file that another process holds open.
//!
//! A disk that refuses writes (full, say) fails the commit it happens in, and redb then
//! refuses every later write until the file is opened again: [`StorageError::is_io`]
//! tells callers so, and [`StorageError::is_temporary`] tells start-up that trying again
//! later may work.

mod disk_full;
pub mod schema;
pub mod tables;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase};

/// Errors of the storage layer. `Display` is one line, fit for a startup failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database file {path} is already open in another process")]
    AlreadyOpen { path: PathBuf },
    #[error(
        "database file was written by a newer alert-center (schema version {found}; this build supports up to {supported})"
    )]
    NewerVersion { found: u64, supported: u64 },
    #[error("database file {path} is not a usable redb file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The file cannot be reached or created (no directory, no permission, no space).
    /// Not a `#[source]`: the message already says it, and says it once.
    #[error("cannot open database file {path}: {error}")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("storage error: {0}")]
    Redb(#[from] redb::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

impl StorageError {
    /// True when the error comes from the disk refusing writes (full, read-only, failing),
    /// which callers report as "try again later" rather than as a bug.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StorageError::Redb(redb::Error::Io(_)) | StorageError::Redb(redb::Error::PreviousIo)
        )
    }

    /// True when the disk is out of space or quota: opening again later may succeed,
    /// unlike with a corrupt file or a missing permission.
    pub fn is_temporary(&self) -> bool {
        let out_of_space = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        };
        match self {
            StorageError::Open { error, .. } => out_of_space(error),
            StorageError::Redb(redb::Error::Io(e)) => out_of_space(e),
            StorageError::Redb(redb::Error::PreviousIo) => true,
            _ => false,
        }
    }
}

/// How to open the file. The default is the normal way; the rest injects faults for
/// tests.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Behave as a full disk (every write fails with `ENOSPC`) while this file exists.
    pub disk_full_while: Option<PathBuf>,
}

/// A cheap, clonable handle on the open database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: Arc<PathBuf>,
}

impl Store {
    /// Opens (or creates) the database file and brings its schema to the current version.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StorageError> {
        Store::open_with(path, &OpenOptions::default())
    }

    /// [`Store::open`], with faults injected as `options` say.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Store, StorageError> {
        let path = path.as_ref().to_path_buf();
        let db = open_database(&path, options)?;
        schema::migrate(&db).map_err(|e| corrupt_if_redb(&path, e))?;
        Ok(Store {
            db: Arc::new(db),
            path: Arc::new(path),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn begin_read(&self) -> Result<ReadTransaction, StorageError> {
        Ok(self.db.begin_read()?)
    }
}

/// Opens the file, turning every way it can fail (including a panic inside redb on a
/// damaged file) into a [`StorageError`] with one clear line.
fn open_database(path: &Path, options: &OpenOptions) -> Result<Database, StorageError> {
    let cannot_open = |error| StorageError::Open {
        path: path.to_path_buf(),
        error,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(cannot_open)?;
    }
    let opened = match &options.disk_full_while {
        None => quietly_catch_unwind(|| Database::builder().create(path)),
        Some(switch) => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(cannot_open)?;
            let backend = disk_full::DiskFullWhile::new(file, switch.clone());
            quietly_catch_unwind(|| Database::builder().create_with_backend(backend))
        }
    };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(StorageError::AlreadyOpen {
            path: path.to_path_buf(),
        }),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(error))))
            if !is_damage(&error) =>
        {
            Err(cannot_open(error))
        }
        Ok(Err(e)) => Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Err(panic) => Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("redb failed while reading it ({panic})"),
        }),
    }
}

/// I/O errors that mean the bytes are wrong (bad magic number, file cut short), as
/// opposed to the file being unreachable (missing directory, no permission).
fn is_damage(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
    )
}

/// A damaged file can also fail on first read, after a successful open.
fn corrupt_if_redb(path: &Path, e: StorageError) -> StorageError {
    match e {
        StorageError::Redb(redb::Error::Corrupted(reason)) => StorageError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    }
}

/// Runs `f`, turning a panic into an `Err` with its message, without letting the panic
/// hook print a trace: a damaged file must yield one clear line, not a backtrace.
///
/// The hook is wrapped once, process-wide, and stays quiet only on the thread running
/// `f` (redb runs on the caller's thread): swapping the global hook around each call
/// would race with concurrent opens and could leave every later panic silent.
fn quietly_catch_unwind<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    use std::cell::Cell;
    use std::sync::Once;
    thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });
    static WRAP: Once = Once::new();
    WRAP.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info)
            }
        }));
    });
    QUIET.with(|quiet| quiet.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|quiet| quiet.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    })
}

#[cfg(test)]
mod tests {
    use redb::ReadableTable;

    use super::*;

    #[test]
    fn new_file_gets_current_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        let store = Store::open(&path).unwrap();
        assert_eq!(
            schema::stored_version(store.db()).unwrap(),
            schema::CURRENT_VERSION
        );
        drop(store);
        Store::open(&path).unwrap();
    }

    #[test]
    fn newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        let store = Store::open(&path).unwrap();
        schema::force_version(store.db(), schema::CURRENT_VERSION + 1).unwrap();
        drop(store);
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StorageError::NewerVersion { .. }), "{err}");
    }

    #[test]
    fn older_version_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        let store = Store::open(&path).unwrap();
        schema::force_version(store.db(), 0).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            schema::stored_version(store.db()).unwrap(),
            schema::CURRENT_VERSION
        );
    }

    #[test]
    fn second_open_in_same_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        let _store = Store::open(&path).unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StorageError::AlreadyOpen { .. }), "{err}");
    }

    #[test]
    fn a_full_disk_fails_the_commit_and_keeps_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        let switch = dir.path().join("full");
        let options = OpenOptions {
            disk_full_while: Some(switch.clone()),
        };
        let write = |store: &Store, value: u64| -> Result<(), StorageError> {
            let txn = store.db().begin_write()?;
            txn.open_table(tables::COUNTERS)?.insert("n", value)?;
            Ok(txn.commit()?)
        };
        let store = Store::open_with(&path, &options).unwrap();
        write(&store, 1).unwrap();

        std::fs::write(&switch, b"").unwrap();
        let refused = write(&store, 2).unwrap_err();
        assert!(refused.is_io() && refused.is_temporary(), "{refused}");
        let after = write(&store, 3).unwrap_err();
        assert!(after.is_io(), "redb refuses writes until reopened: {after}");
        drop(store);
        let reopen = Store::open_with(&path, &options).err().unwrap();
        assert!(reopen.is_temporary(), "{reopen}");
        assert!(!reopen.to_string().contains('\n'));

        std::fs::remove_file(&switch).unwrap();
        let store = Store::open_with(&path, &options).unwrap();
        let read = store.begin_read().unwrap();
        let counters = read.open_table(tables::COUNTERS).unwrap();
        assert_eq!(counters.get("n").unwrap().map(|v| v.value()), Some(1));
        drop((counters, read));
        write(&store, 4).unwrap();
    }

    #[test]
    fn garbage_file_is_refused_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }
}
