//! Index builders shared by migrations (the statements they build are what the migrations
//! always ran; changing them would change history), and dropping a migration's tables on `down`.

use sea_orm_migration::prelude::*;

/// A unique index over `cols`, for `Table::create().index(..)`.
pub(crate) fn unique(name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).unique();
    for c in cols {
        idx.col(Alias::new(*c));
    }
    idx
}

/// Creates plain indexes `(name, columns)` on `table`.
pub(crate) async fn create_all(
    manager: &SchemaManager<'_>,
    table: &str,
    indexes: &[(&str, &[&'static str])],
) -> Result<(), DbErr> {
    for (name, cols) in indexes {
        let mut idx = Index::create();
        idx.name(*name).table(Alias::new(table));
        for c in *cols {
            idx.col(Alias::new(*c));
        }
        manager.create_index(idx).await?;
    }
    Ok(())
}

/// Drops `tables` in the order given (dependents first), each only if it exists.
pub(crate) async fn drop_tables(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
    for table in tables {
        manager
            .drop_table(Table::drop().table(Alias::new(*table)).if_exists().take())
            .await?;
    }
    Ok(())
}
