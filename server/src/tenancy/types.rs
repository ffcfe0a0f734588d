//! Parsed tenancy values. Each has private fields and a `parse`, so an invalid value cannot exist
//! past the API edge; services accept only these.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A URL- and subdomain-safe key: `a-z`, `0-9`, `-`; starts with a letter; 2–40 characters.
/// Used for tenant slugs and department keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slug(String);
string_newtype!(Slug);

impl Slug {
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let s = raw.trim();
        let ok = (2..=40).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && !s.contains("--")
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(AppError::invalid(
                field,
                "must be 2–40 characters of a-z, 0-9 and single hyphens, starting with a letter",
            ))
        }
    }
}

/// Amtlicher Gemeindeschlüssel: exactly 8 digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ags(String);
string_newtype!(Ags);

impl Ags {
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let s = raw.trim();
        if s.len() == 8 && s.chars().all(|c| c.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(AppError::invalid(
                field,
                "must be the 8-digit Amtlicher Gemeindeschlüssel",
            ))
        }
    }
}

/// An email address, trimmed and lower-cased. Deliberately simple: one `@`, a dot in the domain,
/// no spaces, at most 254 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);
string_newtype!(Email);

impl Email {
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let s = raw.trim().to_lowercase();
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Self(s))
        } else {
            Err(AppError::invalid(field, "is not a valid email address"))
        }
    }
}

/// An IANA time zone name known to the tz database (`Europe/Berlin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeZone(String);
string_newtype!(TimeZone);

impl TimeZone {
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        raw.trim()
            .parse::<chrono_tz::Tz>()
            .map(|tz| Self(tz.name().to_owned()))
            .map_err(|_| AppError::invalid(field, "is not an IANA time zone such as Europe/Berlin"))
    }
}

/// A display name: trimmed, 1–200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);
string_newtype!(Name);

impl Name {
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let s = raw.trim();
        let len = s.chars().count();
        if (1..=200).contains(&len) && !s.chars().any(char::is_control) {
            Ok(Self(s.to_owned()))
        } else {
            Err(AppError::invalid(
                field,
                "must be 1–200 characters without control characters",
            ))
        }
    }
}

/// A tenant's look in citizen-facing pages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    /// `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_color: Option<String>,
    /// An `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
}

impl Branding {
    pub fn check(&self, field: &str) -> AppResult<()> {
        if let Some(color) = &self.primary_color {
            let ok = color.len() == 7
                && color.starts_with('#')
                && color[1..].chars().all(|c| c.is_ascii_hexdigit());
            if !ok {
                return Err(AppError::invalid(
                    format!("{field}.primaryColor"),
                    "must be a colour like #0a5c8a",
                ));
            }
        }
        if let Some(url) = &self.logo_url
            && (!url.starts_with("https://")
                || url.len() > 500
                || url.chars().any(char::is_whitespace))
        {
            return Err(AppError::invalid(
                format!("{field}.logoUrl"),
                "must be an https:// URL",
            ));
        }
        Ok(())
    }
}

/// Per-tenant settings, stored as JSON on the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The citizens' identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSettings>,
}

/// An OpenID Connect provider whose ID tokens identify citizens of the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`: our client ID at the provider.
    pub client_id: String,
    /// Where the provider publishes its signing keys.
    pub jwks_url: String,
}

impl TenantSettings {
    pub fn check(&self, field: &str) -> AppResult<()> {
        if let Some(oidc) = &self.oidc {
            if oidc.issuer.trim().is_empty() || oidc.client_id.trim().is_empty() {
                return Err(AppError::invalid(
                    format!("{field}.oidc"),
                    "issuer and clientId are required",
                ));
            }
            if !(oidc.jwks_url.starts_with("https://") || oidc.jwks_url.starts_with("http://")) {
                return Err(AppError::invalid(
                    format!("{field}.oidc.jwksUrl"),
                    "must be a URL",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(Slug::parse("s", "musterstadt").is_ok());
        assert!(Slug::parse("s", "bad-hausen-2").is_ok());
        for bad in [
            "",
            "a",
            "Muster",
            "1abc",
            "ab-",
            "a--b",
            "ab_c",
            "a b",
            &"a".repeat(41),
        ] {
            assert!(Slug::parse("s", bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn ags_and_email_and_zone() {
        assert!(Ags::parse("a", "09162000").is_ok());
        assert!(Ags::parse("a", "0916200").is_err());
        assert_eq!(
            Email::parse("e", " Anna@Example.ORG ")
                .expect("valid")
                .as_str(),
            "anna@example.org"
        );
        for bad in ["anna", "anna@", "@x.de", "a b@x.de", "a@x", "a@@x.de"] {
            assert!(Email::parse("e", bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(TimeZone::parse("z", "Europe/Berlin").is_ok());
        assert!(TimeZone::parse("z", "Mars/Olympus").is_err());
    }

    #[test]
    fn branding_checks_colour_and_url() {
        let ok = Branding {
            primary_color: Some("#0a5c8a".into()),
            logo_url: Some("https://x.de/l.svg".into()),
        };
        assert!(ok.check("b").is_ok());
        assert!(
            Branding {
                primary_color: Some("blue".into()),
                logo_url: None
            }
            .check("b")
            .is_err()
        );
        assert!(
            Branding {
                primary_color: None,
                logo_url: Some("javascript:alert(1)".into())
            }
            .check("b")
            .is_err()
        );
    }
}
