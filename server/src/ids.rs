//! Typed IDs, so a department ID can never be passed where a tenant ID is expected.

use std::fmt;

use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered ID (UUIDv7), so keyset pagination by ID follows creation order.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for sea_orm::Value {
            fn from(id: $name) -> sea_orm::Value {
                id.0.into()
            }
        }
    )*};
}

typed_id!(
    /// A municipality.
    TenantId,
    /// A department of a tenant.
    DepartmentId,
    /// A staff account of a tenant.
    StaffUserId,
    /// A platform administrator.
    PlatformAdminId,
    /// A marketplace template.
    TemplateId,
    /// A published version of a template.
    TemplateVersionId,
    /// A tenant's service (usually a fork of a template version).
    ServiceId,
    /// A change a forking tenant proposes back to a template.
    ProposalId,
    /// A submitted application.
    ApplicationId,
    /// A citizen's application before submission.
    DraftId,
    /// An appointment (or a hold on one).
    BookingId,
    /// A file attached to a draft or an application.
    AttachmentId,
    /// One attempt to pay an application's fees.
    PaymentId,
);
