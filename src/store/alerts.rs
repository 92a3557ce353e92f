//! Alerts and offers. An alert is filed in the same transaction that decides what it does
//! (`AlertTx`), so that no alert is ever recorded without its decision, and no decision is
//! made on state another replica changed meanwhile without the unique keys noticing: one
//! alert per sender's dedupe key, one open offer per group and action.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Backend, Store, holes, rows};
use crate::clock::Millis;
use crate::domain::{
    Actor, Alert, AlertBrief, AlertDecision, AlertTally, Offer, OfferMode, OfferState, RunId,
    active_key,
};
use crate::workflow::Action;

/// Rows per multi-row insert: 17 parameters each, well within SQLite's and PostgreSQL's
/// limits on parameters per statement.
const INSERT_CHUNK: usize = 100;
/// Keys or ids per `IN (…)` list.
const LOOKUP_CHUNK: usize = 500;

/// What an alert is filed with: its place in the routes and what it did.
#[derive(Clone)]
pub struct Filing<'a> {
    pub alert: &'a Alert,
    pub route: Option<String>,
    pub group: Option<String>,
    pub action: Option<Action>,
    pub decision: AlertDecision,
    pub detail: Option<String>,
    pub offer: Option<RunId>,
    pub run: Option<RunId>,
}

/// An alert as stored, for the API.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRow {
    pub id: i64,
    pub source: String,
    pub status: String,
    pub fingerprint: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub route: Option<String>,
    pub group: Option<String>,
    pub action: Option<String>,
    pub decision: Option<String>,
    pub detail: Option<String>,
    pub offer_id: Option<String>,
    pub run_id: Option<String>,
    pub received_at: Millis,
    pub repeats: i64,
}

/// Which alerts to list.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    pub run: Option<RunId>,
    pub route: Option<String>,
    pub decision: Option<AlertDecision>,
    pub limit: i64,
}

/// One transaction of alert filing.
pub struct AlertTx {
    tx: Transaction<'static, Any>,
    pub now: Millis,
}

const OFFER_SELECT: &str = "SELECT id, route, group_name, action, mode, state, opened_at, deadline, \
     decided_by, decided_at, run_id, message, alert FROM offers";

fn offer_from_row(r: &AnyRow) -> anyhow::Result<Offer> {
    let opt_id = |col: &str| -> anyhow::Result<Option<RunId>> {
        Ok(r.try_get::<Option<String>, _>(col)?
            .map(|s| RunId::from_str(&s))
            .transpose()?)
    };
    Ok(Offer {
        id: RunId::from_str(&r.try_get::<String, _>("id")?)?,
        route: r.try_get("route")?,
        group: r.try_get("group_name")?,
        action: r
            .try_get::<String, _>("action")?
            .parse()
            .map_err(anyhow::Error::msg)?,
        mode: OfferMode::from_str(&r.try_get::<String, _>("mode")?).map_err(anyhow::Error::msg)?,
        state: OfferState::from_str(&r.try_get::<String, _>("state")?)
            .map_err(anyhow::Error::msg)?,
        opened_at: r.try_get("opened_at")?,
        deadline: r.try_get("deadline")?,
        decided_by: r
            .try_get::<Option<String>, _>("decided_by")?
            .map(|a| rows::actor(&a))
            .transpose()?,
        decided_at: r.try_get("decided_at")?,
        run_id: opt_id("run_id")?,
        message: r.try_get("message")?,
        alert: serde_json::from_str(&r.try_get::<String, _>("alert")?)?,
    })
}

fn alert_from_row(r: &AnyRow) -> anyhow::Result<AlertRow> {
    Ok(AlertRow {
        id: r.try_get("id")?,
        source: r.try_get("source")?,
        status: r.try_get("status")?,
        fingerprint: r.try_get("fingerprint")?,
        name: r.try_get("name")?,
        labels: serde_json::from_str(&r.try_get::<String, _>("labels")?)?,
        route: r.try_get("route")?,
        group: r.try_get("group_name")?,
        action: r.try_get("action")?,
        decision: r.try_get("decision")?,
        detail: r.try_get("detail")?,
        offer_id: r.try_get("offer_id")?,
        run_id: r.try_get("run_id")?,
        received_at: r.try_get("received_at")?,
        repeats: r.try_get("repeats")?,
    })
}

