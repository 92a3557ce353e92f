//! What chat needs kept: each run's card on each platform (so that a restarted or another
//! replica edits the same message), the posts made once, where runs were asked for, who was
//! refused, and the leases held now (for `/dr locks`).

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::clock::Millis;
use crate::domain::{Actor, EvacuationId, Platform, RunId};

/// Which card: a run's, in its incident, or an offer's, in the group's standing channel.
/// Both are named by a run id (an offer's id is the id of the run it would start), so the
/// offer's is stored as `offer:ID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CardKey {
    Run(RunId),
    Offer(RunId),
    /// An evacuation's one card, in a standing channel.
    Evacuation(EvacuationId),
}

impl From<RunId> for CardKey {
    fn from(id: RunId) -> Self {
        CardKey::Run(id)
    }
}

impl std::fmt::Display for CardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CardKey::Run(id) => write!(f, "{id}"),
            CardKey::Offer(id) => write!(f, "offer:{id}"),
            CardKey::Evacuation(id) => write!(f, "evacuation:{id}"),
        }
    }
}

/// A run's (or an offer's) card on one platform.
#[derive(Clone, Debug, PartialEq)]
pub struct CardRow {
    pub channel: Option<String>,
    pub message: Option<String>,
    pub claimed_by: String,
    pub claimed_at: Millis,
    pub shown: Option<String>,
    pub settled: bool,
    /// A claimer began opening the incident, or posting the card: what it made may be
    /// there unrecorded.
    pub opening: bool,
    pub posting: bool,
}

/// What a card's claimer is about to ask the platform for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardStep {
    Opening,
    Posting,
}

/// Who may post a run's card now.
#[derive(Clone, Debug, PartialEq)]
pub enum CardClaim {
    /// This claimer: post it (into `channel`, if an earlier claimer opened one).
    Won { channel: Option<String> },
    /// It is posted already: edit it.
    Posted(CardRow),
    /// Another claimer is posting it now.
    Busy,
}

/// Where a run was asked for from chat.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    pub channel: String,
    pub user: String,
}

/// A lease held now.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldLease {
    pub resource: String,
    pub run_id: RunId,
    pub stage: String,
    pub holder: String,
    pub expires_at: Millis,
}

/// A refusal as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct RefusalRow {
    pub at: Millis,
    pub actor: String,
    pub group: Option<String>,
    pub run: Option<String>,
    pub request: String,
    pub reason: String,
}

/// A request refused for want of permission.
pub struct Refusal<'a> {
    pub actor: &'a Actor,
    pub group: Option<&'a str>,
    pub run: Option<RunId>,
    pub request: &'a str,
    pub reason: &'a str,
}

const CARD_SELECT: &str = "SELECT channel, message, claimed_by, claimed_at, shown, settled, \
     opening, posting FROM chat_cards";

fn card_from_row(r: &AnyRow) -> anyhow::Result<CardRow> {
    Ok(CardRow {
        channel: r.try_get("channel")?,
        message: r.try_get("message")?,
        claimed_by: r.try_get("claimed_by")?,
        claimed_at: r.try_get("claimed_at")?,
        shown: r.try_get("shown")?,
        settled: r.try_get::<i64, _>("settled")? != 0,
        opening: r.try_get::<i64, _>("opening")? != 0,
        posting: r.try_get::<i64, _>("posting")? != 0,
    })
}

