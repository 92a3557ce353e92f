//! An evacuation's one card, in a standing channel: counts by group state, the time so far,
//! the slowest groups, the wait for budgets, and each failed group with its buttons. The
//! groups that go well never post anything else; a group gets an incident of its own only
//! when it fails or waits for a person.

use super::card::Button;
use super::markup::{Markup, mention};
use super::offer_card::OfferCard;
use crate::clock::{Millis, short_duration};
use crate::domain::evacuation::{Evacuation, EvacuationState, GroupState, Scorecard};

/// Failed groups a card names with their buttons; the rest are counted.
const MOST_FAILURES: usize = 5;

pub fn of(e: &Evacuation, score: &Scorecard, on: &dyn Markup, now: Millis) -> OfferCard {
    let what = format!(
        "{}vacuation: {} of {} group{}",
        if e.dry_run { "Dry-run e" } else { "E" },
        e.action,
        e.groups.len(),
        if e.groups.len() == 1 { "" } else { "s" }
    );
    let took = short_duration(e.finished_at.unwrap_or(now) - e.created_at);
    let title = match e.state {
        EvacuationState::Going => format!("🚨 {what}: going, {took} so far"),
        EvacuationState::Succeeded => format!("✅ {what}: done in {took}"),
        EvacuationState::Failed => format!("❌ {what}: ended with failures after {took}"),
        EvacuationState::Aborted => format!("🛑 {what}: aborted after {took}"),
    };
    let mut lines = Vec::new();
    if let Some(reason) = &e.reason {
        lines.push(format!(
            "Why: {} (asked by {})",
            on.escape(reason),
            mention(&e.requested_by, on)
        ));
    }
    lines.push(format!("Groups: {}", e.counted().join(" · ")));
    if !score.slowest.is_empty() {
        let slowest: Vec<String> = score
            .slowest
            .iter()
            .map(|s| format!("`{}` {}", s.group, short_duration(s.ms)))
            .collect();
        lines.push(format!("Slowest: {}", slowest.join(", ")));
    }
    if score.budget_wait_ms > 0 {
        lines.push(format!(
            "Waiting for budgets: {} in all",
            short_duration(score.budget_wait_ms)
        ));
    }
    let failed: Vec<_> = e
        .groups
        .iter()
        .filter(|g| g.state == GroupState::Failed)
        .collect();
    for g in failed.iter().take(MOST_FAILURES) {
        let run = g.run.map(|r| format!(" (run `{r}`)")).unwrap_or_default();
        let note = g
            .note
            .as_deref()
            .map(|n| format!(": {}", on.escape(n)))
            .unwrap_or_default();
        lines.push(format!("❌ `{}` failed{run}{note}", g.group));
    }
    if failed.len() > MOST_FAILURES {
        lines.push(format!(
            "… and {} more failed (`/dr status {}`)",
            failed.len() - MOST_FAILURES,
            e.id
        ));
    }
    let held = e
        .groups
        .iter()
        .filter(|g| g.state == GroupState::Held)
        .count();
    if held > 0 {
        lines.push(format!(
            "✋ {held} held until what they depend on is resumed or skipped"
        ));
    }
    let going = e.state == EvacuationState::Going;
    let not_started = e
        .groups
        .iter()
        .any(|g| matches!(g.state, GroupState::Waiting | GroupState::Held));
    OfferCard {
        about: "evacuation",
        id: e.id.to_string(),
        title,
        lines,
        buttons: if going && not_started {
            vec![Button::EvacuationAbort]
        } else {
            Vec::new()
        },
        rows: failed
            .iter()
            .take(MOST_FAILURES)
            .map(|g| {
                (
                    g.group.clone(),
                    vec![Button::EvacuationResume, Button::EvacuationSkip],
                )
            })
            .collect(),
        settled: !going,
    }
}
