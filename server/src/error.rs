//! One error type for the whole server, with the stable codes of DESIGN.md section 8.
//!
//! Domain services return [`AppError`]; in GraphQL it travels as the error's source and gets its
//! `extensions.code` in [`crate::graphql`]; plain HTTP routes answer a JSON body ([`ResponseError`]).
//! `Internal` answers only "internal error": its cause chain is logged once, here, at the boundary.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};

/// Field path (e.g. `input.email`) → human-readable message.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No or invalid credentials. HTTP 401.
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated, but not allowed (also: a token of tenant A used on tenant B). HTTP 403.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The thing does not exist, or exists in a scope the caller cannot see. HTTP 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Input is invalid; one message per field path. HTTP 422.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// The change conflicts with current state (duplicate key, object in use). HTTP 409.
    #[error("conflict: {message}")]
    Conflict {
        message: String,
        field: Option<String>,
    },
    /// A three-way merge left conflicts open; carries their paths. HTTP 409.
    #[error("merge conflict")]
    MergeConflict { paths: Vec<String> },
    /// The appointment slot has no capacity left. HTTP 409.
    #[error("slot full")]
    SlotFull,
    /// The payment provider refused or failed. HTTP 402.
    #[error("payment failed: {0}")]
    PaymentFailed(String),
    /// The request body or an upload is over its limit. HTTP 413.
    #[error("payload too large (limit {limit_bytes} bytes)")]
    PayloadTooLarge { limit_bytes: usize },
    /// Too many attempts; retry after the given seconds. HTTP 429.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The service requires a higher eID assurance level (Vertrauensniveau) than the citizen's
    /// sign-in has; carries both. HTTP 403. Nothing was stored.
    #[error("this service requires the assurance level {required}")]
    InsufficientAssurance {
        /// `low`, `substantial` or `high`.
        required: &'static str,
        actual: Option<&'static str>,
    },
    /// Anything unexpected. HTTP 500; details only in the log.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// Every code the API can answer with, in the order of DESIGN.md section 8.
pub const ALL_CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "VALIDATION_FAILED",
    "CONFLICT",
    "MERGE_CONFLICT",
    "SLOT_FULL",
    "PAYMENT_FAILED",
    "PAYLOAD_TOO_LARGE",
    "RATE_LIMITED",
    "INSUFFICIENT_ASSURANCE",
    "INTERNAL",
];

impl AppError {
    /// A validation error for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.into(), message.into());
        Self::Validation(fields)
    }

    /// The error as one line for files and logs: field errors as `` `path` message; … ``.
    pub fn describe(self) -> String {
        match self {
            Self::Validation(fields) => fields
                .iter()
                .map(|(k, v)| format!("`{k}` {v}"))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }

    /// A conflict on one field (usually a unique key).
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// Wraps an unexpected failure with what we were doing.
    pub fn internal(context: &'static str, err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into().context(context))
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::Conflict { .. } => "CONFLICT",
            Self::MergeConflict { .. } => "MERGE_CONFLICT",
            Self::SlotFull => "SLOT_FULL",
            Self::PaymentFailed(_) => "PAYMENT_FAILED",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::InsufficientAssurance { .. } => "INSUFFICIENT_ASSURANCE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::InsufficientAssurance { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } | Self::MergeConflict { .. } | Self::SlotFull => {
                StatusCode::CONFLICT
            }
            Self::PaymentFailed(_) => StatusCode::PAYMENT_REQUIRED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs an internal error's full chain once; other errors are the caller's business.
    fn log_if_internal(&self) {
        if let Self::Internal(err) = self {
            tracing::error!(error.chain = format!("{err:#}"), "internal error");
        }
    }

    /// The `extensions` object for this error, shared by GraphQL and plain HTTP answers.
    fn extensions_json(&self) -> serde_json::Value {
        let mut ext = serde_json::Map::new();
        ext.insert("code".into(), self.code().into());
        match self {
            Self::Validation(fields) => {
                ext.insert("fields".into(), serde_json::json!(fields));
            }
            Self::Conflict {
                field: Some(field), ..
            } => {
                ext.insert("field".into(), field.clone().into());
            }
            Self::MergeConflict { paths } => {
                ext.insert("paths".into(), serde_json::json!(paths));
            }
            Self::PayloadTooLarge { limit_bytes } => {
                ext.insert("limitBytes".into(), (*limit_bytes).into());
            }
            Self::RateLimited { retry_after_secs } => {
                ext.insert("retryAfterSeconds".into(), (*retry_after_secs).into());
            }
            Self::InsufficientAssurance { required, actual } => {
                ext.insert("requiredLevel".into(), (*required).into());
                ext.insert(
                    "actualLevel".into(),
                    actual.map_or(serde_json::Value::Null, Into::into),
                );
            }
            _ => {}
        }
        serde_json::Value::Object(ext)
    }

    /// A GraphQL-shaped error response body, for errors raised before GraphQL runs.
    pub fn graphql_body(&self) -> serde_json::Value {
        serde_json::json!({
            "data": null,
            "errors": [{ "message": self.to_string(), "extensions": self.extensions_json() }],
        })
    }
}

