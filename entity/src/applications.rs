//! A submitted application, pinned to the service revision it was submitted under.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub service_id: Uuid,
    pub service_slug: String,
    /// The service revision in force at submission; how the application reads, forever.
    pub revision: i64,
    /// Per-tenant submission sequence: the cursor of the back-office export.
    pub seq: i64,
    /// `<TENANT>-<YEAR>-<6 digits>`, gap-free per tenant and year.
    pub reference: String,
    /// A state key of the pinned revision's workflow. Deliberately a string, not an enum like the
    /// other state columns (see `states`): each service's workflow defines its own states, so the
    /// set is open; the server checks keys against the pinned workflow.
    pub state: String,
    /// The submitted form data; NULL once erased.
    pub data: Option<Json>,
    /// The fees computed at submission: `[{key, label, amountCents}]`.
    pub fees: Json,
    pub citizen_issuer: Option<String>,
    pub citizen_subject: Option<String>,
    pub access_hash: Option<String>,
    pub contact_email: Option<String>,
    /// The eID assurance level of the citizen's sign-in at submission (`low`, `substantial`,
    /// `high`); NULL for anonymous applicants or when the identity provider stated none.
    pub citizen_assurance: Option<String>,
    /// The citizen's postbox handle from the sign-in (BundID `legacyPostkorbHandle`): where
    /// replies can go. NULL when none was given; cleared on erasure.
    pub citizen_postbox: Option<String>,
    /// Lower-cased reference and text values, for staff search.
    pub search_text: String,
    pub submitted_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub decided_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    pub erased_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
