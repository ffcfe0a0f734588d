//! Appointments at the citizens' office: locations with opening calendars and counters, services
//! offered there, slots computed from the calendar minus bookings, and bookings that never
//! overbook (the location's resource rows are locked while capacity is checked).
//!
//! - [`availability`]: the pure slot engine (local time, DST, holidays, capacity, buffers).
//! - [`admin`]: locations (opening calendar, counters) and the services offered there.
//! - [`slots`]: `availableSlots`. [`booking`]: holds, bookings, moves, cancellations.
//!   [`staff`]: the staff day view, no-shows.
//! - [`guard`]: rate limits per IP and contact, proof-of-work challenges per offer.
//! - [`mail`]: confirmation with the `.ics`, reminder, move and cancellation notices (outbox).
//! - [`ics`], [`http`]: calendar files. [`seed`]: locations and offers in tenant files.
//! - [`housekeeping`]: lapsed holds and spent challenges are cleared periodically.

pub mod admin;
pub mod availability;
pub mod booking;
pub mod graphql;
pub mod guard;
pub mod housekeeping;
pub mod http;
pub mod ics;
pub mod mail;
pub mod seed;
pub mod slots;
pub mod staff;

/// What booking needs besides the database: the abuse guard and the reminder lead time.
#[derive(Debug)]
pub struct Appointments {
    pub guard: guard::BookingGuard,
    pub remind_before: chrono::Duration,
}

impl Appointments {
    pub fn new(
        settings: &crate::settings::AppointmentSettings,
        challenge_key: [u8; 32],
    ) -> anyhow::Result<Self> {
        Ok(Self {
            guard: guard::BookingGuard::new(settings, challenge_key)?,
            remind_before: chrono::Duration::hours(i64::from(settings.reminder_hours_before)),
        })
    }
}
