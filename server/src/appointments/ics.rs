//! iCalendar (RFC 5545) files for bookings. Times are written in UTC (`…Z`), which every
//! calendar shows in its user's local time without needing a VTIMEZONE block.

use chrono::{DateTime, Utc};
use entity::states::BookingState;
use entity::{bookings, locations};

/// Escapes a TEXT value (RFC 5545 3.3.11).
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line at 75 octets (RFC 5545 3.1), never inside a UTF-8 character.
fn fold(line: &str, out: &mut String) {
    let mut used = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > 75 {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The calendar file of a booking at a location of `municipality`.
pub fn render(
    booking: &bookings::Model,
    location: &locations::Model,
    service_title: &str,
    municipality: &str,
) -> String {
    // A cancelled booking's file tells calendars to remove the event (RFC 5546 CANCEL).
    let (method, status) = if booking.state == BookingState::Cancelled {
        ("CANCEL", "CANCELLED")
    } else {
        ("PUBLISH", "CONFIRMED")
    };
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Amtsplatz//Termine//DE".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        format!("METHOD:{method}"),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@amtsplatz", booking.id),
        // When this file was made: a moved booking's newer file replaces the older one.
        format!("DTSTAMP:{}", stamp(Utc::now())),
        format!("DTSTART:{}", stamp(booking.start_at)),
        format!("DTEND:{}", stamp(booking.end_at)),
        format!(
            "SUMMARY:{}",
            text(&format!("{service_title} – {municipality}"))
        ),
        format!(
            "LOCATION:{}",
            text(&format!("{}, {}", location.name, location.address))
        ),
        format!(
            "DESCRIPTION:{}",
            text(&format!(
                "Ihr Termin bei {municipality}: {service_title}.\nBitte bringen Sie Ihren Ausweis mit."
            ))
        ),
        format!("STATUS:{status}"),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    let mut out = String::new();
    for l in lines {
        fold(&l, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text stays on its property line: escaped, folded at 75 octets, no bare line breaks.
        #[test]
        fn any_text_makes_well_formed_lines(s in any::<String>()) {
            let mut out = String::new();
            fold(&format!("SUMMARY:{}", text(&s)), &mut out);
            for line in out.split("\r\n").filter(|l| !l.is_empty()) {
                prop_assert!(line.len() <= 75, "{line:?}");
                prop_assert!(!line.contains('\n') && !line.contains('\r'));
            }
            let unfolded = out.trim_end_matches("\r\n").replace("\r\n ", "");
            prop_assert_eq!(unfolded, format!("SUMMARY:{}", text(&s)));
        }
    }
}
