//! Chat: `/dr` in each chat platform, and each run's live card in its incident channel.
//!
//! Each platform is a component (`platform::ChatPlatform`, registered in `platforms`): its
//! folder holds its settings, its inbound paths, its `Outbound` and its `markup`, and
//! nothing outside it matches on which platform it is. Inbound, each platform verifies a
//! request, translates it into the shared
//! grammar (`crate::commands`) or a button press, and hands it to `handle`, which checks
//! the group's `allow` (`access`) and acts through the orchestrator. Outbound, the
//! `notifier` reads run events and keeps one card per run per platform (`card`), posted
//! once and edited in place (`card_slot`), through the platform's `Outbound`; the `offer_notifier` does
//! the same for the offers alerts open (`offer_card`), in each group's standing channel.

pub mod access;
pub mod card;
pub mod card_slot;
pub mod context;
pub mod discord;
pub mod evacuation_card;
pub mod evacuation_notifier;
pub mod handle;
pub mod launch;
pub mod markup;
pub mod mattermost;
pub mod notifier;
pub mod offer_card;
pub mod offer_notifier;
pub mod outbound;
pub mod people;
pub mod platform;
pub mod reply;
pub mod slack;
pub mod text;

pub use context::ChatContext;
pub use markup::{Markup, Plain};
pub use people::{Membership, Requester, Roles};
pub use platform::ChatPlatform;
pub use reply::Reply;

/// The chat platforms Lifeboat speaks, one line each.
pub fn platforms() -> Vec<&'static dyn ChatPlatform> {
    vec![&slack::SLACK, &discord::DISCORD, &mattermost::MATTERMOST]
}

/// `word` with its first letter a capital, as a sentence starts.
pub(crate) fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
