//! The one redb file: opening it safely, its schema version, and every table.
//!
//! The file is opened with quick repair: each commit records the allocator state and
//! uses two-phase commit, so reopening after `kill -9` does not walk the whole file.
//! Opening refuses, with one clear error, a file from a newer build, a corrupt file and
//! a file that another process holds open.

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
    #[error("cannot open database file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
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
        let path = path.as_ref().to_path_buf();
        let db = open_database(&path)?;
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
fn open_database(path: &Path) -> Result<Database, StorageError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StorageError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let opened = quietly_catch_unwind(|| Database::builder().create(path));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(StorageError::AlreadyOpen {
            path: path.to_path_buf(),
        }),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(source))))
            if !is_damage(&source) =>
        {
            Err(StorageError::Open {
                path: path.to_path_buf(),
                source,
            })
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
    fn garbage_file_is_refused_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }
}
