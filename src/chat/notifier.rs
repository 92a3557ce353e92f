//! The notifier: reads run and stage events and keeps each run's card on one platform.
//!
//! Events that arrive together are handled together, so that a burst of stage changes
//! becomes one edit of each card it touches. The card is rendered from the run as the store
//! holds it, so the latest state wins whatever the order of events. Which message is which
//! run's card is stored: a restarted or another replica edits the same card, and the post
//! is claimed first, so with several replicas each card is posted once. Thread replies and
//! the summary are claimed by key (the event's id) and posted once however often an event
//! is delivered. A 429 waits out its `Retry-After` and the same work is done again; the
//! offset is committed only once a batch is handled.

use std::sync::Arc;
use std::time::Duration;

use super::card::Card;
use super::card_slot::{CardSlot, Synced};
use super::context::ChatContext;
use super::markup::{Markup, mention};
use super::outbound::{Outbound, Posted, SendError};
use super::text;
use crate::bus::{RunEvent, Subscription};
use crate::domain::{Actor, EventKind, Run, RunId, RunState, StageState};
use crate::store::CardKey;
use crate::workflow::Action;
use crate::workflow::Group;

/// How long a batch waits for more events once one has come.
const GATHER: Duration = Duration::from_millis(100);
/// Most events in one batch.
const MOST: usize = 2000;
/// A group whose readiness flaps is told each way at most once in this long.
const FLAP_MS: i64 = 3_600_000;
/// How often a card is tried again after a failure other than a 429, and how long apart.
const TRIES: u32 = 5;
const BACKOFF: Duration = Duration::from_millis(500);

pub struct Notifier {
    cx: ChatContext,
    out: Arc<dyn Outbound>,
    /// This process's name, in card claims.
    instance: String,
}

impl Notifier {
    pub fn new(cx: ChatContext, out: Arc<dyn Outbound>, instance: String) -> Notifier {
        Notifier { cx, out, instance }
    }

