//! Full-text search as the domains share it (marketplace templates, a tenant's services): the
//! words of a search, the length limit of the search input, and the condition over a table's
//! index. PostgreSQL: a generated `tsvector` column (German stemming) with a GIN index; SQLite: an
//! FTS5 table kept in step by triggers (both made by the migrations). Every word must match, as a
//! prefix.

use sea_orm::DbBackend;
use sea_orm::sea_query::{Expr, SimpleExpr};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Longest search input, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// At most this many words of a search count.
const MAX_WORDS: usize = 8;

/// Where a table's full-text index lives. Names are SQL identifiers written by the caller, never
/// input.
#[derive(Clone, Copy, Debug)]
pub struct FullText {
    /// The searched table's key column, qualified (`templates.id`).
    pub key: &'static str,
    /// PostgreSQL: the generated `tsvector` column, qualified (`templates.search`).
    pub tsvector: &'static str,
    /// SQLite: the FTS5 table.
    pub fts: &'static str,
    /// SQLite: the FTS5 table's column holding the row's key.
    pub fts_key: &'static str,
    /// SQLite: the FTS5 table's column holding the row's tenant, for tenant-owned tables.
    pub fts_tenant: Option<&'static str>,
}

/// `VALIDATION_FAILED` at `field` when the search is longer than [`MAX_SEARCH_CHARS`].
pub fn check_search(field: &str, search: Option<&str>) -> AppResult<()> {
    if search.is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS) {
        return Err(AppError::invalid(
            field,
            format!("at most {MAX_SEARCH_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Words of a search (letters and digits only, so they are safe inside FTS query syntax),
/// lower-cased, at most [`MAX_WORDS`].
pub fn search_words(search: &str) -> Vec<String> {
    search
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
        .map(str::to_lowercase)
        .collect()
}

impl FullText {
    /// The condition "every word of `search` matches (as a prefix)", or `None` when the search
    /// has no words. `tenant` narrows the SQLite index to one tenant (tables with
    /// [`FullText::fts_tenant`]); the query is scoped to the tenant anyway, and on PostgreSQL
    /// row-level security says the same.
    pub fn condition(
        &self,
        backend: DbBackend,
        search: &str,
        tenant: Option<Uuid>,
    ) -> Option<SimpleExpr> {
        let words = search_words(search);
        if words.is_empty() {
            return None;
        }
        Some(match backend {
            DbBackend::Postgres => {
                let query = words
                    .iter()
                    .map(|w| format!("{w}:*"))
                    .collect::<Vec<_>>()
                    .join(" & ");
                Expr::cust_with_values(
                    format!("{} @@ to_tsquery('german', $1)", self.tsvector),
                    [query],
                )
            }
            _ => {
                let query = words
                    .iter()
                    .map(|w| format!("\"{w}\"*"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let (key, fts, fts_key) = (self.key, self.fts, self.fts_key);
                match (self.fts_tenant, tenant) {
                    (Some(col), Some(tenant)) => Expr::cust_with_values(
                        format!(
                            "{key} IN (SELECT {fts_key} FROM {fts} WHERE {fts} MATCH ? AND {col} = ?)"
                        ),
                        [sea_orm::Value::from(query), sea_orm::Value::from(tenant)],
                    ),
                    _ => Expr::cust_with_values(
                        format!("{key} IN (SELECT {fts_key} FROM {fts} WHERE {fts} MATCH ?)"),
                        [query],
                    ),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_keep_only_letters_and_digits() {
        assert_eq!(
            search_words("Hunde\"* OR steuer"),
            ["hunde", "or", "steuer"]
        );
        assert_eq!(search_words("Müll-Abfuhr"), ["müll", "abfuhr"]);
        assert!(search_words("\"*()").is_empty());
        assert_eq!(search_words("a b c d e f g h i j").len(), 8);
    }

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        assert!(check_search("filter.search", Some(&"ä".repeat(200))).is_ok());
        assert!(check_search("filter.search", Some(&"a".repeat(201))).is_err());
        assert!(check_search("filter.search", None).is_ok());
    }
}
