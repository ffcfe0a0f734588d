//! "My applications" in the portal lists a signed-in citizen's drafts by issuer and subject, as
//! applications already are (`applications_citizen_idx`).

use sea_orm_migration::prelude::*;

use crate::indexes;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "drafts_citizen_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::create_all(
            manager,
            "drafts",
            &[(INDEX, &["tenant_id", "citizen_issuer", "citizen_subject"])],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(Alias::new("drafts"))
                    .to_owned(),
            )
            .await
    }
}
