//! The intake's durable bookkeeping: where each partition resumes (cursors) and the
//! messages it could not use (dead letters). Both are written in the same commit as
//! the message they account for.

use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::engine::EngineError;
use crate::engine::record::{decode, encode};
use crate::storage::tables::{COUNTERS, DEAD_LETTERS, KAFKA_CURSORS};

/// How much of a bad message a dead letter keeps.
pub const RAW_BYTES_KEPT: usize = 1024;

const NEXT_DEAD_LETTER: &str = "next_dead_letter";

/// Where a partition resumes: the next offset to process, within a broker log epoch.
/// The epoch grows when the broker's log is found shorter than the cursor (an embedded
/// broker that restarted empty), so offsets seen again are new messages, not repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub next_offset: i64,
    pub epoch: u32,
}

/// A message the intake could not turn into alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    /// The first [`RAW_BYTES_KEPT`] bytes of the message value.
    pub raw: Vec<u8>,
    /// Size of the whole message value.
    pub raw_len: usize,
    pub at_ms: u64,
}

/// Every stored cursor of `topic`, by partition.
pub fn cursors(read: &ReadTransaction, topic: &str) -> Result<HashMap<i32, Cursor>, EngineError> {
    let table = read.open_table(KAFKA_CURSORS)?;
    let mut cursors = HashMap::new();
    for entry in table.range((topic, i32::MIN)..=(topic, i32::MAX))? {
        let (key, value) = entry?;
        cursors.insert(key.value().1, decode(value.value())?);
    }
    Ok(cursors)
}

/// Moves a partition's cursor from `expected` to `next`, refusing if the stored cursor
/// is not `expected`: a message is never recorded unless every earlier one of its
/// partition is, whatever happens to the commits around it.
pub fn advance(
    txn: &WriteTransaction,
    topic: &str,
    partition: i32,
    expected: Option<Cursor>,
    next: Cursor,
) -> Result<(), EngineError> {
    let mut table = txn.open_table(KAFKA_CURSORS)?;
    let stored: Option<Cursor> = table
        .get((topic, partition))?
        .map(|v| decode(v.value()))
        .transpose()?;
    if stored != expected {
        return Err(EngineError::InvalidState(format!(
            "cursor of {topic}/{partition} is {stored:?}, expected {expected:?}: intake restarts from the stored cursor"
        )));
    }
    table.insert((topic, partition), encode(&next)?.as_slice())?;
    Ok(())
}

/// Records a dead letter.
pub fn add_dead_letter(txn: &WriteTransaction, letter: &DeadLetter) -> Result<(), EngineError> {
    let mut counters = txn.open_table(COUNTERS)?;
    let seq = counters
        .get(NEXT_DEAD_LETTER)?
        .map(|v| v.value())
        .unwrap_or(1);
    counters.insert(NEXT_DEAD_LETTER, seq + 1)?;
    txn.open_table(DEAD_LETTERS)?
        .insert(seq, encode(letter)?.as_slice())?;
    Ok(())
}

/// The newest `limit` dead letters, newest first, with their sequence numbers.
pub fn dead_letters(
    read: &ReadTransaction,
    limit: usize,
) -> Result<Vec<(u64, DeadLetter)>, EngineError> {
    let table = read.open_table(DEAD_LETTERS)?;
    let mut letters = Vec::new();
    for entry in table.iter()?.rev().take(limit) {
        let (seq, value) = entry?;
        letters.push((seq.value(), decode(value.value())?));
    }
    Ok(letters)
}
