//! Notes on the PagerDuty incident a run came from: that the run started, and how it
//! ended. Read from the run events like a chat notifier; each note is claimed by its key
//! before it is written, so a redelivered event or a second replica writes none twice. A
//! 429 or a 5xx is tried again; any other refusal is logged and given up.

use std::time::Duration;

use serde_json::json;

use crate::bus::{RunEvent, Subscription};
use crate::clock::{bounded_wait, short_duration};
use crate::config::PagerDutyApi;
use crate::domain::{EventKind, RunState};
use crate::secret::ExposeSecret;
use crate::store::Store;

const TRIES: u32 = 6;

pub struct Notes {
    store: Store,
    api: PagerDutyApi,
    client: reqwest::Client,
    /// Where a person follows the run: `LIFEBOAT_PUBLIC_URL`.
    public_url: Option<String>,
}

enum Failure {
    Again(Duration),
    Never(String),
}

impl Notes {
    pub fn new(
        store: Store,
        api: PagerDutyApi,
        public_url: Option<String>,
    ) -> anyhow::Result<Notes> {
        Ok(Notes {
            store,
            api,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            public_url,
        })
    }

    /// Follows the run events until the bus closes.
    pub async fn run(self, mut events: Box<dyn Subscription>) {
        while let Some(m) = events.next().await {
            match serde_json::from_slice::<RunEvent>(&m.payload) {
                Ok(e) => self.on(&e).await,
                Err(e) => {
                    tracing::warn!(error = %e, "Dropping an event the PagerDuty notes cannot read.")
                }
            }
            if let Err(e) = events.commit().await {
                tracing::warn!(error = %e, "Could not commit the events offset.");
            }
        }
    }

    async fn on(&self, e: &RunEvent) {
        let note = match e.kind {
            // Its first move: the run is in the engine's hands (creation itself is not an event).
            EventKind::Run(RunState::Running) => {
                let link = match &self.public_url {
                    Some(base) => format!(" {base}/api/v1/runs/{}", e.run_id),
                    None => String::new(),
                };
                format!(
                    "Lifeboat started {}{} of {}: run {}.{link}",
                    e.action,
                    if e.dry_run { " (dry run)" } else { "" },
                    e.group,
                    e.run_id
                )
            }
            EventKind::Run(
                state @ (RunState::Succeeded | RunState::Failed | RunState::Cancelled),
            ) => {
                let took = match self.store.load_run(e.run_id).await {
                    Ok(Some(run)) => run
                        .finished_at
                        .map(|end| format!(" after {}", short_duration(end - run.created_at)))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                let why = e
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                format!(
                    "Lifeboat's {} of {} {state}{took} (run {}){why}.",
                    e.action, e.group, e.run_id
                )
            }
            _ => return,
        };
        let incident = match self.store.pagerduty_incident(e.run_id).await {
            Ok(Some(i)) => i,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, "Could not look up a run's PagerDuty incident.");
                return;
            }
        };
        let key = format!("note:{}:{}", e.run_id, e.kind);
        match self.store.claim_note(&key, e.run_id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(error = %err, "Could not claim a PagerDuty note.");
                return;
            }
        }
        for attempt in 1..=TRIES {
            match self.write(&incident, &note).await {
                Ok(()) => {
                    tracing::info!(run_id = %e.run_id, incident, "Wrote a note on the PagerDuty incident.");
                    return;
                }
                Err(Failure::Again(wait)) if attempt < TRIES => {
                    tokio::time::sleep(wait).await;
                }
                Err(Failure::Again(_)) => break,
                Err(Failure::Never(why)) => {
                    tracing::error!(run_id = %e.run_id, incident, why, "PagerDuty refused a note; not trying again.");
                    return;
                }
            }
        }
        tracing::error!(run_id = %e.run_id, incident, "Could not write a note on the PagerDuty incident; giving it back for the next delivery.");
        if let Err(err) = self.store.release_note(&key).await {
            tracing::warn!(error = %err, "Could not give a PagerDuty note back.");
        }
    }

    async fn write(&self, incident: &str, note: &str) -> Result<(), Failure> {
        let mut req = self
            .client
            .post(format!("{}/incidents/{incident}/notes", self.api.url))
            .header(
                "authorization",
                format!("Token token={}", self.api.token.expose_secret()),
            )
            .header("accept", "application/vnd.pagerduty+json;version=2")
            .json(&json!({ "note": { "content": note } }));
        if let Some(from) = &self.api.from {
            req = req.header("from", from);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Again(backoff(&crate::secret::unsent(e))))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if status.as_u16() == 429 {
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map_or(Duration::from_secs(2), bounded_wait);
            return Err(Failure::Again(wait));
        }
        let body = resp.text().await.unwrap_or_default();
        if status.is_server_error() {
            return Err(Failure::Again(backoff(&body)));
        }
        Err(Failure::Never(format!("{status}: {body}")))
    }
}

fn backoff(why: &str) -> Duration {
    tracing::warn!(why, "A PagerDuty note failed; trying again.");
    Duration::from_millis(500)
}