impl AppError {
    /// Fills a GraphQL error's `extensions` from this error (and logs it if internal).
    /// async-graphql keeps the `AppError` as the error's source when a resolver uses `?`;
    /// [`crate::graphql`] reads it back here, for HTTP and WebSocket alike.
    pub fn fill_extensions(&self, ext: &mut async_graphql::ErrorExtensionValues) {
        self.log_if_internal();
        if let Ok(async_graphql::Value::Object(map)) =
            async_graphql::Value::from_json(self.extensions_json())
        {
            for (k, v) in map {
                ext.set(k.as_str(), v);
            }
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.log_if_internal();
        let mut builder = HttpResponse::build(self.status());
        if let Self::RateLimited { retry_after_secs } = self {
            builder.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        builder.json(serde_json::json!({
            "error": { "message": self.to_string(), "extensions": self.extensions_json() }
        }))
    }
}

/// Result alias for domain services.
pub type AppResult<T> = Result<T, AppError>;

/// Maps a unique-key violation on the named constraint to `CONFLICT` on `field`; anything
/// else stays an internal error. Constraint names are fixed in the migrations.
pub fn on_unique(err: sea_orm::DbErr, constraint: &str, field: &str, message: &str) -> AppError {
    let text = err.to_string();
    let is_unique = matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    );
    // PostgreSQL names the constraint; SQLite names the columns, which our constraint names spell.
    if is_unique && (text.contains(constraint) || sqlite_columns_match(&text, constraint)) {
        AppError::conflict(field, message)
    } else {
        AppError::from(err)
    }
}

/// SQLite reports `UNIQUE constraint failed: departments.tenant_id, departments.key`;
/// our constraint `departments_tenant_id_key_key` spells the same table and columns.
fn sqlite_columns_match(text: &str, constraint: &str) -> bool {
    let Some(cols) = text.split("UNIQUE constraint failed: ").nth(1) else {
        return false;
    };
    let mut table = "";
    let mut names = Vec::new();
    for part in cols.split(',') {
        let part = part.trim();
        if let Some((t, c)) = part.split_once('.') {
            table = t;
            names.push(c.trim_end_matches(|ch: char| !ch.is_alphanumeric() && ch != '_'));
        }
    }
    let expected = format!("{table}_{}_key", names.join("_"));
    !table.is_empty() && expected == constraint
}

/// A file that could not be read or parsed, naming the file and the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct FileError {
    pub file: std::path::PathBuf,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_unique_message_matches_constraint_name() {
        let text = "error returned from database: (code: 2067) UNIQUE constraint failed: departments.tenant_id, departments.key";
        assert!(sqlite_columns_match(text, "departments_tenant_id_key_key"));
        assert!(!sqlite_columns_match(
            text,
            "staff_users_tenant_id_email_key"
        ));
    }

    #[test]
    fn every_code_is_listed_once() {
        let samples = [
            AppError::Unauthenticated,
            AppError::Forbidden("x"),
            AppError::NotFound("x"),
            AppError::invalid("a", "b"),
            AppError::conflict("a", "b"),
            AppError::MergeConflict { paths: vec![] },
            AppError::SlotFull,
            AppError::PaymentFailed("x".into()),
            AppError::PayloadTooLarge { limit_bytes: 1 },
            AppError::RateLimited {
                retry_after_secs: 1,
            },
            AppError::InsufficientAssurance {
                required: "high",
                actual: None,
            },
            AppError::Internal(anyhow::anyhow!("x")),
        ];
        let codes: Vec<_> = samples.iter().map(AppError::code).collect();
        assert_eq!(codes, ALL_CODES);
        // The list of DESIGN.md section 8, spelled out: a renamed code fails here.
        assert_eq!(
            ALL_CODES,
            [
                "UNAUTHENTICATED",
                "FORBIDDEN",
                "NOT_FOUND",
                "VALIDATION_FAILED",
                "CONFLICT",
                "MERGE_CONFLICT",
                "SLOT_FULL",
                "PAYMENT_FAILED",
                "PAYLOAD_TOO_LARGE",
                "RATE_LIMITED",
                "INSUFFICIENT_ASSURANCE",
                "INTERNAL",
            ]
        );
    }
}