impl Store {
    pub async fn card(
        &self,
        platform: Platform,
        run: impl Into<CardKey>,
    ) -> anyhow::Result<Option<CardRow>> {
        let run = run.into();
        let row = sqlx::query(&format!(
            "{CARD_SELECT} WHERE platform = $1 AND run_id = $2"
        ))
        .bind(platform.as_str())
        .bind(run.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(card_from_row).transpose()
    }

    /// Claims the posting of a run's card for `claimer`. A claim older than `stale_ms` with
    /// no message posted is taken over: its claimer died between claiming and posting.
    pub async fn claim_card(
        &self,
        platform: Platform,
        run: impl Into<CardKey>,
        claimer: &str,
        stale_ms: Millis,
    ) -> anyhow::Result<CardClaim> {
        let run = run.into();
        let now = self.clock.now_ms();
        let inserted = sqlx::query(
            "INSERT INTO chat_cards (platform, run_id, claimed_by, claimed_at, settled) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT DO NOTHING",
        )
        .bind(platform.as_str())
        .bind(run.to_string())
        .bind(claimer)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(CardClaim::Won { channel: None });
        }
        let Some(card) = self.card(platform, run).await? else {
            return Ok(CardClaim::Busy);
        };
        if card.message.is_some() {
            return Ok(CardClaim::Posted(card));
        }
        if card.claimed_by != claimer && card.claimed_at > now - stale_ms {
            return Ok(CardClaim::Busy);
        }
        let taken = sqlx::query(
            "UPDATE chat_cards SET claimed_by = $1, claimed_at = $2 \
             WHERE platform = $3 AND run_id = $4 AND claimed_by = $5 AND claimed_at = $6 \
             AND message IS NULL",
        )
        .bind(claimer)
        .bind(now)
        .bind(platform.as_str())
        .bind(run.to_string())
        .bind(&card.claimed_by)
        .bind(card.claimed_at)
        .execute(&self.pool)
        .await?;
        Ok(if taken.rows_affected() == 1 {
            CardClaim::Won {
                channel: card.channel,
            }
        } else {
            CardClaim::Busy
        })
    }

