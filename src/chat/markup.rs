//! How text is marked up where it is shown: each platform's mentions, links and channel
//! references, and plain text for the terminal and the API. The card and the notices are
//! written through this, so they hold no platform's markup of their own.

use crate::domain::{Actor, Platform};

/// How text is marked up where it is shown.
pub trait Markup: Send + Sync {
    /// Whose people it can mention; `None` for plain text (the terminal, the API).
    fn platform(&self) -> Option<Platform>;
    /// A mention of one of the platform's users, by id.
    fn mention(&self, user: &str) -> String;
    /// `text` (already escaped) linking to `url` (as given: the platform keeps it whole).
    fn link(&self, url: &str, text: &str) -> String;
    /// A reference to a channel, by id.
    fn channel(&self, id: &str) -> String;
    /// Text from elsewhere (a reason, an alert, an agent's message) made inert: it shows
    /// as written, and mentions or links no one.
    fn escape(&self, text: &str) -> String;
}

/// Text with no platform's markup.
pub struct Plain;

impl Markup for Plain {
    fn platform(&self) -> Option<Platform> {
        None
    }
    fn mention(&self, user: &str) -> String {
        format!("`{user}`")
    }
    fn link(&self, url: &str, text: &str) -> String {
        format!("{text} ({url})")
    }
    fn channel(&self, id: &str) -> String {
        format!("#{id}")
    }
    fn escape(&self, text: &str) -> String {
        text.to_string()
    }
}

/// A Markdown link; a `)`, `<`, `>` or space in the URL is percent-encoded so that it
/// cannot end the link early.
pub fn markdown_link(url: &str, text: &str) -> String {
    let url = url
        .replace(' ', "%20")
        .replace(')', "%29")
        .replace('<', "%3C")
        .replace('>', "%3E");
    format!("[{text}]({url})")
}

/// How an actor is named on a platform: a mention there for one of its people, the
/// actor's name otherwise.
pub fn mention(actor: &Actor, on: &dyn Markup) -> String {
    match actor {
        Actor::Chat { platform, user } if Some(*platform) == on.platform() => on.mention(user),
        other => format!("`{other}`"),
    }
}

/// `text` linking to `url` in the platform's markup; `text` alone without one.
pub fn link(url: Option<&str>, text: &str, on: &dyn Markup) -> String {
    match url {
        Some(u) => on.link(u, &on.escape(text)),
        None => format!("`{}`", on.escape(text)),
    }
}
