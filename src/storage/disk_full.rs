//! A redb storage backend that behaves like a full disk while a switch file exists: every
//! write, resize and sync fails with `ENOSPC`, and reads go on. With the switch gone, the
//! disk has room again. Tests arm it through [`crate::faults::DISK_FULL_WHILE_ENV`], as
//! redb's own tests use a failing backend; nothing else opens the file this way.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::PathBuf;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

#[derive(Debug)]
pub struct DiskFullWhile {
    inner: FileBackend,
    switch: PathBuf,
}

impl DiskFullWhile {
    pub fn new(file: File, switch: PathBuf) -> DiskFullWhile {
        DiskFullWhile {
            inner: FileBackend::new(file),
            switch,
        }
    }

    fn refuse_if_full(&self) -> Result<(), BackendError> {
        if self.switch.exists() {
            return Err(BackendError::Io(io::Error::from_raw_os_error(libc::ENOSPC)));
        }
        Ok(())
    }
}

impl StorageBackend for DiskFullWhile {
    fn len(&self) -> Result<u64, BackendError> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.refuse_if_full()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), BackendError> {
        self.refuse_if_full()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.refuse_if_full()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), BackendError> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
