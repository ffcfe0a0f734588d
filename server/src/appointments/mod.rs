//! Appointments at the citizens' office: locations with opening calendars and counters, services
//! offered there, slots computed from the calendar minus bookings, and bookings that never
//! overbook (the location's resource rows are locked while capacity is checked).
//!
//! Built so far: availability ([`availability`]), locations and offers, `availableSlots`,
//! `bookAppointment` (`SLOT_FULL`, application-first offers, open bookings per contact),
//! `cancelBooking`. Next: reschedule, iCalendar and mails, staff day views and no-shows, holds,
//! per-service proof-of-work.

pub mod availability;
pub mod graphql;
pub mod service;