impl Store {
    /// Starts a transaction of alert filing, dated now.
    pub async fn alert_tx(&self) -> anyhow::Result<AlertTx> {
        let tx = self.pool.begin().await?;
        Ok(AlertTx {
            tx,
            now: self.clock.now_ms(),
        })
    }

    pub async fn offer(&self, id: RunId) -> anyhow::Result<Option<Offer>> {
        let row = sqlx::query(&format!("{OFFER_SELECT} WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(offer_from_row).transpose()
    }

    /// Recent offers, newest first.
    pub async fn offers(&self, limit: i64) -> anyhow::Result<Vec<Offer>> {
        let rows = sqlx::query(&format!(
            "{OFFER_SELECT} ORDER BY opened_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(offer_from_row).collect()
    }

    /// Offers open or starting, oldest first.
    pub async fn live_offers(&self) -> anyhow::Result<Vec<Offer>> {
        let rows = sqlx::query(&format!(
            "{OFFER_SELECT} WHERE open_key IS NOT NULL ORDER BY opened_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(offer_from_row).collect()
    }

    /// Moves an open offer to `to` on a person's or the clock's word; `None` if it is not
    /// open any more (someone else decided first). `starting` keeps it the group's one
    /// live offer until its run is made.
    pub async fn decide_offer(
        &self,
        id: RunId,
        to: OfferState,
        by: &Actor,
    ) -> anyhow::Result<Option<Offer>> {
        let moved = sqlx::query(
            "UPDATE offers SET state = $1, decided_by = $2, decided_at = $3, \
             open_key = CASE WHEN $1 = 'starting' THEN open_key ELSE NULL END \
             WHERE id = $4 AND state = 'open'",
        )
        .bind(to.as_str())
        .bind(by.to_string())
        .bind(self.clock.now_ms())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(None);
        }
        self.offer(id).await
    }

    /// Ends a starting offer: `started` or `joined` with the run its alerts now belong to,
    /// or `failed` with why. Does nothing to an offer already ended.
    pub async fn finish_offer(
        &self,
        id: RunId,
        state: OfferState,
        run: Option<RunId>,
        message: Option<&str>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE offers SET state = $1, run_id = $2, message = $3, open_key = NULL \
             WHERE id = $4 AND state = 'starting'",
        )
        .bind(state.as_str())
        .bind(run.map(|r| r.to_string()))
        .bind(message.map(str::to_string))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        match run {
            Some(run) => {
                sqlx::query("UPDATE alerts SET run_id = $1 WHERE offer_id = $2")
                    .bind(run.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE alerts SET decision = 'failed', detail = $1 \
                     WHERE offer_id = $2 AND decision = 'started'",
                )
                .bind(message.map(str::to_string))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Recent alerts, newest first.
    pub async fn alerts(&self, f: &AlertFilter) -> anyhow::Result<Vec<AlertRow>> {
        let mut sql = String::from(
            "SELECT id, source, status, fingerprint, name, labels, route, group_name, action, \
             decision, detail, offer_id, run_id, received_at, repeats FROM alerts WHERE 1 = 1",
        );
        let mut binds: Vec<String> = Vec::new();
        for (column, value) in [
            ("run_id", f.run.map(|r| r.to_string())),
            ("route", f.route.clone()),
            ("decision", f.decision.map(|d| d.to_string())),
        ] {
            if let Some(v) = value {
                binds.push(v);
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", binds.len() + 1));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter().map(alert_from_row).collect()
    }

    /// How many distinct alerts a run has, and how many re-sends of them.
    pub async fn count_alerts(&self, run: RunId) -> anyhow::Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(repeats), 0) AS BIGINT) AS r FROM alerts \
             WHERE run_id = $1",
        )
        .bind(run.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("r")?))
    }

    /// How many firing alerts an offer has: the one that opened it and those that joined.
    pub async fn count_offer_alerts(&self, offer: RunId) -> anyhow::Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM alerts WHERE offer_id = $1 AND status = 'firing'",
        )
        .bind(offer.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The PagerDuty incident a run came from, if any: through the offer that started it
    /// (whose id is the run's) or an alert that joined it.
    pub async fn pagerduty_incident(&self, run: RunId) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(
            "SELECT incident FROM alerts WHERE (offer_id = $1 OR run_id = $1) \
             AND source = 'pagerduty' AND incident IS NOT NULL ORDER BY id LIMIT 1",
        )
        .bind(run.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("incident")).transpose()?)
    }

    /// Claims a note on a PagerDuty incident, made once: `false` if it is made already.
    /// Kept with the chat posts, PagerDuty being one more place Lifeboat writes to.
    pub async fn claim_note(&self, key: &str, run: RunId) -> anyhow::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO chat_posts (platform, post_key, run_id, posted_at) \
             VALUES ('pagerduty', $1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(run.to_string())
        .bind(self.clock.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Gives a claimed note back, for another try.
    pub async fn release_note(&self, key: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM chat_posts WHERE platform = 'pagerduty' AND post_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The alerts behind a run, if any: the first, and how many.
    pub async fn alert_tally(&self, run: RunId) -> anyhow::Result<Option<AlertTally>> {
        let first = sqlx::query(
            "SELECT source, name, labels, summary, link FROM alerts WHERE run_id = $1 \
             ORDER BY id LIMIT 1",
        )
        .bind(run.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(first) = first else {
            return Ok(None);
        };
        let labels: BTreeMap<String, String> =
            serde_json::from_str(&first.try_get::<String, _>("labels")?)?;
        let name: String = first.try_get("name")?;
        let (alerts, repeats) = self.count_alerts(run).await?;
        Ok(Some(AlertTally {
            first: AlertBrief {
                source: first.try_get("source")?,
                headline: Alert::headline_of(&name, &labels),
                name,
                summary: first.try_get("summary")?,
                link: first.try_get("link")?,
            },
            alerts,
            repeats,
        }))
    }
}

impl AlertTx {
    /// Files new alerts, many to a statement; the (source, dedupe key) of each one filed.
    /// One whose key is filed already (by an earlier batch, by another replica a moment
    /// ago, or earlier in this list) is left out.
    pub async fn insert(
        &mut self,
        filings: &[Filing<'_>],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut filed = Vec::with_capacity(filings.len());
        for chunk in filings.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO alerts (source, dedupe_key, fingerprint, status, name, labels, \
                 summary, link, incident, received_at, last_seen_at, repeats, route, group_name, \
                 action, decision, detail, offer_id, run_id) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING source, dedupe_key",
                super::values(chunk.len(), 19)
            );
            let sql = Backend::of(&self.tx).bulk(sql);
            let mut q = sqlx::query(&sql);
            for f in chunk {
                let a = f.alert;
                q = q
                    .bind(a.source.as_str())
                    .bind(a.dedupe_key.clone())
                    .bind(a.fingerprint.clone())
                    .bind(a.status.as_str().to_string())
                    .bind(a.name.clone())
                    .bind(serde_json::to_string(&a.labels)?)
                    .bind(a.summary.clone())
                    .bind(a.link.clone())
                    .bind(a.incident.clone())
                    .bind(self.now)
                    .bind(self.now)
                    .bind(0i64);
                q = bind_decision(q, f);
            }
            for r in q.fetch_all(&mut *self.tx).await? {
                filed.push((r.try_get("source")?, r.try_get("dedupe_key")?));
            }
        }
        Ok(filed)
    }

    /// The rows and decisions of those of `alerts` filed before, by (source, dedupe key).
    pub async fn filed(
        &mut self,
        alerts: &[&Alert],
    ) -> anyhow::Result<HashMap<(String, String), (i64, AlertDecision)>> {
        let mut found = HashMap::new();
        for chunk in alerts.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT id, source, dedupe_key, decision FROM alerts WHERE dedupe_key IN ({})",
                holes(1, chunk.len())
            );
            let sql = Backend::of(&self.tx).bulk(sql);
            let mut q = sqlx::query(&sql);
            for a in chunk {
                q = q.bind(a.dedupe_key.clone());
            }
            for r in q.fetch_all(&mut *self.tx).await? {
                let decision: Option<String> = r.try_get("decision")?;
                found.insert(
                    (r.try_get("source")?, r.try_get("dedupe_key")?),
                    (
                        r.try_get("id")?,
                        decision
                            .as_deref()
                            .unwrap_or("held")
                            .parse()
                            .map_err(anyhow::Error::msg)?,
                    ),
                );
            }
        }
        Ok(found)
    }

    /// Counts re-sends: `n` more of row `id`, for each `(id, n)`.
    pub async fn add_repeats(&mut self, repeats: &HashMap<i64, i64>) -> anyhow::Result<()> {
        let ones: Vec<i64> = repeats
            .iter()
            .filter(|(_, n)| **n == 1)
            .map(|(id, _)| *id)
            .collect();
        for chunk in ones.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "UPDATE alerts SET repeats = repeats + 1, last_seen_at = $1 WHERE id IN ({})",
                holes(2, chunk.len())
            );
            let sql = Backend::of(&self.tx).bulk(sql);
            let mut q = sqlx::query(&sql).bind(self.now);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *self.tx).await?;
        }
        for (id, n) in repeats.iter().filter(|(_, n)| **n > 1) {
            sqlx::query(
                "UPDATE alerts SET repeats = repeats + $1, last_seen_at = $2 WHERE id = $3",
            )
            .bind(*n)
            .bind(self.now)
            .bind(*id)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// The row and decision an alert was filed with before.
    pub async fn previous(&mut self, a: &Alert) -> anyhow::Result<Option<(i64, AlertDecision)>> {
        let row =
            sqlx::query("SELECT id, decision FROM alerts WHERE source = $1 AND dedupe_key = $2")
                .bind(a.source.as_str())
                .bind(&a.dedupe_key)
                .fetch_optional(&mut *self.tx)
                .await?;
        row.map(|r| {
            let decision: Option<String> = r.try_get("decision")?;
            Ok((
                r.try_get("id")?,
                decision
                    .as_deref()
                    .unwrap_or("held")
                    .parse()
                    .map_err(anyhow::Error::msg)?,
            ))
        })
        .transpose()
    }

    /// Files a held alert's new decision, counting the re-send that brought it.
    pub async fn redecide(&mut self, id: i64, f: &Filing<'_>) -> anyhow::Result<()> {
        let q = sqlx::query(
            "UPDATE alerts SET repeats = repeats + 1, last_seen_at = $1, route = $2, \
             group_name = $3, action = $4, decision = $5, detail = $6, offer_id = $7, run_id = $8 \
             WHERE id = $9",
        )
        .bind(self.now);
        bind_decision(q, f).bind(id).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// The group's active run of `action`, if any (dry runs aside).
    pub async fn active_run(
        &mut self,
        group: &str,
        action: Action,
    ) -> anyhow::Result<Option<RunId>> {
        let row = sqlx::query("SELECT id FROM runs WHERE active_key = $1")
            .bind(active_key(group, action, false))
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| Ok(RunId::from_str(&r.try_get::<String, _>("id")?)?))
            .transpose()
    }

    /// The group's open or starting offer of `action`, if any.
    pub async fn live_offer(
        &mut self,
        group: &str,
        action: Action,
    ) -> anyhow::Result<Option<RunId>> {
        let row = sqlx::query("SELECT id FROM offers WHERE open_key = $1")
            .bind(crate::domain::offer::open_key(group, action))
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| Ok(RunId::from_str(&r.try_get::<String, _>("id")?)?))
            .transpose()
    }

    /// When this route last started a run for this group, or a person said no to one.
    pub async fn last_start(&mut self, route: &str, group: &str) -> anyhow::Result<Option<Millis>> {
        let row = sqlx::query(
            "SELECT MAX(decided_at) AS at FROM offers WHERE route = $1 AND group_name = $2 \
             AND state IN ('started', 'vetoed', 'rejected')",
        )
        .bind(route)
        .bind(group)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(row.try_get("at")?)
    }

    /// Opens an offer; `false` if the group has a live offer of that action already.
    pub async fn open_offer(&mut self, o: &Offer) -> anyhow::Result<bool> {
        let live = !o.state.is_final();
        let inserted = sqlx::query(
            "INSERT INTO offers (id, route, group_name, action, mode, state, open_key, opened_at, \
             deadline, decided_by, decided_at, run_id, message, alert) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT DO NOTHING",
        )
        .bind(o.id.to_string())
        .bind(&o.route)
        .bind(&o.group)
        .bind(o.action.as_str())
        .bind(o.mode.as_str())
        .bind(o.state.as_str())
        .bind(live.then(|| crate::domain::offer::open_key(&o.group, o.action)))
        .bind(o.opened_at)
        .bind(o.deadline)
        .bind(o.decided_by.as_ref().map(|a| a.to_string()))
        .bind(o.decided_at)
        .bind(o.run_id.map(|r| r.to_string()))
        .bind(o.message.clone())
        .bind(serde_json::to_string(&o.alert)?)
        .execute(&mut *self.tx)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Open offers that this alert (by source and fingerprint) is firing in.
    pub async fn offers_firing(&mut self, a: &Alert) -> anyhow::Result<Vec<RunId>> {
        let rows = sqlx::query(
            "SELECT DISTINCT a.offer_id AS id FROM alerts a JOIN offers o ON o.id = a.offer_id \
             WHERE a.source = $1 AND a.fingerprint = $2 AND a.status = 'firing' AND o.state = 'open'",
        )
        .bind(a.source.as_str())
        .bind(&a.fingerprint)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| Ok(RunId::from_str(&r.try_get::<String, _>("id")?)?))
            .collect()
    }

    /// How many of an offer's alerts still fire besides `resolving`: those with no
    /// resolve filed after them.
    pub async fn still_firing_besides(
        &mut self,
        offer: RunId,
        resolving: &Alert,
    ) -> anyhow::Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM alerts f WHERE f.offer_id = $1 AND f.status = 'firing' \
             AND NOT (f.source = $2 AND f.fingerprint = $3) \
             AND NOT EXISTS (SELECT 1 FROM alerts r WHERE r.offer_id = $1 AND r.status = 'resolved' \
             AND r.source = f.source AND r.fingerprint = f.fingerprint AND r.id > f.id)",
        )
        .bind(offer.to_string())
        .bind(resolving.source.as_str())
        .bind(&resolving.fingerprint)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Withdraws an open offer, in its route's name; `false` if it is not open.
    pub async fn withdraw(&mut self, offer: RunId) -> anyhow::Result<bool> {
        let moved = sqlx::query(
            "UPDATE offers SET state = 'withdrawn', open_key = NULL, decided_by = 'alert:' || route, \
             decided_at = $1 WHERE id = $2 AND state = 'open'",
        )
        .bind(self.now)
        .bind(offer.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    pub async fn commit(self) -> anyhow::Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Binds a filing's decision: route, group, action, decision, detail, offer and run, in
/// that order, as the alerts table's insert and update both take them.
fn bind_decision<'q>(q: AnyQuery<'q>, f: &Filing<'_>) -> AnyQuery<'q> {
    q.bind(f.route.clone())
        .bind(f.group.clone())
        .bind(f.action.map(|x| x.to_string()))
        .bind(f.decision.as_str())
        .bind(f.detail.clone())
        .bind(f.offer.map(|o| o.to_string()))
        .bind(f.run.map(|r| r.to_string()))
}