    /// Brings every unsettled card up to date, then follows the events until the bus
    /// closes.
    pub async fn run(self, mut events: Box<dyn Subscription>) {
        match self.cx.store.unsettled_cards(self.out.platform()).await {
            Ok(runs) => {
                for id in runs {
                    self.refresh(id, &[]).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "Could not read the cards left unsettled."),
        }
        while let Some(first) = events.next().await {
            let mut batch = vec![first];
            while batch.len() < MOST {
                match tokio::time::timeout(GATHER, events.next()).await {
                    Ok(Some(m)) => batch.push(m),
                    _ => break,
                }
            }
            let parsed: Vec<RunEvent> = batch
                .iter()
                .filter_map(|m| match serde_json::from_slice(&m.payload) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "Dropping an event the notifier cannot read.");
                        None
                    }
                })
                .collect();
            let mut runs: Vec<RunId> = Vec::new();
            for e in &parsed {
                if !runs.contains(&e.run_id) {
                    runs.push(e.run_id);
                }
            }
            for id in runs {
                let of_run: Vec<RunEvent> =
                    parsed.iter().filter(|e| e.run_id == id).cloned().collect();
                self.refresh(id, &of_run).await;
            }
            // A drill that ended may have changed its group's readiness.
            let mut drilled: Vec<&str> = Vec::new();
            for e in parsed
                .iter()
                .filter(|e| e.action == Action::Drill && e.kind.ends_run())
            {
                if !drilled.contains(&e.group.as_str()) {
                    drilled.push(&e.group);
                }
            }
            for group in drilled {
                self.tell_readiness(group).await;
            }
            if let Err(e) = events.commit().await {
                tracing::warn!(error = %e, "Could not commit the events offset.");
            }
        }
    }

    /// Tells the group's standing channel when its readiness changed: once, whichever
    /// replica gets there first, and each way at most once an hour.
    async fn tell_readiness(&self, name: &str) {
        let Some(group) = self.cx.catalog().groups.get(name) else {
            return;
        };
        let Some(channel) = self
            .out
            .covers(group)
            .then(|| self.out.offer_channel(group))
            .flatten()
        else {
            return;
        };
        let now = self.cx.clock.now_ms();
        let readiness =
            match crate::readiness::of_group(&self.cx.store, self.cx.catalog(), group, now).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(group = name, error = %e, "Could not read a group's readiness.");
                    return;
                }
            };
        let Some(ready) = readiness.ready else {
            return;
        };
        let platform = self.out.platform();
        match self
            .cx
            .store
            .tell_readiness(name, platform.as_str(), ready, now - FLAP_MS)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(group = name, error = %e, "Could not record a readiness change.");
                return;
            }
        }
        let text = if ready {
            format!("✓ `{name}` is ready again: its last drill passed every check.")
        } else {
            format!(
                "⚠ `{name}` is not ready for a failover: its last drill failed a check.\n```\n{}```",
                readiness.summary()
            )
        };
        for attempt in 1..=TRIES {
            match self.out.announce(&channel, &text).await {
                Ok(()) => return,
                Err(SendError::RateLimited(wait)) => tokio::time::sleep(wait).await,
                Err(SendError::Failed(e)) => {
                    tracing::warn!(group = name, error = %e, platform = %platform, attempt, "Could not tell a readiness change.");
                    tokio::time::sleep(BACKOFF * attempt).await;
                }
            }
        }
    }

    /// Brings a run's card up to date and makes the posts its events call for, waiting
    /// out rate limits and trying again after failures.
    async fn refresh(&self, id: RunId, events: &[RunEvent]) {
        let mut failures = 0;
        loop {
            match self.try_refresh(id, events).await {
                Ok(()) => return,
                Err(SendError::RateLimited(wait)) => {
                    tracing::info!(run_id = %id, ?wait, platform = %self.out.platform(), "Rate limited; waiting.");
                    tokio::time::sleep(wait).await;
                }
                Err(SendError::Failed(e)) => {
                    failures += 1;
                    if failures >= TRIES {
                        tracing::error!(run_id = %id, error = %e, platform = %self.out.platform(), "Could not update a run's card; the next event or start tries again.");
                        return;
                    }
                    tracing::warn!(run_id = %id, error = %e, platform = %self.out.platform(), "Could not update a run's card; trying again.");
                    tokio::time::sleep(BACKOFF * failures).await;
                }
            }
        }
    }

    async fn try_refresh(&self, id: RunId, events: &[RunEvent]) -> Result<(), SendError> {
        let platform = self.out.platform();
        let store = &self.cx.store;
        let Some(run) = self.cx.orchestrator.run(id).await.map_err(failed)? else {
            return Ok(());
        };
        // A scheduled drill keeps no card: an incident channel every few hours would be
        // noise. Its run is in the API and the console like any other.
        if run.requested_by == Actor::Schedule {
            return Ok(());
        }
        let Some(group) = self.cx.catalog().groups.get(&run.group) else {
            return Ok(());
        };
        if !self.out.covers(group) {
            return Ok(());
        }
        // A group moving in an evacuation is followed on the evacuation's one card: its
        // own incident opens only once it fails or waits for a person, and then stays.
        let wants_person = run.state == RunState::Failed
            || !run.open_gates().is_empty()
            || run.stages.iter().any(|s| s.hold.is_some());
        if !wants_person
            && store.card(platform, id).await.map_err(failed)?.is_none()
            && store.evacuation_of_run(id).await.map_err(failed)?.is_some()
        {
            return Ok(());
        }
        let audit = self.cx.orchestrator.events(id).await.map_err(failed)?;
        let alerts = store.alert_tally(id).await.map_err(failed)?;
        let recovery = if run.state.is_final() {
            self.cx.orchestrator.recovery(&run).await.map_err(failed)?
        } else {
            None
        };
        let card = Card::of(
            &run,
            &audit,
            alerts.as_ref(),
            self.out.markup(),
            self.cx.clock.now_ms(),
        )
        .with_recovery(recovery.as_ref());
        let rendering = self.out.rendering(&card);
        let slot = CardSlot {
            store,
            platform,
            key: CardKey::Run(id),
            claimer: &self.instance,
        };
        let synced = slot
            .sync(
                &rendering,
                card.is_final(),
                async |retake| {
                    let origin = store.origin(id, platform).await.map_err(failed)?;
                    if retake.0
                        && let Some(found) = self.found_incident(&run, group).await?
                    {
                        self.out.bring_in(&found, group, origin.as_ref()).await?;
                        return Ok(found);
                    }
                    self.out.open(&run, group, origin.as_ref()).await
                },
                async |channel: &str, retake| {
                    if retake.0
                        && let Some(found) = self.found_card(channel, &run, &card).await?
                    {
                        return Ok(found);
                    }
                    self.out.post_card(channel, &card).await
                },
                async |at: &Posted| self.out.edit_card(at, &card).await,
            )
            .await?;
        let at = match synced {
            Synced::Shown { at, new } => {
                if new {
                    let origin = store.origin(id, platform).await.map_err(failed)?;
                    let notice = format!(
                        "{}: follow it in {}",
                        card.title,
                        self.out.markup().channel(&at.channel)
                    );
                    for elsewhere in self.out.announce_in(group, origin.as_ref()) {
                        let key = format!("announce:{id}:{elsewhere}");
                        self.once(&key, id, self.out.announce(&elsewhere, &notice))
                            .await?;
                    }
                }
                at
            }
            // Another replica is posting it; this event's state must still reach it.
            Synced::Busy => return Err(SendError::Failed("the card is being posted".into())),
        };
        // A rejection cancels the run: its thread hears of the rejection once, not twice.
        let rejected = events.iter().any(|e| e.kind == EventKind::StageRejected);
        for e in events {
            if rejected && e.kind == EventKind::Run(RunState::Cancelled) {
                continue;
            }
            if let Some(said) = notable(e, self.out.markup()) {
                let key = if e.id.is_empty() {
                    format!("{}:{}:{}", e.run_id, e.kind, e.at)
                } else {
                    e.id.clone()
                };
                self.once(&key, id, self.out.reply(&at, &said)).await?;
            }
        }
        if run.state.is_final() {
            let summary = text::summary(&run);
            self.once(&format!("summary:{id}"), id, self.out.reply(&at, &summary))
                .await?;
        }
        Ok(())
    }

    /// The incident the platform made for `run` and no other card claims: an earlier
    /// claimer's, which died before recording it. A look that fails finds nothing (the
    /// incident is opened again rather than never); one rate-limited is tried later.
    async fn found_incident(&self, run: &Run, group: &Group) -> Result<Option<String>, SendError> {
        let platform = self.out.platform();
        let candidates = match self.out.find_incident(run, group).await {
            Ok(c) => c,
            Err(e @ SendError::RateLimited(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(run_id = %run.id, platform = %platform, error = %e, "Could not look for an incident an earlier attempt opened; opening one.");
                return Ok(None);
            }
        };
        for found in candidates {
            let taken = self
                .cx
                .store
                .channel_taken(platform, CardKey::Run(run.id), &found)
                .await
                .map_err(failed)?;
            if !taken {
                tracing::info!(run_id = %run.id, platform = %platform, channel = %found, "Found the incident an earlier attempt opened.");
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The card an earlier claimer posted in `channel` and died before recording, brought
    /// up to date. One that cannot be found or edited is not taken: the card is posted
    /// again rather than never; a rate limit is waited out and tried again.
    async fn found_card(
        &self,
        channel: &str,
        run: &Run,
        card: &Card,
    ) -> Result<Option<String>, SendError> {
        let platform = self.out.platform();
        let message = match self.out.find_card(channel, run).await {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e @ SendError::RateLimited(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(run_id = %run.id, platform = %platform, error = %e, "Could not look for a card an earlier attempt posted; posting one.");
                return Ok(None);
            }
        };
        let at = Posted {
            channel: channel.to_string(),
            message,
        };
        match self.out.edit_card(&at, card).await {
            Ok(()) => {
                tracing::info!(run_id = %run.id, platform = %platform, "Found the card an earlier attempt posted.");
                Ok(Some(at.message))
            }
            Err(e @ SendError::RateLimited(_)) => Err(e),
            Err(e) => {
                tracing::warn!(run_id = %run.id, platform = %platform, error = %e, "Could not take up a card an earlier attempt posted; posting one.");
                Ok(None)
            }
        }
    }

    /// Makes a post once: claimed by `key` first, given back if it could not be made.
    async fn once(
        &self,
        key: &str,
        run: RunId,
        post: impl std::future::Future<Output = Result<(), SendError>>,
    ) -> Result<(), SendError> {
        let platform = self.out.platform();
        if !self
            .cx
            .store
            .claim_post(platform, key, run)
            .await
            .map_err(failed)?
        {
            return Ok(());
        }
        if let Err(e) = post.await {
            if let Err(release) = self.cx.store.release_post(platform, key).await {
                tracing::warn!(error = %release, key, "Could not give a post back; it will not be tried again.");
            }
            return Err(e);
        }
        Ok(())
    }
}

fn failed(e: anyhow::Error) -> SendError {
    SendError::Failed(e.to_string())
}

/// What the thread hears of an event, if anything.
fn notable(e: &RunEvent, on: &dyn Markup) -> Option<String> {
    let stage = e.stage.as_deref().unwrap_or("the run");
    let message = on.escape(e.message.as_deref().unwrap_or(""));
    let who = mention(&e.actor, on);
    match e.kind {
        EventKind::Stage(StageState::Retrying) => Some(format!(
            "🔁 `{stage}` attempt {} failed: {message}. It will be retried.",
            e.attempt.unwrap_or(0)
        )),
        EventKind::Stage(StageState::Failed) => Some(format!("❌ `{stage}` failed: {message}")),
        EventKind::ApprovalRequested => Some(format!(
            "⏸️ `{stage}` waits for approval: press Approve or Reject on the card."
        )),
        EventKind::StageApproved if e.actor != Actor::DryRun => {
            Some(format!("✅ {who} approved `{stage}`."))
        }
        EventKind::StageRejected => Some(format!("🚫 {who} rejected `{stage}`: {message}")),
        EventKind::Run(RunState::Cancelled) => Some(format!("🚫 {message}")),
        EventKind::RunResumed => Some(format!("▶️ {who} resumed the run.")),
        EventKind::Stage(StageState::Skipped) if e.actor.is_person() => {
            Some(format!("⏭️ {message}"))
        }
        EventKind::Stage(StageState::Dispatched)
            if e.message.as_deref() == Some(crate::orchestrator::machine::RETRIED_NOW) =>
        {
            Some(format!("▶️ {who} retried `{stage}` now."))
        }
        EventKind::PreflightOverridden | EventKind::DriftOverridden => {
            Some(format!("⚠️ {who}: {message}"))
        }
        _ => None,
    }
}
