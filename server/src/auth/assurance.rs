//! eID assurance levels (Vertrauensniveaus): what a service requires, and what a citizen's ID
//! token says about how the citizen was identified.
//!
//! Read in this order: [`AssuranceLevel`] (the three eIDAS levels a service can require),
//! [`parse_claim_value`] (every value brokers are known to send, mapped to a level), then
//! [`BrokerClaims::read`] (which claims of an ID token are looked at, and the stable subject and
//! postbox handle taken from them).
//!
//! Sources of the values:
//! - eIDAS (Regulation (EU) 910/2014, Implementing Regulation 2015/1502): `http://eidas.europa.eu/LoA/{low,substantial,high}`,
//!   and the `…/NotNotified/LoA/…` forms for schemes not notified to the EU (ELSTER, for one),
//!   as listed in the identification report schema 2.0.0 (Governikus/IdentificationReport).
//! - BSI TR-03107-1 national levels, from the same schema: `http://bsi.bund.de/eID/LoA/{normal,substantiell,hoch}`.
//! - STORK QAA levels 1 to 4, which BundID (and Keycloak realms brokering it) send in the SAML
//!   attribute `EID-CITIZEN-QAA-LEVEL` (`urn:oid:1.2.40.0.10.2.1.1.261.94`): level 1 is BundID's
//!   "Basisregistrierung" (user name and password, which meets no eIDAS level), 2 low, 3
//!   substantial (ELSTER certificate), 4 high (Online-Ausweis, eAT, Unionsbürgerkarte).

use serde_json::{Map, Value};

use crate::error::{AppError, AppResult};

pub use crate::context::AssuranceLevel;

/// What one claim value says about the identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// One of the eIDAS levels.
    Level(AssuranceLevel),
    /// A known value below every eIDAS level (BundID's Basisregistrierung, STORK QAA 1).
    BelowLow,
}

/// Maps one claim value to what it says; `None` for values that say nothing about assurance
/// (Keycloak's default `acr` of `0` or `1`, `unknown`, anything else).
pub fn parse_claim_value(value: &str) -> Option<Claimed> {
    use AssuranceLevel::{High, Low, Substantial};
    let v = value.trim().to_ascii_lowercase();
    let level = match v.as_str() {
        "stork-qaa-level-1" => return Some(Claimed::BelowLow),
        "stork-qaa-level-2" => Low,
        "stork-qaa-level-3" => Substantial,
        "stork-qaa-level-4" => High,
        "http://eidas.europa.eu/loa/low" | "http://eidas.europa.eu/notnotified/loa/low" => Low,
        "http://eidas.europa.eu/loa/substantial"
        | "http://eidas.europa.eu/notnotified/loa/substantial" => Substantial,
        "http://eidas.europa.eu/loa/high" | "http://eidas.europa.eu/notnotified/loa/high" => High,
        "http://bsi.bund.de/eid/loa/normal" => Low,
        "http://bsi.bund.de/eid/loa/substantiell" => Substantial,
        "http://bsi.bund.de/eid/loa/hoch" => High,
        _ => return None,
    };
    Some(Claimed::Level(level))
}

/// Claims read for the level, in this order; every one present counts, and the lowest wins.
/// `acr` is OpenID Connect's own; the others are the names BundID's SAML attributes keep when a
/// broker such as Keycloak passes them through (OID and friendly name), and the Governikus
/// identification report's field.
pub const ASSURANCE_CLAIMS: &[&str] = &[
    "acr",
    "urn:oid:1.2.40.0.10.2.1.1.261.94",
    "EID-CITIZEN-QAA-LEVEL",
    "levelOfAssurance",
];

/// Claims carrying BundID's bPK2, the sector-specific identifier that stays the same across
/// sign-ins (also temporary eID sign-ins without an account, whose `sub` changes).
pub const SUBJECT_CLAIMS: &[&str] = &["urn:oid:1.3.6.1.4.1.25484.494450.3", "bPK2", "bpk2"];

/// Claims carrying the citizen's postbox handle (BundID's `legacyPostkorbHandle`), kept with an
/// application as the channel for replies.
pub const POSTBOX_CLAIMS: &[&str] = &["urn:oid:2.5.4.18", "legacyPostkorbHandle", "postkorbHandle"];

/// Longest accepted bPK2 or postbox handle.
const MAX_ID_LEN: usize = 255;

