//! The fixed state sets stored in string columns, as enums.
//!
//! Each variant's string is exactly what the column held before these enums existed, so no
//! migration is needed; the unit tests below pin every string. A stored string outside the set
//! does not panic and is not mapped to some default: reading the row fails with `DbErr::Type`,
//! which the server answers as an internal error (it means the data is corrupt or newer than this
//! code). Application states are not here: services define their own workflow states.

use sea_orm::entity::prelude::*;

/// An enum stored as its string value: `as_str`/`parse` (and `Display`) next to sea-orm's
/// `DeriveActiveEnum`, both generated from the one list of strings.
macro_rules! string_state {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:tt,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
        pub enum $name {
            $($(#[$vdoc])* #[sea_orm(string_value = $value)] $variant,)+
        }

        impl $name {
            /// The string stored in the column.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)+
                }
            }

            /// The variant stored as `s`, if `s` is one.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_state!(
    /// `bookings.state`.
    BookingState {
        /// A short hold (see `hold_expires_at`); counts against capacity until it lapses.
        Held = "held",
        Booked = "booked",
        Cancelled = "cancelled",
        NoShow = "no_show",
        /// A hold that lapsed (housekeeping); no longer counts.
        Expired = "expired",
    }
);

string_state!(
    /// `attachments.state`.
    UploadState {
        /// A presigned PUT is outstanding; the bytes are not confirmed yet.
        Uploading = "uploading",
        Stored = "stored",
    }
);

string_state!(
    /// `attachments.scan_status`: the virus scan's verdict.
    ScanState {
        /// No scanner is configured.
        Skipped = "skipped",
        /// Not scanned yet, or the scanner could not decide: not handed out.
        Pending = "pending",
        Clean = "clean",
        /// The bytes are deleted.
        Infected = "infected",
    }
);

string_state!(
    /// `application_tasks.state`.
    TaskState {
        Open = "open",
        Done = "done",
        /// The application moved to an end state while the task was open.
        Cancelled = "cancelled",
    }
);

string_state!(
    /// `payments.state`. Once `paid`, nothing but refunds changes it.
    PaymentState {
        Pending = "pending",
        Paid = "paid",
        Failed = "failed",
        Expired = "expired",
        Refunded = "refunded",
        PartiallyRefunded = "partially_refunded",
    }
);

string_state!(
    /// `tenant_services.status`.
    ServiceStatus {
        /// Being prepared; citizens cannot see it.
        Draft = "draft",
        /// Takes applications.
        Live = "live",
        /// Takes no new applications.
        Retired = "retired",
    }
);

string_state!(
    /// `template_versions.status`.
    VersionStatus {
        Published = "published",
        Deprecated = "deprecated",
    }
);

string_state!(
    /// `template_proposals.status`.
    ProposalStatus {
        Open = "open",
        Accepted = "accepted",
        Rejected = "rejected",
    }
);

#[cfg(test)]
mod tests {
    use sea_orm::ActiveEnum;

    use super::*;

    /// Every variant's stored string, exactly: changing one would orphan the rows holding it.
    fn pinned<E: ActiveEnum<Value = String> + Copy + PartialEq + std::fmt::Debug>(
        expected: &[&str],
        as_str: fn(E) -> &'static str,
        parse: fn(&str) -> Option<E>,
    ) {
        let variants: Vec<E> = E::iter().collect();
        let strings: Vec<&str> = variants.iter().map(|v| as_str(*v)).collect();
        assert_eq!(strings, expected);
        for v in variants {
            // as_str and sea-orm's value agree, and both read back to the variant.
            assert_eq!(v.to_value(), as_str(v));
            assert_eq!(parse(as_str(v)), Some(v));
            assert_eq!(E::try_from_value(&as_str(v).to_owned()).ok(), Some(v));
        }
        // Unknown (or differently cased) strings are refused, not defaulted.
        for bad in ["", "unknown", &expected[0].to_uppercase()] {
            assert_eq!(parse(bad), None);
            assert!(E::try_from_value(&bad.to_owned()).is_err());
        }
    }

    #[test]
    fn booking_state_strings() {
        pinned(
            &["held", "booked", "cancelled", "no_show", "expired"],
            BookingState::as_str,
            BookingState::parse,
        );
    }

    #[test]
    fn upload_state_strings() {
        pinned(
            &["uploading", "stored"],
            UploadState::as_str,
            UploadState::parse,
        );
    }

    #[test]
    fn scan_state_strings() {
        pinned(
            &["skipped", "pending", "clean", "infected"],
            ScanState::as_str,
            ScanState::parse,
        );
    }

    #[test]
    fn task_state_strings() {
        pinned(
            &["open", "done", "cancelled"],
            TaskState::as_str,
            TaskState::parse,
        );
    }

    #[test]
    fn payment_state_strings() {
        pinned(
            &[
                "pending",
                "paid",
                "failed",
                "expired",
                "refunded",
                "partially_refunded",
            ],
            PaymentState::as_str,
            PaymentState::parse,
        );
    }

    #[test]
    fn service_status_strings() {
        pinned(
            &["draft", "live", "retired"],
            ServiceStatus::as_str,
            ServiceStatus::parse,
        );
    }

    #[test]
    fn version_status_strings() {
        pinned(
            &["published", "deprecated"],
            VersionStatus::as_str,
            VersionStatus::parse,
        );
    }

    #[test]
    fn proposal_status_strings() {
        pinned(
            &["open", "accepted", "rejected"],
            ProposalStatus::as_str,
            ProposalStatus::parse,
        );
    }

    #[test]
    fn display_is_the_stored_string() {
        assert_eq!(BookingState::NoShow.to_string(), "no_show");
        assert_eq!(
            PaymentState::PartiallyRefunded.to_string(),
            "partially_refunded"
        );
    }
}
