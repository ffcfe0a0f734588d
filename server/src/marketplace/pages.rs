//! Marketplace pages remembered for a few seconds ([`crate::memo`]): the public marketplace is
//! the platform's most visited list, and templates and versions change only by authors. Every
//! change of templates or versions made here forgets them (`graphql::forget_marketplace_pages`).

use super::service::{TemplateFilter, TemplatePage, Viewer};
use crate::graphql::connection::PageArgs;

/// Keyed by viewer, filter, paging arguments and whether versions were asked for.
pub type MarketplacePages =
    crate::memo::Memo<(), (Viewer, TemplateFilter, PageArgs, bool), TemplatePage>;
