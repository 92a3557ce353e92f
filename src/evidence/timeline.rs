//! A run's timeline as SVG, from its audit trail: one bar per attempt, the backoff between
//! attempts, the waits for a person at a gate, and the critical path marked. Every bar has
//! a title that says what it is, so the picture never relies on colour alone.

use maud::{Markup, html};

use crate::clock::{Millis, short_duration};
use crate::domain::{Audit, EventKind, Run, StageState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// An attempt, by number, and how it ended (`None`: still going).
    Attempt(u32, Option<StageState>),
    Backoff,
    Approval,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    pub stage: usize,
    pub span: Span,
    pub start: Millis,
    /// `None`: still going.
    pub end: Option<Millis>,
}

#[derive(Default)]
struct Open {
    attempt: Option<(u32, Millis)>,
    backoff: Option<Millis>,
    approval: Option<Millis>,
}

/// Ends a span that `start` says is open (none: nothing to end).
fn close(
    bars: &mut Vec<Bar>,
    stage: usize,
    span: Span,
    start: Option<Millis>,
    end: Option<Millis>,
) {
    if let Some(start) = start {
        bars.push(Bar {
            stage,
            span,
            start,
            end,
        });
    }
}

/// The bars of `run`, worked out from its audit records in order.
pub fn bars(run: &Run, audit: &[Audit]) -> Vec<Bar> {
    let mut open: Vec<Open> = (0..run.plan.len()).map(|_| Open::default()).collect();
    let mut bars = Vec::new();
    for a in audit {
        let Some(i) = a.stage.as_deref().and_then(|s| run.stage_index(s)) else {
            continue;
        };
        let o = &mut open[i];
        let at = Some(a.at);
        match a.kind {
            EventKind::Stage(StageState::Dispatched | StageState::Running) => {
                close(&mut bars, i, Span::Backoff, o.backoff.take(), at);
                if o.attempt.is_none() {
                    o.attempt = Some((a.attempt.unwrap_or(1), a.at));
                }
            }
            EventKind::Stage(s @ StageState::Retrying) => {
                if let Some((n, start)) = o.attempt.take() {
                    close(&mut bars, i, Span::Attempt(n, Some(s)), Some(start), at);
                }
                o.backoff = Some(a.at);
            }
            EventKind::Stage(s) if s.is_final() => {
                if let Some((n, start)) = o.attempt.take() {
                    close(&mut bars, i, Span::Attempt(n, Some(s)), Some(start), at);
                }
                close(&mut bars, i, Span::Backoff, o.backoff.take(), at);
            }
            EventKind::ApprovalRequested => o.approval = o.approval.or(Some(a.at)),
            EventKind::StageApproved | EventKind::StageRejected => {
                close(&mut bars, i, Span::Approval, o.approval.take(), at);
            }
            _ => {}
        }
    }
    // What is still open ends with the run, or goes on.
    let end = run.finished_at;
    for (i, o) in open.into_iter().enumerate() {
        if let Some((n, start)) = o.attempt {
            close(&mut bars, i, Span::Attempt(n, None), Some(start), end);
        }
        close(&mut bars, i, Span::Backoff, o.backoff, end);
        close(&mut bars, i, Span::Approval, o.approval, end);
    }
    bars.sort_by_key(|b| (b.stage, b.start));
    bars
}

const WIDTH: f64 = 880.0;
const LABEL: f64 = 200.0;
const ROW: f64 = 26.0;
const TOP: f64 = 22.0;

