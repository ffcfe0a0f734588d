//! eID assurance with each application: the level the citizen's sign-in had at submission
//! (`low`, `substantial`, `high`; NULL for anonymous or unstated) and the citizen's postbox handle
//! (BundID `legacyPostkorbHandle`), kept as the channel for replies and the hand-over.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Applications {
    Table,
    CitizenAssurance,
    CitizenPostbox,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            string_null(Applications::CitizenAssurance),
            string_null(Applications::CitizenPostbox),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Applications::Table)
                        .add_column(column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Applications::CitizenAssurance, Applications::CitizenPostbox] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Applications::Table)
                        .drop_column(column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
