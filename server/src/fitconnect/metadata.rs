//! The FIT-Connect metadata of a submission (schema 1.0.0,
//! `https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json`): what the data and
//! attachments are (with SHA-512 hashes of their unencrypted bytes, so the receiver can check
//! nothing was swapped on the way), which service it is (LeiKa), where replies go, and our
//! reference. A building block of the sender, which is not built yet; the tests check what it
//! builds against the published schema.

use serde_json::{Value, json};
use sha2::{Digest, Sha512};

/// Hex SHA-512, the only hash the schema allows.
pub fn sha512_hex(bytes: &[u8]) -> String {
    Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One attachment of a submission.
#[derive(Clone, Debug)]
pub struct AttachmentMeta {
    /// The attachment's ID within the submission (a UUID; FIT-Connect asks for version 4).
    pub id: uuid::Uuid,
    pub filename: String,
    pub mime_type: String,
    /// [`sha512_hex`] of the unencrypted bytes.
    pub sha512: String,
}

/// What the metadata is built from.
#[derive(Clone, Debug)]
pub struct SubmissionMeta<'a> {
    /// Our reference (`MUSTERSTADT-2026-000042`), for questions outside FIT-Connect.
    pub reference: &'a str,
    pub submitted_on: chrono::NaiveDate,
    /// The service's LeiKa key and name.
    pub leika_code: Option<&'a str>,
    pub service_name: &'a str,
    /// [`sha512_hex`] of the unencrypted form data, and the URI of its schema.
    pub data_sha512: String,
    pub data_schema_uri: &'a str,
    pub attachments: Vec<AttachmentMeta>,
    /// Where replies go (the schema allows exactly one channel; none is also allowed).
    pub reply_email: Option<&'a str>,
}

/// The metadata document.
pub fn metadata(m: &SubmissionMeta<'_>) -> Value {
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| {
            json!({
                "attachmentId": a.id.to_string(),
                "hash": { "type": "sha512", "content": a.sha512 },
                "purpose": "attachment",
                "filename": a.filename,
                "mimeType": a.mime_type,
            })
        })
        .collect();
    let mut doc = json!({
        "contentStructure": {
            "data": {
                "hash": { "type": "sha512", "content": m.data_sha512 },
                "submissionSchema": { "schemaUri": m.data_schema_uri, "mimeType": "application/json" },
            },
            "attachments": attachments,
        },
        "additionalReferenceInfo": {
            "senderReference": m.reference,
            "applicationDate": m.submitted_on.format("%Y-%m-%d").to_string(),
        },
    });
    if let Some(leika) = m.leika_code {
        doc["publicServiceType"] = json!({
            "name": m.service_name,
            "identifier": format!("urn:de:fim:leika:leistung:{leika}"),
        });
    }
    if let Some(email) = m.reply_email {
        doc["replyChannel"] = json!({ "eMail": { "address": email } });
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published schema, from the shared samples (not copied into this repository):
    /// `../shared/fim-samples` next to the repository, or `AMTSPLATZ_FIM_SAMPLES`.
    fn validator() -> jsonschema::Validator {
        let samples = std::env::var_os("AMTSPLATZ_FIM_SAMPLES").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fim-samples"),
            std::path::PathBuf::from,
        );
        let path = samples.join("fit-connect/metadata.schema.v1.0.0.json");
        let text = std::fs::read_to_string(&path).expect("the FIT-Connect metadata schema sample");
        let schema: Value = serde_json::from_str(&text).expect("schema JSON");
        jsonschema::draft202012::new(&schema).expect("a valid schema")
    }

    fn sample() -> SubmissionMeta<'static> {
        SubmissionMeta {
            reference: "MUSTERSTADT-2026-000042",
            submitted_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 4).expect("date"),
            leika_code: Some("99015003001000"),
            service_name: "Hundesteuer anmelden",
            data_sha512: sha512_hex(br#"{"name":"Erika"}"#),
            data_schema_uri: "https://amtsplatz.example/t/musterstadt/services/hundesteuer/schema.json",
            attachments: vec![AttachmentMeta {
                id: uuid::Uuid::new_v4(),
                filename: "sachkunde.pdf".into(),
                mime_type: "application/pdf".into(),
                sha512: sha512_hex(b"%PDF-1.4"),
            }],
            reply_email: Some("erika@example.org"),
        }
    }

    #[test]
    fn the_metadata_is_valid_against_the_published_schema() {
        let v = validator();
        let doc = metadata(&sample());
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{doc:#}");
        // Without LeiKa key, attachments or reply channel too.
        let mut bare = sample();
        bare.leika_code = None;
        bare.attachments.clear();
        bare.reply_email = None;
        assert!(v.is_valid(&metadata(&bare)));
    }

    #[test]
    fn the_schema_check_is_not_vacuous() {
        let v = validator();
        let mut doc = metadata(&sample());
        doc["contentStructure"]["data"]["hash"]["content"] = json!("not-a-sha512");
        assert!(!v.is_valid(&doc));
        let mut doc = metadata(&sample());
        doc["replyChannel"]["deMail"] = json!({ "address": "x@example.org" });
        assert!(!v.is_valid(&doc), "one reply channel at most");
    }

    #[test]
    fn hashes_are_hex_sha512() {
        assert_eq!(
            sha512_hex(b"abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }
}
