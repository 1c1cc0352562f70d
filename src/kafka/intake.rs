//! The exactly-once intake.
//!
//! redb, not Kafka, is the source of truth for where to resume: each partition's
//! cursor (next offset) is written in the same commit as the message's workflow (or
//! dead letter), and at start the consumer is assigned its partitions at the stored
//! cursors (manual assignment: a restart after `kill -9` waits for no group session
//! timeout). Each write also checks that the stored cursor is the one it follows, so a
//! message is recorded only after every earlier message of its partition, whatever
//! happens to the commits around it. Offsets are also committed to Kafka, for lag tools.
//!
//! Messages are pipelined: many are queued to the group-commit writer while earlier
//! commits are in flight, so a commit carries thousands of messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use redb::WriteTransaction;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::health::{BrokerHealth, KafkaContext};
use super::ledger::{self, Cursor, DeadLetter, RAW_BYTES_KEPT};
use super::{KafkaSettings, payload};
use crate::alerts::model::NewAlert;
use crate::alerts::store::{self, AlertError, InsertOutcome};
use crate::alerts::{Change, Changes};
use crate::engine::{Engine, EngineError, Started, WorkflowDef, WorkflowError};
use crate::faults::crash_point;
use crate::telemetry::metric;

/// Most messages queued to the writer and not yet durable.
const IN_FLIGHT_MAX: usize = 16_384;

/// One inbound message: where it came from and its alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundInput {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub received_at_ms: u64,
    pub alerts: Vec<NewAlert>,
}

/// The inbound workflow: one transaction that inserts the message's alerts (conflicts
/// become dead letters in the same transaction).
pub const INBOUND: WorkflowDef<InboundInput, InsertOutcome> = WorkflowDef::new("inbound_alerts");
const INBOUND_STEP: &str = "insert_alerts";

fn insert_inbound(
    txn: &WriteTransaction,
    input: &InboundInput,
) -> Result<InsertOutcome, AlertError> {
    let outcome = store::insert_alerts(txn, &input.alerts, input.received_at_ms)?;
    for (id, reason) in &outcome.conflicts {
        let alert = input.alerts.iter().find(|a| a.id == Some(*id));
        let raw = alert
            .map(|a| payload::encode(*id, a.status, &a.message))
            .unwrap_or_default();
        let letter = DeadLetter {
            topic: input.topic.clone(),
            partition: input.partition,
            offset: input.offset,
            reason: reason.clone(),
            raw_len: raw.len(),
            raw,
            at_ms: input.received_at_ms,
        };
        ledger::add_dead_letter(txn, &letter)?;
    }
    Ok(outcome)
}

/// Counters of the intake, for benchmarks, metrics and readiness.
#[derive(Debug, Default)]
pub struct IntakeStats {
    pub messages: AtomicU64,
    pub alerts_inserted: AtomicU64,
    pub duplicates: AtomicU64,
    pub dead_letters: AtomicU64,
    /// True while a session is consuming.
    pub running: AtomicBool,
}

/// The intake of one topic.
#[derive(Clone)]
pub struct Intake {
    engine: Engine,
    settings: KafkaSettings,
    health: Arc<BrokerHealth>,
    changes: Changes,
    stats: Arc<IntakeStats>,
}

/// Where a partition stands in this session.
struct Track {
    epoch: u32,
    /// The cursor as it will be once every queued write is durable.
    expected: Option<Cursor>,
    /// The next offset that is durable, to commit to Kafka.
    durable_next: Option<i64>,
}

type Pending = BoxFuture<'static, (i32, Cursor, Result<Outcome, EngineError>)>;

enum Outcome {
    Alerts(Started<Result<InsertOutcome, AlertError>>),
    DeadLetter(String),
}

impl Intake {
    /// Registers the inbound workflow on `engine` (before its recovery).
    pub fn new(
        engine: &Engine,
        settings: KafkaSettings,
        health: Arc<BrokerHealth>,
        changes: Changes,
    ) -> Intake {
        engine.register(INBOUND, |ctx, input: InboundInput| async move {
            ctx.transaction(INBOUND_STEP, move |txn| insert_inbound(txn, &input))
                .await?
                .map_err(WorkflowError::app)
        });
        Intake {
            engine: engine.clone(),
            settings,
            health,
            changes,
            stats: Arc::new(IntakeStats::default()),
        }
    }

    pub fn stats(&self) -> &Arc<IntakeStats> {
        &self.stats
    }

