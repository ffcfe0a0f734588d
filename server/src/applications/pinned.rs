//! The cache of pinned service revisions that [`crate::state::AppState`] holds. A leaf: it knows
//! nothing of the state, so the state can hold it; reading through it is in [`super::service`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::rules::FormValidator;
use crate::content::ServiceContent;

/// A service revision as applications use it: parsed content and its compiled form schema.
/// Revisions never change, so they are cached by (service, revision).
pub struct Pinned {
    pub content: ServiceContent,
    pub validator: FormValidator,
}

/// Process-wide cache of [`Pinned`] revisions (bounded; cleared when full).
#[derive(Default)]
pub struct PinnedCache(pub(super) Mutex<HashMap<(Uuid, i64), Arc<Pinned>>>);

impl std::fmt::Debug for PinnedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedCache")
    }
}

pub(super) const PINNED_CACHE_MAX: usize = 512;
