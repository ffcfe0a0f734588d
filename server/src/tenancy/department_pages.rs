//! Pages of a tenant's department list, remembered for a few seconds ([`crate::memo`]): portal
//! and staff pages show the departments on every visit, while they change only through
//! administration. Every department change made here forgets the tenant's pages.

use entity::departments;

use crate::graphql::connection::{Page, PageArgs};
use crate::ids::TenantId;
use crate::memo::Memo;

/// A tenant's department pages by their paging arguments.
pub type DepartmentPages = Memo<TenantId, PageArgs, Page<departments::Model>>;
