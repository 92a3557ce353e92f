//! What a chat platform is started with, and what it hands back: the routes it serves, the
//! tasks that keep its cards, and its long-lived connections.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::context::ChatContext;
use super::evacuation_notifier::EvacuationNotifier;
use super::notifier::Notifier;
use super::offer_notifier::OfferNotifier;
use super::outbound::Outbound;
use crate::bus::{self, Bus};
use crate::config::Settings;

/// What a platform starts with.
pub struct Launch<'a> {
    pub settings: &'a Settings,
    /// Where a platform reads the settings `settings.chat` does not hold.
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    pub chat: ChatContext,
    pub bus: Arc<dyn Bus>,
    /// This process's name, which claims cards.
    pub instance: String,
}

impl Launch<'_> {
    /// The platform's settings: as `settings.chat` holds them, or else from the
    /// environment by `from_env`.
    pub fn settings_of<T: Clone + Send + Sync + 'static>(
        &self,
        from_env: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<Option<T>> {
        match self.settings.chat.get::<T>() {
            Some(s) => Ok(Some(s.clone())),
            None => from_env(&|name| self.env(name)),
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    /// The run and offer notifiers that keep cards on `out`, subscribed before the engine
    /// publishes anything.
    pub async fn notifiers(&self, out: Arc<dyn Outbound>) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let group = format!("notifier.{}", out.platform());
        let events = self.bus.subscribe(bus::EVENTS_TOPIC, &group).await?;
        let notifier = Notifier::new(self.chat.clone(), out.clone(), self.instance.clone());
        let offers = OfferNotifier::new(self.chat.clone(), out.clone(), self.instance.clone());
        let evacuations = EvacuationNotifier::new(self.chat.clone(), out, self.instance.clone());
        Ok(vec![
            tokio::spawn(notifier.run(events)),
            tokio::spawn(offers.run()),
            tokio::spawn(evacuations.run()),
        ])
    }
}

/// A started platform.
pub struct Running {
    /// Its HTTP routes, with their state.
    pub routes: axum::Router,
    pub tasks: Vec<JoinHandle<()>>,
    /// Connections it keeps (Socket Mode, the gateway): closed before the rest stops.
    pub connections: Vec<(CancellationToken, JoinHandle<()>)>,
}

/// A JSON error answer, as the rest of the HTTP surface gives them.
pub fn refuse(
    status: axum::http::StatusCode,
    message: impl Into<String>,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
}