/// The chart: a row per stage, time left to right from the run's creation.
pub fn chart(run: &Run, bars: &[Bar], critical: &[String], now: Millis) -> Markup {
    let start = run.created_at;
    let end = run
        .finished_at
        .unwrap_or(now)
        .max(bars.iter().filter_map(|b| b.end).max().unwrap_or(start))
        .max(start + 1);
    let span = (end - start) as f64;
    let x = |t: Millis| LABEL + (t - start) as f64 / span * (WIDTH - LABEL - 10.0);
    let height = TOP + ROW * run.plan.len() as f64 + 8.0;
    let ticks = 4;
    html! {
        figure.timeline {
            svg viewBox=(format!("0 0 {WIDTH} {height}")) width="100%" role="img"
                aria-labelledby="timeline-title" xmlns="http://www.w3.org/2000/svg" {
                title #timeline-title { "Timeline of run " (run.id) ": one bar per attempt, hatched backoff, dotted waits for approval" }
                defs {
                    pattern #hatch patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)" {
                        line x1="0" y1="0" x2="0" y2="6" stroke="currentColor" stroke-width="2" {}
                    }
                }
                @for k in 0..=ticks {
                    @let t = start + (span as i64) * k / ticks;
                    @let tx = x(t);
                    line.tick x1=(tx) y1=(TOP - 4.0) x2=(tx) y2=(height - 8.0) {}
                    // The last label ends at the edge rather than running off it.
                    text.tick x=(tx) y="12" text-anchor=(if k == ticks { "end" } else { "middle" }) { "+" (short_duration(t - start)) }
                }
                @for (i, stage) in run.plan.iter().enumerate() {
                    @let y = TOP + ROW * i as f64;
                    @let on_path = critical.contains(&stage.name);
                    text.label x="4" y=(y + ROW * 0.65) {
                        @if on_path { "★ " }
                        (stage.name)
                    }
                }
                @for b in bars {
                    @let y = TOP + ROW * b.stage as f64 + 4.0;
                    @let x0 = x(b.start);
                    @let x1 = x(b.end.unwrap_or(end));
                    @let w = (x1 - x0).max(2.0);
                    @let on_path = critical.contains(&run.plan[b.stage].name);
                    @match b.span {
                        Span::Attempt(n, outcome) => {
                            rect class=(format!("bar attempt {}{}", outcome.map_or("going", |s| s.as_str()), if on_path { " critical" } else { "" }))
                                x=(x0) y=(y) width=(w) height=(ROW - 8.0) rx="3" {
                                title { (run.plan[b.stage].name) ", attempt " (n) ": "
                                    (outcome.map_or("still going".to_string(), |s| s.as_str().to_string()))
                                    ", " (short_duration(b.end.unwrap_or(end) - b.start)) }
                            }
                        }
                        Span::Backoff => {
                            rect.bar.backoff x=(x0) y=(y + 5.0) width=(w) height=(ROW - 18.0) fill="url(#hatch)" {
                                title { (run.plan[b.stage].name) ": backoff before the next attempt, " (short_duration(b.end.unwrap_or(end) - b.start)) }
                            }
                        }
                        Span::Approval => {
                            rect.bar.approval x=(x0) y=(y + 2.0) width=(w) height=(ROW - 12.0) {
                                title { (run.plan[b.stage].name) ": waiting for approval, " (short_duration(b.end.unwrap_or(end) - b.start)) }
                            }
                        }
                    }
                }
            }
            figcaption {
                "Bars are attempts (✓ succeeded, ✗ failed, ↻ retried); hatched: backoff; outlined: waiting for approval."
                @if !critical.is_empty() { " ★ marks the critical path: " (critical.join(" → ")) "." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, fixture};

    fn audit(at: Millis, kind: EventKind, stage: &str, attempt: Option<u32>) -> Audit {
        Audit {
            at,
            actor: Actor::System,
            kind,
            stage: Some(stage.to_string()),
            attempt,
            message: None,
        }
    }

    #[test]
    fn attempts_backoff_and_approval_waits_become_bars() {
        let mut run = fixture::run();
        run.created_at = 0;
        run.finished_at = None;
        let first = run.plan[0].name.clone();
        let second = run.plan[1].name.clone();
        let trail = [
            audit(
                10,
                EventKind::Stage(StageState::Dispatched),
                &first,
                Some(1),
            ),
            audit(12, EventKind::Stage(StageState::Running), &first, Some(1)),
            audit(20, EventKind::Stage(StageState::Retrying), &first, Some(1)),
            audit(
                40,
                EventKind::Stage(StageState::Dispatched),
                &first,
                Some(2),
            ),
            audit(50, EventKind::Stage(StageState::Succeeded), &first, Some(2)),
            audit(50, EventKind::ApprovalRequested, &second, None),
            audit(80, EventKind::StageApproved, &second, None),
            audit(
                81,
                EventKind::Stage(StageState::Dispatched),
                &second,
                Some(1),
            ),
        ];
        let bars = bars(&run, &trail);
        let spans: Vec<_> = bars
            .iter()
            .map(|b| (b.stage, b.span, b.start, b.end))
            .collect();
        assert_eq!(
            spans,
            [
                (
                    0,
                    Span::Attempt(1, Some(StageState::Retrying)),
                    10,
                    Some(20)
                ),
                (0, Span::Backoff, 20, Some(40)),
                (
                    0,
                    Span::Attempt(2, Some(StageState::Succeeded)),
                    40,
                    Some(50)
                ),
                (1, Span::Approval, 50, Some(80)),
                (1, Span::Attempt(1, None), 81, None),
            ]
        );
        let svg = chart(&run, &bars, std::slice::from_ref(&first), 100).into_string();
        assert!(svg.contains(&format!("★ {first}")), "{svg}");
        assert!(svg.contains("attempt 2: succeeded"), "{svg}");
        assert!(svg.contains("waiting for approval"), "{svg}");
    }
}
