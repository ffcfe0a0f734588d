//! Mails about a booking, queued in the outbox in the booking's transaction: the confirmation
//! with the `.ics` attached, a reminder the day before (queued for later, withdrawn when the
//! booking is moved or cancelled), and notices of a move or a cancellation.

use chrono::{DateTime, Datelike as _, Duration, Utc};
use entity::states::BookingState;
use entity::{bookings, locations};

use crate::db::TenantTx;
use crate::error::AppResult;
use crate::messaging::outbox::{self, Email, MailFile};

/// What every mail about a booking names.
pub struct Notice<'a> {
    pub booking: &'a bookings::Model,
    pub location: &'a locations::Model,
    pub service_title: &'a str,
    pub municipality: &'a str,
    /// The booking's calendar link (carries its token).
    pub ics_url: String,
    /// The portal's page to move or cancel the booking (carries its token).
    pub manage_url: String,
}

/// The portal's page of a booking, where its holder moves or cancels it.
pub fn manage_url(origin: &str, booking: uuid::Uuid, tenant_slug: &str, token: &str) -> String {
    format!(
        "{origin}/t/{tenant_slug}/appointments/{booking}/manage?token={}",
        percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// The calendar link of a booking, as mails and `bookAppointment` give it.
pub fn ics_url(origin: &str, booking: uuid::Uuid, tenant_slug: &str, token: &str) -> String {
    format!(
        "{origin}/bookings/{booking}.ics?tenant={tenant_slug}&token={}",
        percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
    )
}

const WEEKDAYS_DE: [&str; 7] = [
    "Montag",
    "Dienstag",
    "Mittwoch",
    "Donnerstag",
    "Freitag",
    "Samstag",
    "Sonntag",
];

/// `Dienstag, 24.11.2026, 10:00 Uhr` in the location's time zone.
fn local_time(t: DateTime<Utc>, time_zone: &str) -> String {
    let tz: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::Europe::Berlin);
    let local = t.with_timezone(&tz);
    format!(
        "{}, {}",
        WEEKDAYS_DE[local.weekday().num_days_from_monday() as usize],
        local.format("%d.%m.%Y, %H:%M Uhr")
    )
}

fn reminder_topic(booking: uuid::Uuid) -> String {
    format!("booking-reminder:{booking}")
}

impl Notice<'_> {
    fn calendar_file(&self) -> MailFile {
        let method = if self.booking.state == BookingState::Cancelled {
            "CANCEL"
        } else {
            "PUBLISH"
        };
        MailFile {
            filename: "termin.ics".into(),
            content_type: format!("text/calendar; charset=utf-8; method={method}"),
            base64: super::ics::render(
                self.booking,
                self.location,
                self.service_title,
                self.municipality,
            )
            .into_bytes(),
        }
    }

    fn details(&self) -> String {
        format!(
            "Anliegen: {}\nWann: {}\nWo: {}, {}\n",
            self.service_title,
            local_time(self.booking.start_at, &self.location.time_zone),
            self.location.name,
            self.location.address
        )
    }

    fn mail(&self, subject: String, intro: &str, with_links: bool) -> Email {
        let mut body = format!(
            "Guten Tag {},\n\n{intro}\n\n{}",
            self.booking.contact_name,
            self.details()
        );
        if with_links {
            body.push_str(&format!(
                "\nKalenderdatei: {}\nTermin verschieben oder absagen: {}\n",
                self.ics_url, self.manage_url
            ));
        }
        body.push_str(&format!("\nIhre {}\n", self.municipality));
        Email {
            to: self.booking.contact_email.clone(),
            subject,
            body,
            ..Default::default()
        }
    }

    /// The reminder, due `before` the start; none when that moment has passed.
    fn reminder(&self, before: Duration, now: DateTime<Utc>) -> Option<Email> {
        let send_at = self.booking.start_at - before;
        (send_at > now).then(|| Email {
            topic: Some(reminder_topic(self.booking.id)),
            send_at: Some(send_at),
            ..self.mail(
                format!("Erinnerung an Ihren Termin: {}", self.service_title),
                "wir erinnern Sie an Ihren Termin:",
                true,
            )
        })
    }
}

/// Queues the confirmation (with the calendar file) and the reminder of a new booking.
pub async fn booked(txn: &TenantTx, notice: &Notice<'_>, remind_before: Duration) -> AppResult<()> {
    outbox::enqueue_all(txn, Some(txn.tenant()), booked_mails(notice, remind_before)).await
}

/// The mails of a new booking: the confirmation with the calendar file, and the reminder.
pub fn booked_mails(notice: &Notice<'_>, remind_before: Duration) -> Vec<Email> {
    let mut mails = vec![Email {
        files: vec![notice.calendar_file()],
        ..notice.mail(
            format!("Terminbestätigung: {}", notice.service_title),
            "Ihr Termin ist gebucht:",
            true,
        )
    }];
    mails.extend(notice.reminder(remind_before, Utc::now()));
    mails
}

/// Withdraws the old reminder, queues a notice with the new calendar file and a new reminder.
pub async fn moved(txn: &TenantTx, notice: &Notice<'_>, remind_before: Duration) -> AppResult<()> {
    outbox::withdraw(txn, &reminder_topic(notice.booking.id)).await?;
    let mut mails = vec![Email {
        files: vec![notice.calendar_file()],
        ..notice.mail(
            format!("Termin verschoben: {}", notice.service_title),
            "Ihr Termin wurde verschoben. Er findet jetzt statt:",
            true,
        )
    }];
    mails.extend(notice.reminder(remind_before, Utc::now()));
    outbox::enqueue_all(txn, Some(txn.tenant()), mails).await
}

/// Withdraws the reminder and queues the cancellation (its calendar file removes the event).
pub async fn cancelled(txn: &TenantTx, notice: &Notice<'_>) -> AppResult<()> {
    outbox::withdraw(txn, &reminder_topic(notice.booking.id)).await?;
    let mail = Email {
        files: vec![notice.calendar_file()],
        ..notice.mail(
            format!("Termin abgesagt: {}", notice.service_title),
            "Ihr Termin ist abgesagt:",
            false,
        )
    };
    outbox::enqueue(txn, Some(txn.tenant()), mail).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_are_german_and_follow_daylight_saving() {
        let winter = DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z").unwrap();
        let summer = DateTime::parse_from_rfc3339("2027-06-01T08:00:00Z").unwrap();
        assert_eq!(
            local_time(winter.to_utc(), "Europe/Berlin"),
            "Dienstag, 24.11.2026, 10:00 Uhr"
        );
        assert_eq!(
            local_time(summer.to_utc(), "Europe/Berlin"),
            "Dienstag, 01.06.2027, 10:00 Uhr"
        );
    }
}
