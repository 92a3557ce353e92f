//! What chat handlers and the notifier work with.

use crate::alerts::Offers;
use crate::clock::Clock;
use crate::orchestrator::Orchestrator;
use crate::store::Store;
use crate::workflow::Catalog;

#[derive(Clone)]
pub struct ChatContext {
    pub orchestrator: Orchestrator,
    /// The chat tables (cards, posts, origins, refusals) and the leases `locks` lists.
    pub store: Store,
    pub clock: Clock,
    /// The runs alerts proposed: their buttons answer through here.
    pub offers: Offers,
}

impl ChatContext {
    pub fn catalog(&self) -> &Catalog {
        self.orchestrator.catalog()
    }
}
