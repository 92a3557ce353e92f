//! The lifecycle events this process has seen on the bus, for `GET /api/v1/events` and the
//! console. Each serving process reads the whole events topic under a consumer group of its
//! own, so every replica of a Kafka deployment serves every event; the last `KEPT` are
//! kept, so that a client that reconnects (`Last-Event-ID`) is sent what it missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::bus::{self, Bus, RunEvent};

/// How many recent events a reconnecting client can resume within.
const KEPT: usize = 4096;

#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    recent: Mutex<VecDeque<Arc<RunEvent>>>,
    live: broadcast::Sender<Arc<RunEvent>>,
}

/// What a client that says where it was gets first.
pub enum Since {
    /// The events after the one it named, oldest first.
    Found(Vec<Arc<RunEvent>>),
    /// The event it named is no longer kept (or was never seen here): it must read the
    /// state again, from the API or the page.
    Lost,
}

impl Feed {
    pub fn new() -> Feed {
        let (live, _) = broadcast::channel(KEPT);
        Feed {
            inner: Arc::new(Inner {
                recent: Mutex::new(VecDeque::with_capacity(KEPT)),
                live,
            }),
        }
    }

    /// Reads the events topic until the bus shuts down. `instance` names this process, so
    /// that its consumer group is its own.
    pub fn start(&self, bus: Arc<dyn Bus>, instance: &str) -> JoinHandle<()> {
        let feed = self.clone();
        let group = format!("feed-{instance}");
        tokio::spawn(async move {
            let mut events = match bus.subscribe(bus::EVENTS_TOPIC, &group).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "The event feed cannot read the events topic; the console will not update live.");
                    return;
                }
            };
            while let Some(message) = events.next().await {
                // Nothing is committed: the group is this process's alone, and a restarted
                // process reads the topic again under a new one.
                match serde_json::from_slice::<RunEvent>(&message.payload) {
                    Ok(event) => feed.push(event),
                    Err(e) => tracing::warn!(error = %e, "An event the feed cannot read; skipped."),
                }
            }
        })
    }

    pub fn push(&self, event: RunEvent) {
        let event = Arc::new(event);
        if let Ok(mut recent) = self.inner.recent.lock() {
            // A re-sent outbox row repeats an event; one copy is enough.
            if !event.id.is_empty() && recent.iter().rev().take(64).any(|e| e.id == event.id) {
                return;
            }
            if recent.len() == KEPT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        // No receivers is not an error: nobody is watching.
        let _ = self.inner.live.send(event);
    }

    /// Live events from now on. Subscribe before reading `since`, so that nothing falls
    /// between the two; the caller skips what it was already sent.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RunEvent>> {
        self.inner.live.subscribe()
    }

    /// The kept events stamped at or after `at` (ms), oldest first: what a page rendered
    /// at `at` may not show yet.
    pub fn since_time(&self, at: crate::clock::Millis) -> Vec<Arc<RunEvent>> {
        let Ok(recent) = self.inner.recent.lock() else {
            return Vec::new();
        };
        recent.iter().filter(|e| e.at >= at).cloned().collect()
    }

    /// How many streams follow the feed now.
    #[cfg(test)]
    pub fn followers(&self) -> usize {
        self.inner.live.receiver_count()
    }

    pub fn since(&self, last: &str) -> Since {
        let Ok(recent) = self.inner.recent.lock() else {
            return Since::Lost;
        };
        match recent.iter().rposition(|e| e.id == last) {
            Some(i) => Since::Found(recent.iter().skip(i + 1).cloned().collect()),
            None => Since::Lost,
        }
    }
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixture;

    fn event(n: usize) -> RunEvent {
        let run = fixture::run();
        let mut e = RunEvent::of(&run, &fixture::audit()[0], n);
        e.id = format!("e{n}");
        e
    }

    #[test]
    fn a_client_resumes_after_the_event_it_names_and_is_told_when_that_is_gone() {
        let feed = Feed::new();
        for n in 0..5 {
            feed.push(event(n));
        }
        feed.push(event(4));
        let Since::Found(after) = feed.since("e2") else {
            panic!("e2 is kept");
        };
        let ids: Vec<_> = after.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["e3", "e4"]);
        assert!(matches!(feed.since("e4"), Since::Found(v) if v.is_empty()));
        assert!(matches!(feed.since("nope"), Since::Lost));
        for n in 5..KEPT + 5 {
            feed.push(event(n));
        }
        assert!(matches!(feed.since("e2"), Since::Lost));
    }
}
