//! How the pages write times, durations and states. A state is always a word with a
//! symbol; its colour only repeats what the word says.

use maud::{Markup, html};

use crate::clock::{Millis, rfc3339, short_duration};

/// A time, as a `<time>` the reader's locale need not parse: UTC, to the second.
pub fn at(ms: Millis) -> Markup {
    let full = rfc3339(ms);
    let shown = full.get(..19).unwrap_or(&full).replace('T', " ");
    html! { time datetime=(full) { (shown) " UTC" } }
}

pub fn maybe_at(ms: Option<Millis>) -> Markup {
    match ms {
        Some(ms) => at(ms),
        None => html! { "—" },
    }
}

/// How long from `start` to `end` (or to `now`, still going).
pub fn took(start: Option<Millis>, end: Option<Millis>, now: Millis) -> String {
    match (start, end) {
        (Some(s), Some(e)) => short_duration(e - s),
        (Some(s), None) => format!("{} so far", short_duration(now - s)),
        _ => "—".to_string(),
    }
}

/// Time left, as the page's script counts it down: "42s", "59m07s".
pub fn left(ms: Millis) -> String {
    let s = (ms.max(0) + 999) / 1000;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The symbol that goes with a state's word.
fn symbol(state: &str) -> &'static str {
    match state {
        "succeeded" | "started" | "approved" => "✓",
        "failed" | "rejected" => "✗",
        "cancelled" | "vetoed" | "skipped" | "joined" | "expired" => "⊘",
        "running" | "dispatched" | "starting" => "▶",
        "retrying" => "↻",
        "awaiting_approval" | "ready" | "open" => "‖",
        _ => "•",
    }
}

/// A state as a badge: symbol and word, with the word's class for its colour.
pub fn state(word: &str) -> Markup {
    html! {
        span class=(format!("state state-{word}")) {
            span aria-hidden="true" { (symbol(word)) " " }
            (word.replace('_', " "))
        }
    }
}

/// A name as one URL path segment: every byte but the unreserved ones percent-encoded.
pub fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
