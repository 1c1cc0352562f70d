//! Wake-ups for code waiting on a workflow (an event set, the workflow finishing).
//!
//! Waiters subscribe per workflow id, so a change to one workflow wakes only those
//! waiting on it. A waiter registers before it reads the database and sleeps only if
//! what it waits for is not there yet, so no notification can slip in between.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::clock::lock;

#[derive(Default)]
pub struct Waiters {
    by_workflow: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A subscription to one workflow's changes; unsubscribes when dropped.
pub struct Subscription {
    waiters: Arc<Waiters>,
    id: String,
    pub notify: Arc<Notify>,
}

impl Waiters {
    pub fn subscribe(self: &Arc<Self>, id: &str) -> Subscription {
        let notify = lock(&self.by_workflow)
            .entry(id.to_string())
            .or_default()
            .clone();
        Subscription {
            waiters: self.clone(),
            id: id.to_string(),
            notify,
        }
    }

    /// Wakes everyone waiting on `id`.
    pub fn notify(&self, id: &str) {
        if let Some(notify) = lock(&self.by_workflow).get(id) {
            notify.notify_waiters();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = lock(&self.waiters.by_workflow);
        // The map holds one reference and this subscription another: last one out.
        if Arc::strong_count(&self.notify) == 2 {
            map.remove(&self.id);
        }
    }
}
