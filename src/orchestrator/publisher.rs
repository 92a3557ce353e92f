//! Sends committed messages to the bus from a task of its own, so that a slow or absent
//! broker holds up messages, never the engine: runs keep moving in the store, and an outbox
//! row that could not be sent stays there for the engine to hand over again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::mpsc;

use crate::bus::{Bus, Envelope};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// Where the release-to-dispatch overhead is recorded, for `lifeboat bench`.
pub type OverheadLog = Arc<Mutex<Vec<u32>>>;

/// Most messages handed to the bus at once.
const MOST_AT_ONCE: usize = 2048;

pub struct Outgoing {
    /// The outbox row, if the message has one (work re-sent for an adopted run has not).
    pub row: Option<i64>,
    pub message: Envelope,
    /// When the lease behind this message was released, for the overhead measurement.
    pub released_us: Option<i64>,
}

#[derive(Default)]
struct Ledger {
    /// Rows handed over and not yet answered by the broker.
    sending: HashSet<i64>,
    /// Rows the broker acknowledged, not yet deleted from the outbox.
    delivered: Vec<i64>,
}

#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::UnboundedSender<Vec<Outgoing>>,
    ledger: Arc<Mutex<Ledger>>,
    overhead: Arc<OnceLock<OverheadLog>>,
}

impl Publisher {
    /// Starts the sending task; it ends once every handle on this publisher is dropped.
    pub fn start(bus: Arc<dyn Bus>, metrics: Arc<Metrics>, clock: Clock) -> Publisher {
        let (queue, rx) = mpsc::unbounded_channel();
        let publisher = Publisher {
            queue,
            ledger: Arc::default(),
            overhead: Arc::default(),
        };
        tokio::spawn(run(
            rx,
            publisher.ledger.clone(),
            publisher.overhead.clone(),
            bus,
            metrics,
            clock,
        ));
        publisher
    }

    pub fn record_overhead(&self, log: OverheadLog) {
        let _ = self.overhead.set(log);
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    /// Queues messages to be sent in this order, after everything queued before. Outbox
    /// rows being sent or sent already are left out.
    pub fn send(&self, messages: Vec<Outgoing>) {
        let fresh: Vec<Outgoing> = {
            let mut ledger = self.ledger();
            let Ledger { sending, delivered } = &mut *ledger;
            messages
                .into_iter()
                .filter(|m| match m.row {
                    Some(id) => !delivered.contains(&id) && sending.insert(id),
                    None => true,
                })
                .collect()
        };
        if fresh.is_empty() {
            return;
        }
        if let Err(returned) = self.queue.send(fresh) {
            // Not in flight after all: the next offer of these rows must not skip them.
            let mut ledger = self.ledger();
            for m in &returned.0 {
                if let Some(id) = m.row {
                    ledger.sending.remove(&id);
                }
            }
            tracing::warn!("The publisher has stopped; the outbox keeps the messages.");
        }
    }

    /// Up to `n` rows the broker has acknowledged, for deletion from the outbox.
    pub fn take_delivered(&self, n: usize) -> Vec<i64> {
        let mut ledger = self.ledger();
        let n = n.min(ledger.delivered.len());
        ledger.delivered.drain(..n).collect()
    }

    /// Rows taken for a deletion that was not committed.
    pub fn give_back(&self, rows: Vec<i64>) {
        self.ledger().delivered.extend(rows);
    }

    pub fn has_delivered(&self) -> bool {
        !self.ledger().delivered.is_empty()
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Vec<Outgoing>>,
    ledger: Arc<Mutex<Ledger>>,
    overhead: Arc<OnceLock<OverheadLog>>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    clock: Clock,
) {
    while let Some(mut batch) = rx.recv().await {
        while batch.len() < MOST_AT_ONCE
            && let Ok(more) = rx.try_recv()
        {
            batch.extend(more);
        }
        for chunk in batch.chunks(MOST_AT_ONCE) {
            send(chunk, &ledger, &overhead, bus.as_ref(), &metrics, &clock).await;
        }
    }
}

/// Queues a chunk in order, then awaits the deliveries together rather than one broker
/// round trip each. A chunk stays far below the producer's queue, which refuses a message
/// when full (the outbox then keeps it for another try).
async fn send(
    chunk: &[Outgoing],
    ledger: &Mutex<Ledger>,
    overhead: &OnceLock<OverheadLog>,
    bus: &dyn Bus,
    metrics: &Metrics,
    clock: &Clock,
) {
    let queued: Vec<_> = chunk
        .iter()
        .map(|m| {
            bus.enqueue(
                &m.message.topic,
                &m.message.key,
                m.message.payload.clone().into_bytes(),
            )
        })
        .collect();
    let sent = futures_util::future::join_all(queued).await;
    let now_us = clock.now_us();
    let mut book = lock(ledger);
    for (m, sent) in chunk.iter().zip(sent) {
        if let Some(id) = m.row {
            book.sending.remove(&id);
            if sent.is_ok() {
                book.delivered.push(id);
            }
        }
        if let Err(e) = sent {
            tracing::warn!(error = %e, topic = %m.message.topic, "Publish failed; the outbox keeps it for another try.");
            continue;
        }
        if let Some(released_us) = m.released_us {
            let micros = (now_us - released_us).max(0);
            metrics.overhead(micros);
            if let Some(log) = overhead.get()
                && let Ok(mut log) = log.lock()
            {
                log.push(micros.min(u32::MAX as i64) as u32);
            }
        }
    }
}

/// The ledger holds plain sets; one left by a panicking holder is still consistent.
fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}
