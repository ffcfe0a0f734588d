//! Appointments at the citizens' office: locations with opening calendars and counters, services
//! offered there, slots computed from the calendar minus bookings, and bookings that never
//! overbook (the location's resource rows are locked while capacity is checked).
//!
//! Built so far: availability ([`availability`]), locations and offers, `availableSlots`,
//! `bookAppointment` (`SLOT_FULL`, application-first offers, open bookings per contact),
//! `cancelBooking`, `rescheduleBooking`, `.ics` files ([`ics`], [`http`]), the staff day view and
//! no-shows. Next: confirmation mails with the .ics, reminders, holds, per-service proof-of-work.

pub mod availability;
pub mod graphql;
pub mod http;
pub mod ics;
pub mod service;
