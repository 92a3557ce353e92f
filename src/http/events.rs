//! `GET /api/v1/events`: run and stage lifecycle events as Server-Sent Events, each the
//! `lifeboat.events` JSON with the event's id as the SSE id. `?run=` and `?group=` filter;
//! a client that reconnects with `Last-Event-ID` is sent what it missed, or a `reset` event
//! when this process no longer keeps that far back (read the state again, then follow).
//! `?since=MS` (a Unix time in milliseconds) first sends the kept events stamped since
//! then: a page rendered at that time follows from where it was drawn.

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::feed::Since;
use super::{ApiError, AppState};
use crate::bus::RunEvent;
use crate::domain::RunId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    run: Option<String>,
    group: Option<String>,
    since: Option<i64>,
}

struct Filter {
    run: Option<RunId>,
    group: Option<String>,
}

impl Filter {
    fn wants(&self, e: &RunEvent) -> bool {
        self.run.is_none_or(|r| r == e.run_id) && self.group.as_ref().is_none_or(|g| *g == e.group)
    }
}

fn sse(e: &RunEvent) -> Event {
    let event = Event::default().id(e.id.clone());
    match serde_json::to_string(e) {
        Ok(json) => event.data(json),
        // A RunEvent always serializes; were it not to, the client still hears of it.
        Err(_) => event.event("reset").data("{}"),
    }
}

fn reset(why: &str) -> Event {
    Event::default()
        .event("reset")
        .data(serde_json::json!({ "reason": why }).to_string())
}

pub async fn events(
    State(state): State<AppState>,
    _viewer: super::viewer::Viewer,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let run = match q.run.as_deref() {
        Some(raw) => Some(
            RunId::from_str(raw)
                .map_err(|_| ApiError::bad_request(format!("`{raw}` is not a run id")))?,
        ),
        None => None,
    };
    let filter = Filter {
        run,
        group: q.group,
    };
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let feed = state.feed.clone();
    let live = feed.subscribe();
    let (missed, lost): (Vec<Arc<RunEvent>>, bool) = match last {
        None => (
            q.since.map(|at| feed.since_time(at)).unwrap_or_default(),
            false,
        ),
        Some(last) => match feed.since(&last) {
            Since::Found(events) => (events, false),
            Since::Lost => (Vec::new(), true),
        },
    };
    let stream = follow(live, filter, missed, lost, state.closing.clone());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The events a client is sent: what it missed (or a reset), then each live one that
/// passes its filter, until it goes away or the service stops.
fn follow(
    mut live: tokio::sync::broadcast::Receiver<Arc<RunEvent>>,
    filter: Filter,
    missed: Vec<Arc<RunEvent>>,
    lost: bool,
    closing: tokio_util::sync::CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream(move |tx| async move {
        if lost {
            let why =
                "the event named in Last-Event-ID is no longer kept here: read the state again";
            if tx.send(reset(why)).await.is_err() {
                return;
            }
        }
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for e in &missed {
            seen.insert(e.id.clone());
            if filter.wants(e) && tx.send(sse(e)).await.is_err() {
                return;
            }
        }
        loop {
            // A client that went away ends its stream here, even if no event for it
            // ever comes again.
            let next = tokio::select! {
                _ = closing.cancelled() => return,
                _ = tx.closed() => return,
                next = live.recv() => next,
            };
            match next {
                Ok(e) => {
                    // What came in between subscribing and reading the kept events.
                    if seen.remove(&e.id) {
                        continue;
                    }
                    if filter.wants(&e) && tx.send(sse(&e)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let why = format!("this client fell {n} events behind: read the state again");
                    if tx.send(reset(&why)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// A stream fed by a task: the task ends when the client goes away (the send fails).
fn async_stream<F, Fut>(produce: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::feed::Feed;

    /// A client that leaves a stream no event will ever pass (a finished run's page) is
    /// not followed for ever.
    #[tokio::test]
    async fn a_client_that_goes_away_is_not_followed() {
        let feed = Feed::new();
        let filter = Filter {
            run: Some(RunId::new()),
            group: None,
        };
        let stream = follow(
            feed.subscribe(),
            filter,
            Vec::new(),
            false,
            tokio_util::sync::CancellationToken::new(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(feed.followers(), 1);
        drop(stream);
        for _ in 0..100 {
            if feed.followers() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the stream's task still follows the feed");
    }
}