/// What the broker-specific claims of a verified ID token say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerClaims {
    /// The lowest level any assurance claim states; `None` when none states a level or one
    /// states a value below every level.
    pub assurance: Option<AssuranceLevel>,
    /// The bPK2, when the token carries one.
    pub stable_subject: Option<String>,
    pub postbox: Option<String>,
}

impl BrokerClaims {
    /// Reads the claims of a verified token. A bPK2 claim that is not a usable identifier makes
    /// the token unusable (`UNAUTHENTICATED`) rather than falling back to another identity.
    pub fn read(claims: &Map<String, Value>) -> AppResult<Self> {
        let mut lowest: Option<Claimed> = None;
        for name in ASSURANCE_CLAIMS {
            for value in strings(claims.get(*name)) {
                let Some(said) = parse_claim_value(value) else {
                    continue;
                };
                lowest = Some(match (lowest, said) {
                    (None, s) => s,
                    (Some(Claimed::BelowLow), _) | (_, Claimed::BelowLow) => Claimed::BelowLow,
                    (Some(Claimed::Level(a)), Claimed::Level(b)) => Claimed::Level(a.min(b)),
                });
            }
        }
        let assurance = match lowest {
            Some(Claimed::Level(l)) => Some(l),
            _ => None,
        };
        let stable_subject = match first_present(claims, SUBJECT_CLAIMS) {
            None => None,
            Some(Value::String(s)) if is_identifier(s) => Some(s.trim().to_owned()),
            Some(_) => {
                tracing::debug!(auth.reject = "unusable bPK2 claim", "ID token rejected");
                return Err(AppError::Unauthenticated);
            }
        };
        let postbox = match first_present(claims, POSTBOX_CLAIMS) {
            Some(Value::String(s)) if is_identifier(s) => Some(s.trim().to_owned()),
            _ => None,
        };
        Ok(Self {
            assurance,
            stable_subject,
            postbox,
        })
    }
}

fn first_present<'a>(claims: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| claims.get(*n))
}

fn is_identifier(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
}

