//! The schema version stored in the file, and the in-place migrations between versions.
//!
//! A new file is created at [`CURRENT_VERSION`]. An older file is migrated forward in
//! one write transaction at open, so a crash during a migration leaves the old version
//! intact. A newer file is refused: this build cannot know what its tables mean.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::StorageError;
use super::tables::{
    ALERTS, COMPLETED, COUNTERS, CREATED, DEAD_LETTERS, EMPLOYEES, EVENTS, KAFKA_CURSORS, META,
    PENDING, STEPS, UNASSIGNED, WORKFLOWS,
};

/// The schema version this build writes.
pub const CURRENT_VERSION: u64 = 1;

const VERSION_KEY: &str = "schema_version";

/// One migration: brings a file from version `from` to `from + 1`.
struct Migration {
    from: u64,
    apply: fn(&WriteTransaction) -> Result<(), StorageError>,
}

/// Migrations in order. Version 0 is a file whose tables were never created (a new
/// file), so the first migration creates every table.
const MIGRATIONS: &[Migration] = &[Migration {
    from: 0,
    apply: create_v1_tables,
}];

fn create_v1_tables(txn: &WriteTransaction) -> Result<(), StorageError> {
    txn.open_table(WORKFLOWS)?;
    txn.open_table(STEPS)?;
    txn.open_table(PENDING)?;
    txn.open_table(CREATED)?;
    txn.open_table(COMPLETED)?;
    txn.open_table(EVENTS)?;
    txn.open_table(ALERTS)?;
    txn.open_table(UNASSIGNED)?;
    txn.open_table(EMPLOYEES)?;
    txn.open_table(COUNTERS)?;
    txn.open_table(KAFKA_CURSORS)?;
    txn.open_table(DEAD_LETTERS)?;
    Ok(())
}

/// Reads the version stored in the file; 0 when the file has no version yet.
pub fn stored_version(db: &redb::Database) -> Result<u64, StorageError> {
    let read = db.begin_read()?;
    let meta = match read.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    Ok(meta.get(VERSION_KEY)?.map(|v| v.value()).unwrap_or(0))
}

/// Brings the file to [`CURRENT_VERSION`], or refuses a file from a newer build.
/// Returns the version the file had before.
pub fn migrate(db: &redb::Database) -> Result<u64, StorageError> {
    let found = stored_version(db)?;
    if found > CURRENT_VERSION {
        return Err(StorageError::NewerVersion {
            found,
            supported: CURRENT_VERSION,
        });
    }
    if found == CURRENT_VERSION {
        return Ok(found);
    }
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    for migration in MIGRATIONS.iter().filter(|m| m.from >= found) {
        (migration.apply)(&txn)?;
    }
    txn.open_table(META)?.insert(VERSION_KEY, CURRENT_VERSION)?;
    txn.commit()?;
    Ok(found)
}

/// Writes a version number into the file; tests use it to fake a file from another build.
pub fn force_version(db: &redb::Database, version: u64) -> Result<(), StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    txn.open_table(META)?.insert(VERSION_KEY, version)?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_form_a_chain_ending_at_current() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.from, i as u64,
                "migration {i} starts at the wrong version"
            );
        }
        assert_eq!(MIGRATIONS.len() as u64, CURRENT_VERSION);
    }
}