    /// Records the channel opened for a card before the card is posted in it, so that a
    /// claimer taking over posts there rather than opening another.
    pub async fn set_card_channel(
        &self,
        platform: Platform,
        run: impl Into<CardKey>,
        channel: &str,
    ) -> anyhow::Result<()> {
        let run = run.into();
        sqlx::query("UPDATE chat_cards SET channel = $1 WHERE platform = $2 AND run_id = $3")
            .bind(channel)
            .bind(platform.as_str())
            .bind(run.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records, before asking the platform, that a card's incident is being opened or its
    /// card posted.
    pub async fn mark_card(
        &self,
        platform: Platform,
        run: impl Into<CardKey>,
        step: CardStep,
    ) -> anyhow::Result<()> {
        let column = match step {
            CardStep::Opening => "opening",
            CardStep::Posting => "posting",
        };
        sqlx::query(&format!(
            "UPDATE chat_cards SET {column} = 1 WHERE platform = $1 AND run_id = $2"
        ))
        .bind(platform.as_str())
        .bind(run.into().to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether another card than `run`'s has `channel` as its place.
    pub async fn channel_taken(
        &self,
        platform: Platform,
        run: impl Into<CardKey>,
        channel: &str,
    ) -> anyhow::Result<bool> {
        let row = sqlx::query(
            "SELECT run_id FROM chat_cards WHERE platform = $1 AND channel = $2 AND run_id <> $3 \
             LIMIT 1",
        )
        .bind(platform.as_str())
        .bind(channel)
        .bind(run.into().to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Records what the card shows now (and, once posted, which message it is).
    pub async fn set_card_shown(
        &self,
        platform: Platform,
        run: impl Into<CardKey>,
        message: Option<&str>,
        shown: &str,
        settled: bool,
    ) -> anyhow::Result<()> {
        let run = run.into();
        sqlx::query(
            "UPDATE chat_cards SET message = COALESCE($1, message), shown = $2, settled = $3 \
             WHERE platform = $4 AND run_id = $5",
        )
        .bind(message.map(str::to_string))
        .bind(shown)
        .bind(settled as i64)
        .bind(platform.as_str())
        .bind(run.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs whose card on `platform` does not yet show their final state.
    pub async fn unsettled_cards(&self, platform: Platform) -> anyhow::Result<Vec<RunId>> {
        Ok(self
            .unsettled(platform)
            .await?
            .into_iter()
            .filter_map(|k| match k {
                CardKey::Run(id) => Some(id),
                CardKey::Offer(_) | CardKey::Evacuation(_) => None,
            })
            .collect())
    }

    /// Offers whose card on `platform` does not yet show how they ended.
    pub async fn unsettled_offer_cards(&self, platform: Platform) -> anyhow::Result<Vec<RunId>> {
        Ok(self
            .unsettled(platform)
            .await?
            .into_iter()
            .filter_map(|k| match k {
                CardKey::Offer(id) => Some(id),
                CardKey::Run(_) | CardKey::Evacuation(_) => None,
            })
            .collect())
    }

    /// Evacuations whose card on `platform` may still change.
    pub async fn unsettled_evacuation_cards(
        &self,
        platform: Platform,
    ) -> anyhow::Result<Vec<EvacuationId>> {
        Ok(self
            .unsettled(platform)
            .await?
            .into_iter()
            .filter_map(|k| match k {
                CardKey::Evacuation(id) => Some(id),
                CardKey::Run(_) | CardKey::Offer(_) => None,
            })
            .collect())
    }

    async fn unsettled(&self, platform: Platform) -> anyhow::Result<Vec<CardKey>> {
        let rows = sqlx::query("SELECT run_id FROM chat_cards WHERE platform = $1 AND settled = 0")
            .bind(platform.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let key: String = r.try_get("run_id")?;
                Ok(if let Some(id) = key.strip_prefix("offer:") {
                    CardKey::Offer(RunId::from_str(id)?)
                } else if let Some(id) = key.strip_prefix("evacuation:") {
                    CardKey::Evacuation(EvacuationId::from_str(id)?)
                } else {
                    CardKey::Run(RunId::from_str(&key)?)
                })
            })
            .collect()
    }

    /// Claims a post made once (a thread reply, a summary); `false` if it is made already.
    pub async fn claim_post(
        &self,
        platform: Platform,
        key: &str,
        run: RunId,
    ) -> anyhow::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO chat_posts (platform, post_key, run_id, posted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(platform.as_str())
        .bind(key)
        .bind(run.to_string())
        .bind(self.clock.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Gives a claimed post back, for another try: it could not be made.
    pub async fn release_post(&self, platform: Platform, key: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM chat_posts WHERE platform = $1 AND post_key = $2")
            .bind(platform.as_str())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn record_origin(
        &self,
        run: RunId,
        platform: Platform,
        origin: &Origin,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO chat_origins (run_id, platform, channel, user_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(run.to_string())
        .bind(platform.as_str())
        .bind(&origin.channel)
        .bind(&origin.user)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn origin(&self, run: RunId, platform: Platform) -> anyhow::Result<Option<Origin>> {
        let row = sqlx::query(
            "SELECT channel, user_id FROM chat_origins WHERE run_id = $1 AND platform = $2",
        )
        .bind(run.to_string())
        .bind(platform.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Origin {
                channel: r.try_get("channel")?,
                user: r.try_get("user_id")?,
            })
        })
        .transpose()
    }

    pub async fn record_refusal(&self, r: &Refusal<'_>) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO refusals (at, actor, group_name, run_id, request, reason) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(self.clock.now_ms())
        .bind(r.actor.to_string())
        .bind(r.group.map(str::to_string))
        .bind(r.run.map(|id| id.to_string()))
        .bind(r.request)
        .bind(r.reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether this is the first time the chat interaction `id` of `platform` is taken:
    /// `false` for a replay. Forgets what it saw more than an hour ago.
    pub async fn first_sight(&self, platform: &str, id: &str) -> anyhow::Result<bool> {
        const KEPT_MS: i64 = 3_600_000;
        let now = self.clock.now_ms();
        sqlx::query("DELETE FROM chat_seen WHERE seen_at < $1")
            .bind(now - KEPT_MS)
            .execute(&self.pool)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO chat_seen (platform, seen_id, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(platform)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// The most recent refusals first.
    pub async fn refusals(&self, limit: i64) -> anyhow::Result<Vec<RefusalRow>> {
        let rows = sqlx::query(
            "SELECT at, actor, group_name, run_id, request, reason FROM refusals \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RefusalRow {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    group: r.try_get("group_name")?,
                    run: r.try_get("run_id")?,
                    request: r.try_get("request")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Every lease held now, soonest to expire first.
    pub async fn held_leases(&self) -> anyhow::Result<Vec<HeldLease>> {
        let rows = sqlx::query(
            "SELECT resource, run_id, stage, holder, expires_at FROM leases ORDER BY expires_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HeldLease {
                    resource: r.try_get("resource")?,
                    run_id: RunId::from_str(&r.try_get::<String, _>("run_id")?)?,
                    stage: r.try_get("stage")?,
                    holder: r.try_get("holder")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }
}
