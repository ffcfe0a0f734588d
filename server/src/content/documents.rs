//! Documents citizens attach: the ones a service requires and the limits on all files.

use serde::{Deserialize, Serialize};

use super::form::Condition;
use super::{I18n, Key};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequiredDocument {
    pub key: Key,
    pub label: I18n,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<I18n>,
    /// Whether submission needs it (else optional).
    #[serde(default = "yes")]
    pub required: bool,
    /// Allowed content types (`application/pdf`, `image/jpeg`, `image/png`).
    pub content_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

fn yes() -> bool {
    true
}

/// The file types a service may accept (checked by their magic bytes on upload).
pub const CONTENT_TYPES: &[&str] = &["application/pdf", "image/jpeg", "image/png"];

/// How many files of which size and type an application (or its draft) may carry. A file for
/// a required document must also be one of that document's `contentTypes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttachmentRules {
    #[serde(default = "AttachmentRules::default_max_file_bytes")]
    pub max_file_bytes: u64,
    #[serde(default = "AttachmentRules::default_max_files")]
    pub max_files: u32,
    /// Types of files that are not for a required document.
    #[serde(default = "AttachmentRules::default_content_types")]
    pub content_types: Vec<String>,
}

impl AttachmentRules {
    /// Largest `maxFileBytes` a service may declare (the server's own limit may be lower).
    pub const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;

    fn default_max_file_bytes() -> u64 {
        10 * 1024 * 1024
    }
    fn default_max_files() -> u32 {
        20
    }
    fn default_content_types() -> Vec<String> {
        CONTENT_TYPES.iter().map(|s| (*s).to_owned()).collect()
    }
}

impl Default for AttachmentRules {
    fn default() -> Self {
        Self {
            max_file_bytes: Self::default_max_file_bytes(),
            max_files: Self::default_max_files(),
            content_types: Self::default_content_types(),
        }
    }
}
