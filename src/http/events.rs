//! Live updates as server-sent events: `history` (every alert, as `/alert_history`) on
//! connect and after changes, at most every [`HISTORY_EVERY`]; `assignment` (one
//! employee's assignment) as soon as it changes. One stream carries every employee:
//! the page keeps one stream per browser, not per tab (browsers allow ~6 connections
//! per host), and relays it to its other tabs.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use warp::Reply;
use warp::reply::Response;
use warp::sse::Event;

use super::HttpState;
use super::dto::{AlertDto, EmployeeDto, iso_ms};
use crate::alerts::model::EmployeeName;
use crate::alerts::{Change, store};

/// Coalesces bursts of changes (a fast intake) into one history event.
const HISTORY_EVERY: Duration = Duration::from_millis(250);

pub fn stream(state: HttpState) -> Response {
    let changes = state.center.changes().subscribe();
    let start = Feed {
        state,
        changes,
        queue: VecDeque::new(),
        history_due: true,
    };
    let events = futures::stream::unfold(start, Feed::next);
    warp::sse::reply(
        warp::sse::keep_alive()
            .interval(Duration::from_secs(15))
            .stream(events),
    )
    .into_response()
}

struct Feed {
    state: HttpState,
    changes: broadcast::Receiver<Change>,
    queue: VecDeque<Event>,
    history_due: bool,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Feed)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if std::mem::take(&mut self.history_due) {
                if let Some(event) = self.history() {
                    self.queue.push_back(event);
                }
                continue;
            }
            match self.changes.recv().await {
                Ok(Change::Employee(name)) => {
                    if let Some(event) = self.assignment(&name) {
                        self.queue.push_back(event);
                    }
                }
                Ok(Change::History) | Err(RecvError::Lagged(_)) => {
                    tokio::time::sleep(HISTORY_EVERY).await;
                    self.drain_into_queue();
                    self.history_due = true;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Takes every change already waiting: employee changes become events, history
    /// changes are folded into the one history event that follows.
    fn drain_into_queue(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(Change::Employee(name)) => {
                    if let Some(event) = self.assignment(&name) {
                        self.queue.push_back(event);
                    }
                }
                Ok(Change::History) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    }

    fn history(&self) -> Option<Event> {
        let alerts = self.state.center.history().ok()?;
        let dto: Vec<_> = alerts.iter().map(|(id, a)| AlertDto::new(*id, a)).collect();
        Event::default().event("history").json_data(dto).ok()
    }

    fn assignment(&self, name: &EmployeeName) -> Option<Event> {
        let read = self.state.center.engine().store().begin_read().ok()?;
        let lease = store::read::employee(&read, name)
            .ok()?
            .and_then(|e| e.lease);
        let dto = EmployeeDto {
            employee_name: name.to_string(),
            alert_id: lease.map(|l| l.alert_id.get()),
            expiration: lease.map(|l| iso_ms(l.expires_at_ms)),
        };
        Event::default().event("assignment").json_data(dto).ok()
    }
}
