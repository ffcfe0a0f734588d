//! Rate limits shared by every replica (issue 22, point 1): one row per limited key (a client
//! IP, an account, a contact address, under the limit's scope), counting hits in a fixed window
//! that starts at the key's first hit. Keys are SHA-256 digests, so no IP address or email is
//! stored in plain. Not tenant data (a client IP spans tenants): no `tenant_id`, no row-level
//! security; the request role may read and write it.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RateLimits {
    Table,
    Key,
    WindowStart,
    Hits,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RateLimits::Table)
                    // Hex SHA-256 of scope and key.
                    .col(string_len(RateLimits::Key, 64).primary_key())
                    // Unix milliseconds: the same integer arithmetic on both databases.
                    .col(big_integer(RateLimits::WindowStart))
                    .col(integer(RateLimits::Hits))
                    .take(),
            )
            .await?;
        postgres::grant(manager, "rate_limits", "SELECT, INSERT, UPDATE, DELETE").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RateLimits::Table).to_owned())
            .await
    }
}