    /// Consumes until `stop` turns true; on any failure, starts over from the stored
    /// cursors after a backoff. Logs one line per change of state.
    pub async fn run_until_stopped(&self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        let mut last_error = String::new();
        while !*stop.borrow() {
            let started = std::time::Instant::now();
            let result = self.run_session(&mut stop).await;
            if started.elapsed() > Duration::from_secs(10) {
                // That session was healthy: the next failure starts a new story.
                backoff = Duration::from_millis(100);
                last_error.clear();
            }
            match result {
                Ok(()) => break,
                Err(error) => {
                    if error != last_error {
                        tracing::warn!(topic = %self.settings.topic, %error, "Kafka intake interrupted; retrying with backoff");
                        last_error = error;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        self.stats.running.store(false, Ordering::SeqCst);
    }

    async fn run_session(&self, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        let consumer = Arc::new(self.consumer()?);
        let partitions = self.partitions(&consumer).await?;
        let mut tracks = HashMap::new();
        self.assign(&consumer, &partitions, &mut tracks).await?;
        self.stats.running.store(true, Ordering::SeqCst);
        tracing::info!(topic = %self.settings.topic, partitions = partitions.len(), "Kafka intake consuming");
        let result = self.consume(&consumer, &mut tracks, stop).await;
        self.stats.running.store(false, Ordering::SeqCst);
        self.commit_to_kafka(&consumer, &mut tracks, true);
        result
    }

    fn consumer(&self) -> Result<StreamConsumer<KafkaContext>, String> {
        let context = KafkaContext {
            health: self.health.clone(),
            brokers: self.settings.brokers.clone(),
        };
        self.settings
            .client_config()
            .set("group.id", &self.settings.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .set("queued.min.messages", "200000")
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)
            .map_err(|e| format!("cannot create the Kafka consumer: {e}"))
    }

    /// The topic's partitions; creates the topic if it is missing (never deletes it).
    async fn partitions(
        &self,
        consumer: &Arc<StreamConsumer<KafkaContext>>,
    ) -> Result<Vec<i32>, String> {
        let partitions = fetch_partitions(consumer, &self.settings.topic).await?;
        if !partitions.is_empty() {
            self.health.up(&self.settings.brokers);
            return Ok(partitions);
        }
        self.create_topic().await?;
        let partitions = fetch_partitions(consumer, &self.settings.topic).await?;
        if partitions.is_empty() {
            return Err(format!(
                "topic {} has no partitions yet",
                self.settings.topic
            ));
        }
        Ok(partitions)
    }

    async fn create_topic(&self) -> Result<(), String> {
        let admin: AdminClient<KafkaContext> = self
            .settings
            .client_config()
            .create_with_context(KafkaContext {
                health: self.health.clone(),
                brokers: self.settings.brokers.clone(),
            })
            .map_err(|e| format!("cannot create the Kafka admin client: {e}"))?;
        let topic = NewTopic::new(
            &self.settings.topic,
            self.settings.new_topic_partitions,
            TopicReplication::Fixed(-1),
        );
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .map_err(|e| format!("cannot create topic {}: {e}", self.settings.topic))?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = %name, "created Kafka topic"),
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(format!("cannot create topic {name}: {code}")),
            }
        }
        Ok(())
    }

    /// Assigns `partitions` (those not tracked yet) at their stored cursors.
    async fn assign(
        &self,
        consumer: &Arc<StreamConsumer<KafkaContext>>,
        partitions: &[i32],
        tracks: &mut HashMap<i32, Track>,
    ) -> Result<(), String> {
        let read = self
            .engine
            .store()
            .begin_read()
            .map_err(|e| e.to_string())?;
        let cursors = ledger::cursors(&read, &self.settings.topic).map_err(|e| e.to_string())?;
        drop(read);
        let topic = self.settings.topic.clone();
        let new: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !tracks.contains_key(p))
            .collect();
        let watermarks = {
            let consumer = consumer.clone();
            let new = new.clone();
            tokio::task::spawn_blocking(move || {
                new.iter()
                    .map(|&p| {
                        consumer
                            .fetch_watermarks(&topic, p, Duration::from_secs(5))
                            .map(|w| (p, w))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read the offsets of {}: {e}", self.settings.topic))?
        };
        let mut tpl = TopicPartitionList::new();
        for (partition, (low, high)) in watermarks {
            let stored = cursors.get(&partition).copied();
            let (start, epoch) = start_position(&self.settings.topic, partition, stored, low, high);
            tpl.add_partition_offset(&self.settings.topic, partition, Offset::Offset(start))
                .map_err(|e| e.to_string())?;
            tracks.insert(
                partition,
                Track {
                    epoch,
                    expected: stored,
                    durable_next: None,
                },
            );
        }
        consumer
            .incremental_assign(&tpl)
            .map_err(|e| format!("cannot assign partitions: {e}"))
    }

    async fn consume(
        &self,
        consumer: &Arc<StreamConsumer<KafkaContext>>,
        tracks: &mut HashMap<i32, Track>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut in_flight: FuturesOrdered<Pending> = FuturesOrdered::new();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut ticks = 0u64;
        let mut changed = false;
        let mut failure = None;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some((partition, cursor, result)) = in_flight.next() => {
                    // Durable in redb, not yet counted nor committed to Kafka.
                    crash_point("intake.durable");
                    match self.account(result) {
                        Ok(c) => changed |= c,
                        Err(e) => { failure = Some(e); break; }
                    }
                    if let Some(track) = tracks.get_mut(&partition) {
                        track.durable_next = Some(cursor.next_offset);
                    }
                }
                message = consumer.recv(), if in_flight.len() < IN_FLIGHT_MAX => {
                    let message = match message {
                        Ok(message) => message,
                        Err(e) => { failure = Some(format!("Kafka consumer error: {e}")); break; }
                    };
                    // Taken from Kafka, nothing written yet.
                    crash_point("intake.received");
                    let Some(track) = tracks.get_mut(&message.partition()) else {
                        failure = Some(format!("message from unassigned partition {}", message.partition()));
                        break;
                    };
                    in_flight.push_back(self.record(track, message.partition(), message.offset(), message.payload()));
                }
                _ = tick.tick() => {
                    ticks += 1;
                    if std::mem::take(&mut changed) {
                        self.changes.send(Change::History);
                    }
                    if ticks.is_multiple_of(5) {
                        self.commit_to_kafka(consumer, tracks, false);
                    }
                    if ticks.is_multiple_of(25)
                        && let Err(e) = self.pick_up_new_partitions(consumer, tracks).await
                    {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        // Whatever is queued commits (or fails) anyway: wait for it, so that the next
        // session starts from cursors that no queued write will move.
        while let Some((partition, cursor, result)) = in_flight.next().await {
            if self.account(result).is_ok()
                && let Some(track) = tracks.get_mut(&partition)
            {
                track.durable_next = Some(cursor.next_offset);
            }
        }
        if changed {
            self.changes.send(Change::History);
        }
        failure.map_or(Ok(()), Err)
    }

    /// Assigns partitions added to the topic since the session began.
    async fn pick_up_new_partitions(
        &self,
        consumer: &Arc<StreamConsumer<KafkaContext>>,
        tracks: &mut HashMap<i32, Track>,
    ) -> Result<(), String> {
        let partitions = fetch_partitions(consumer, &self.settings.topic).await?;
        self.health.up(&self.settings.brokers);
        if partitions.iter().any(|p| !tracks.contains_key(p)) {
            self.assign(consumer, &partitions, tracks).await?;
            tracing::info!(topic = %self.settings.topic, partitions = partitions.len(), "new partitions picked up");
        }
        Ok(())
    }

    /// Queues the durable record of one message: its inbound workflow, or a dead letter.
    fn record(
        &self,
        track: &mut Track,
        partition: i32,
        offset: i64,
        value: Option<&[u8]>,
    ) -> Pending {
        let topic = self.settings.topic.clone();
        let next = Cursor {
            next_offset: offset + 1,
            epoch: track.epoch,
        };
        let expected = track.expected.replace(next);
        let now_ms = self.engine.clock().now_ms();
        let advance = {
            let topic = topic.clone();
            move |txn: &WriteTransaction| ledger::advance(txn, &topic, partition, expected, next)
        };
        match payload::parse(value) {
            Ok(alerts) => {
                let input = InboundInput {
                    topic: topic.clone(),
                    partition,
                    offset,
                    received_at_ms: now_ms,
                    alerts,
                };
                let id = format!("kafka-{topic}-{partition}-{}-{offset}", track.epoch);
                let body_input = input.clone();
                let written = self.engine.run_transaction_workflow(
                    INBOUND,
                    id,
                    &input,
                    INBOUND_STEP,
                    move |txn| insert_inbound(txn, &body_input),
                    advance,
                );
                Box::pin(async move { (partition, next, written.await.map(Outcome::Alerts)) })
            }
            Err(reason) => {
                let raw = value.unwrap_or_default();
                let letter = DeadLetter {
                    topic,
                    partition,
                    offset,
                    reason: reason.clone(),
                    raw: raw[..raw.len().min(RAW_BYTES_KEPT)].to_vec(),
                    raw_len: raw.len(),
                    at_ms: now_ms,
                };
                let written = self.engine.transact(move |txn| {
                    advance(txn)?;
                    ledger::add_dead_letter(txn, &letter)
                });
                Box::pin(async move {
                    let result = match written.await {
                        Ok(Ok(())) => Ok(Outcome::DeadLetter(reason)),
                        Ok(Err(e)) | Err(e) => Err(e),
                    };
                    (partition, next, result)
                })
            }
        }
    }

    /// Counts a durable message; returns whether the alert list changed.
    fn account(&self, result: Result<Outcome, EngineError>) -> Result<bool, String> {
        let outcome = result.map_err(|e| e.to_string())?;
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::INTAKE_MESSAGES).increment(1);
        match outcome {
            Outcome::Alerts(Started::Ran(Ok(outcome))) => {
                self.stats
                    .alerts_inserted
                    .fetch_add(outcome.inserted.len() as u64, Ordering::Relaxed);
                metrics::counter!(metric::ALERTS_INGESTED).increment(outcome.inserted.len() as u64);
                self.stats
                    .duplicates
                    .fetch_add(outcome.duplicates.len() as u64, Ordering::Relaxed);
                for (id, reason) in &outcome.conflicts {
                    self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(metric::DEAD_LETTERS).increment(1);
                    tracing::warn!(alert = %id, reason, "conflicting alert sent to the dead-letter table");
                }
                Ok(!outcome.inserted.is_empty())
            }
            Outcome::Alerts(Started::Ran(Err(e))) => {
                tracing::warn!(error = %e, "inbound message failed");
                Ok(false)
            }
            Outcome::Alerts(Started::Existing) => Ok(false),
            Outcome::DeadLetter(reason) => {
                self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(metric::DEAD_LETTERS).increment(1);
                tracing::warn!(reason, "bad message sent to the dead-letter table");
                Ok(false)
            }
        }
    }

    /// Commits durable positions to Kafka (for lag tools only: redb is the truth).
    fn commit_to_kafka(
        &self,
        consumer: &StreamConsumer<KafkaContext>,
        tracks: &mut HashMap<i32, Track>,
        sync: bool,
    ) {
        let mut tpl = TopicPartitionList::new();
        for (partition, track) in tracks.iter_mut() {
            if let Some(next) = track.durable_next.take() {
                let _ = tpl.add_partition_offset(
                    &self.settings.topic,
                    *partition,
                    Offset::Offset(next),
                );
            }
        }
        if tpl.count() == 0 {
            return;
        }
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        // Durable in redb, not yet committed to Kafka (which is only for lag tools).
        crash_point("intake.kafka_commit");
        if let Err(e) = consumer.commit(&tpl, mode) {
            tracing::debug!(error = %e, "offset commit to Kafka failed; it is retried with the next one");
        }
    }
}

/// Where a partition starts, from its stored cursor and the broker's watermarks.
fn start_position(
    topic: &str,
    partition: i32,
    stored: Option<Cursor>,
    low: i64,
    high: i64,
) -> (i64, u32) {
    match stored {
        None => (low, 0),
        Some(cursor) if cursor.next_offset > high => {
            tracing::warn!(
                topic,
                partition,
                stored = cursor.next_offset,
                broker_end = high,
                "the broker's log ends before our cursor: it lost its log (an embedded broker that restarted?); reading it from the start as new messages"
            );
            (low, cursor.epoch + 1)
        }
        Some(cursor) if cursor.next_offset < low => {
            tracing::warn!(
                topic,
                partition,
                stored = cursor.next_offset,
                broker_start = low,
                "messages before the broker's log start were deleted by retention before they were read"
            );
            (low, cursor.epoch)
        }
        Some(cursor) => (cursor.next_offset, cursor.epoch),
    }
}

async fn fetch_partitions(
    consumer: &Arc<StreamConsumer<KafkaContext>>,
    topic: &str,
) -> Result<Vec<i32>, String> {
    let consumer = consumer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .map_err(|e| format!("cannot read Kafka metadata: {e}"))?;
        let mut partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        partitions.sort_unstable();
        Ok(partitions)
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_follow_the_stored_cursor() {
        let c = |next_offset, epoch| Some(Cursor { next_offset, epoch });
        assert_eq!(start_position("t", 0, None, 0, 10), (0, 0));
        assert_eq!(start_position("t", 0, c(7, 0), 0, 10), (7, 0));
        assert_eq!(start_position("t", 0, c(10, 2), 0, 10), (10, 2));
        // The broker lost its log: everything in it is new to us, in a new epoch.
        assert_eq!(start_position("t", 0, c(50, 0), 0, 3), (0, 1));
        // Retention deleted messages we never read: start at what is left.
        assert_eq!(start_position("t", 0, c(5, 1), 20, 30), (20, 1));
    }
}
