//! Mattermost mentions people and channels by name (`@alice`, `~dr-petstore`), while
//! Lifeboat knows them by id: the names each request and lookup tells it, kept here.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// Names kept before the map starts again: far more than any team's people and channels.
const MOST: usize = 10_000;

static NAMES: LazyLock<Mutex<HashMap<String, String>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Remembers that `id` (a user's or a channel's) is called `name`.
pub fn remember(id: &str, name: &str) {
    if id.is_empty() || name.is_empty() {
        return;
    }
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if names.len() >= MOST && !names.contains_key(id) {
        names.clear();
    }
    names.insert(id.to_string(), name.to_string());
}

pub fn of(id: &str) -> Option<String> {
    NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
}
