//! Appointments at the citizens' office: opening calendars, slots, bookings that never overbook.
//!
//! Built so far: the availability engine ([`availability`]). Next: locations, resources, opening
//! rules and exceptions per tenant, service offers, booking with a resource lock, cancel and
//! reschedule by token, iCalendar, staff day views, abuse limits.

pub mod availability;