/// A claim's string values: a string, or the strings of an array (SAML attributes may repeat).
fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The check a service's requirement makes on the caller, before anything is stored:
/// anonymous callers must sign in first (`UNAUTHENTICATED`, so the portal sends them to the
/// identity provider); a citizen identified below the level gets `INSUFFICIENT_ASSURANCE`.
pub fn require(
    required: Option<AssuranceLevel>,
    principal: &crate::context::Principal,
) -> AppResult<()> {
    use crate::context::Principal;
    let Some(required) = required else {
        return Ok(());
    };
    match principal {
        Principal::Citizen(c) if c.assurance.is_some_and(|have| have >= required) => Ok(()),
        Principal::Citizen(c) => Err(AppError::InsufficientAssurance {
            required: required.as_str(),
            actual: c.assurance.map(AssuranceLevel::as_str),
        }),
        Principal::Anonymous => Err(AppError::Unauthenticated),
        // Staff never fill forms (require_applicant_side says so first); nothing to add here.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::AssuranceLevel::{High, Low, Substantial};
    use super::*;
    use serde_json::json;

    /// Every value the sources above list, and what it maps to.
    const TABLE: &[(&str, Option<Claimed>)] = &[
        ("STORK-QAA-Level-1", Some(Claimed::BelowLow)),
        ("STORK-QAA-Level-2", Some(Claimed::Level(Low))),
        ("STORK-QAA-Level-3", Some(Claimed::Level(Substantial))),
        ("STORK-QAA-Level-4", Some(Claimed::Level(High))),
        ("http://eidas.europa.eu/LoA/low", Some(Claimed::Level(Low))),
        (
            "http://eidas.europa.eu/LoA/substantial",
            Some(Claimed::Level(Substantial)),
        ),
        (
            "http://eidas.europa.eu/LoA/high",
            Some(Claimed::Level(High)),
        ),
        (
            "http://eidas.europa.eu/NotNotified/LoA/low",
            Some(Claimed::Level(Low)),
        ),
        (
            "http://eidas.europa.eu/NotNotified/LoA/substantial",
            Some(Claimed::Level(Substantial)),
        ),
        (
            "http://eidas.europa.eu/NotNotified/LoA/high",
            Some(Claimed::Level(High)),
        ),
        (
            "http://bsi.bund.de/eID/LoA/normal",
            Some(Claimed::Level(Low)),
        ),
        (
            "http://bsi.bund.de/eID/LoA/substantiell",
            Some(Claimed::Level(Substantial)),
        ),
        (
            "http://bsi.bund.de/eID/LoA/hoch",
            Some(Claimed::Level(High)),
        ),
        ("unknown", None),
        ("0", None),
        ("1", None),
        ("", None),
        ("STORK-QAA-Level-5", None),
        ("https://eidas.europa.eu/LoA/high", None),
        ("http://eidas.europa.eu/LoA/highest", None),
    ];

    #[test]
    fn every_listed_claim_value_maps_to_its_level() {
        for (value, expected) in TABLE {
            assert_eq!(parse_claim_value(value), *expected, "{value}");
        }
    }

    #[test]
    fn values_are_read_regardless_of_case_and_surrounding_space() {
        assert_eq!(
            parse_claim_value(" stork-qaa-level-4 "),
            Some(Claimed::Level(High))
        );
        assert_eq!(
            parse_claim_value("HTTP://BSI.BUND.DE/EID/LOA/HOCH"),
            Some(Claimed::Level(High))
        );
    }

    #[test]
    fn the_sample_identification_report_level_is_read() {
        // The level of /work/shared/fim-samples/identification-report/sample-report.json.
        let claims = json!({"levelOfAssurance": "http://eidas.europa.eu/LoA/low"});
        let Value::Object(claims) = claims else {
            unreachable!()
        };
        assert_eq!(BrokerClaims::read(&claims).unwrap().assurance, Some(Low));
    }

    fn read(v: Value) -> AppResult<BrokerClaims> {
        let Value::Object(m) = v else { unreachable!() };
        BrokerClaims::read(&m)
    }

    #[test]
    fn each_assurance_claim_is_read_and_the_lowest_wins() {
        for name in ASSURANCE_CLAIMS {
            let c = read(json!({ *name: "STORK-QAA-Level-3" })).unwrap();
            assert_eq!(c.assurance, Some(Substantial), "{name}");
        }
        let c = read(json!({
            "acr": "http://eidas.europa.eu/LoA/high",
            "urn:oid:1.2.40.0.10.2.1.1.261.94": "STORK-QAA-Level-3",
        }))
        .unwrap();
        assert_eq!(c.assurance, Some(Substantial));
        let c = read(json!({"acr": "http://eidas.europa.eu/LoA/high", "EID-CITIZEN-QAA-LEVEL": "STORK-QAA-Level-1"})).unwrap();
        assert_eq!(c.assurance, None);
        let c = read(json!({"acr": ["1", "STORK-QAA-Level-4"]})).unwrap();
        assert_eq!(c.assurance, Some(High));
        let c = read(json!({"acr": "1"})).unwrap();
        assert_eq!(c.assurance, None);
        assert_eq!(read(json!({})).unwrap(), BrokerClaims::default());
    }

    #[test]
    fn bpk2_and_postbox_are_kept_and_a_bad_bpk2_refuses_the_token() {
        let c = read(json!({
            "urn:oid:1.3.6.1.4.1.25484.494450.3": "bpk2-abc",
            "urn:oid:2.5.4.18": "postkorb-123",
        }))
        .unwrap();
        assert_eq!(c.stable_subject.as_deref(), Some("bpk2-abc"));
        assert_eq!(c.postbox.as_deref(), Some("postkorb-123"));
        let c = read(json!({"bPK2": "x", "legacyPostkorbHandle": 5})).unwrap();
        assert_eq!(c.stable_subject.as_deref(), Some("x"));
        assert_eq!(c.postbox, None);
        assert!(matches!(
            read(json!({"bPK2": ""})),
            Err(AppError::Unauthenticated)
        ));
        assert!(matches!(
            read(json!({"bPK2": 42})),
            Err(AppError::Unauthenticated)
        ));
        assert!(matches!(
            read(json!({"bPK2": "a".repeat(256)})),
            Err(AppError::Unauthenticated)
        ));
    }

    #[test]
    fn levels_are_ordered_and_round_trip() {
        assert!(Low < Substantial && Substantial < High);
        for l in [Low, Substantial, High] {
            assert_eq!(AssuranceLevel::parse(l.as_str()), Some(l));
        }
    }
}
