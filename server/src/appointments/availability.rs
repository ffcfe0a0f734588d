//! Availability: which appointment slots a location offers, computed from its weekly opening
//! hours, minus exceptions (public holidays, closures, special hours), minus what is booked.
//!
//! Slots lie on the location's *local* wall-clock grid: from each opening, every `duration +
//! buffer` minutes while the appointment ends by closing time. Local times are turned into
//! instants in the location's time zone, so a slot at 09:00 is 09:00 in Berlin in winter and in
//! summer; a local time that does not exist (the spring-forward gap) offers no slot, and one that
//! exists twice (the fall-back hour) counts once, at its first occurrence.
//!
//! Pure functions, no I/O: the booking transaction uses the same rules to check a requested
//! start ([`Calendar::offers`]) and to pick a resource with room ([`free_resource`]).

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike as _, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone as _, Utc,
    Weekday,
};
use chrono_tz::Tz;
use uuid::Uuid;

/// Opening hours on one day: `[opens, closes)` in local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub opens: NaiveTime,
    pub closes: NaiveTime,
}

/// What happens on one date instead of the weekly hours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DayOverride {
    /// Public holiday, closure: no appointments.
    Closed,
    /// Special hours replace the weekly ones (e.g. a long Thursday before Christmas).
    Special(Vec<Window>),
}

/// A location's opening calendar.
#[derive(Clone, Debug)]
pub struct Calendar {
    pub tz: Tz,
    pub weekly: Vec<(Weekday, Window)>,
    pub overrides: BTreeMap<NaiveDate, DayOverride>,
}

/// How a service is booked at a location.
#[derive(Clone, Copy, Debug)]
pub struct Offer {
    pub duration: Duration,
    /// Time kept free after each appointment (paperwork, next citizen).
    pub buffer: Duration,
    /// How late one may book: at least this long before the start.
    pub min_notice: Duration,
    /// How far ahead one may book.
    pub horizon: Duration,
}

impl Offer {
    fn step(&self) -> Duration {
        self.duration + self.buffer
    }
}

/// A counter or desk that serves `capacity` citizens at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    pub id: Uuid,
    pub capacity: u32,
}

/// A booking that occupies a resource over `[start, end)` (end includes the buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy {
    pub resource: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A bookable slot and how many more citizens it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub remaining: u32,
}

/// Longest range one availability query may span (a month view plus margin).
pub const MAX_RANGE_DAYS: i64 = 62;

impl Calendar {
    /// The opening windows of a local date.
    pub fn windows_on(&self, date: NaiveDate) -> Vec<Window> {
        match self.overrides.get(&date) {
            Some(DayOverride::Closed) => Vec::new(),
            Some(DayOverride::Special(w)) => w.clone(),
            None => self
                .weekly
                .iter()
                .filter(|(d, _)| *d == date.weekday())
                .map(|(_, w)| *w)
                .collect(),
        }
    }

    /// The instant of a local wall-clock time: the first one if it occurs twice, none in a gap.
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&date.and_time(time)) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    }

    /// Slot starts (with their ends) of `offer` on a local date, in order.
    fn grid_on(&self, date: NaiveDate, offer: &Offer) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        let step = offer.step();
        if step <= Duration::zero() {
            return out;
        }
        for w in self.windows_on(date) {
            let mut t = date.and_time(w.opens);
            let closes = date.and_time(w.closes);
            while t + offer.duration <= closes {
                if let Some(start) = self.instant(date, t.time()) {
                    out.push((start, start + offer.duration));
                }
                t += step;
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether `start` is a slot of `offer` (on the grid, open, not in a gap).
    pub fn offers(&self, offer: &Offer, start: DateTime<Utc>) -> bool {
        let date = start.with_timezone(&self.tz).date_naive();
        self.grid_on(date, offer).iter().any(|(s, _)| *s == start)
    }

    /// All slot starts of `offer` in `[from, to)`.
    pub fn grid(
        &self,
        offer: &Offer,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        // One local day either side: a UTC range starts and ends mid-local-day.
        let mut date = from.with_timezone(&self.tz).date_naive() - Duration::days(1);
        let last = to.with_timezone(&self.tz).date_naive() + Duration::days(1);
        while date <= last {
            out.extend(
                self.grid_on(date, offer)
                    .into_iter()
                    .filter(|(s, _)| *s >= from && *s < to),
            );
            date += Duration::days(1);
        }
        out.sort();
        out.dedup();
        out
    }
}

fn overlaps(busy: &Busy, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    busy.start < end && start < busy.end
}

/// Room left on one resource over `[start, end)`.
fn room(resource: &Resource, busy: &[Busy], start: DateTime<Utc>, end: DateTime<Utc>) -> u32 {
    let taken = busy
        .iter()
        .filter(|b| b.resource == resource.id && overlaps(b, start, end))
        .count();
    resource
        .capacity
        .saturating_sub(u32::try_from(taken).unwrap_or(u32::MAX))
}

/// The first resource with room for an appointment blocking `[start, end)`.
pub fn free_resource(
    resources: &[Resource],
    busy: &[Busy],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<Uuid> {
    resources
        .iter()
        .find(|r| room(r, busy, start, end) > 0)
        .map(|r| r.id)
}

/// Whether `start` may be booked now: late enough notice, not beyond the horizon.
pub fn bookable_at(offer: &Offer, start: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    start >= now + offer.min_notice && start <= now + offer.horizon
}

/// The slots of `offer` in `[from, to)` that can be booked at `now`, with their remaining
/// capacity (full slots included, with 0, so a calendar can show them).
pub fn available(
    calendar: &Calendar,
    offer: &Offer,
    resources: &[Resource],
    busy: &[Busy],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Slot> {
    calendar
        .grid(offer, from, to)
        .into_iter()
        .filter(|(start, _)| bookable_at(offer, *start, now))
        .map(|(start, end)| {
            let blocked = end + offer.buffer;
            Slot {
                start,
                end,
                remaining: resources
                    .iter()
                    .map(|r| room(r, busy, start, blocked))
                    .sum(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    /// Bürgerbüro: Mon–Fri 08:00–12:00, Thu also 14:00–18:00.
    fn berlin() -> Calendar {
        let morning = Window {
            opens: t(8, 0),
            closes: t(12, 0),
        };
        let mut weekly: Vec<(Weekday, Window)> = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ]
        .into_iter()
        .map(|wd| (wd, morning))
        .collect();
        weekly.push((
            Weekday::Thu,
            Window {
                opens: t(14, 0),
                closes: t(18, 0),
            },
        ));
        Calendar {
            tz: chrono_tz::Europe::Berlin,
            weekly,
            overrides: BTreeMap::new(),
        }
    }

    fn offer(minutes: i64, buffer: i64) -> Offer {
        Offer {
            duration: Duration::minutes(minutes),
            buffer: Duration::minutes(buffer),
            min_notice: Duration::hours(2),
            horizon: Duration::days(60),
        }
    }

    fn local(c: &Calendar, s: DateTime<Utc>) -> String {
        s.with_timezone(&c.tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    fn utc(y: i32, m: u32, day: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, day, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn a_day_has_its_windows_on_the_local_grid() {
        let c = berlin();
        // Tuesday 2026-11-24: 08:00–12:00 in 30+10 minute steps: 08:00, 08:40, …, 11:20.
        let grid = c.grid(&offer(30, 10), utc(2026, 11, 23, 23), utc(2026, 11, 24, 23));
        let times: Vec<String> = grid.iter().map(|(s, _)| local(&c, *s)).collect();
        assert_eq!(
            times.first().map(String::as_str),
            Some("2026-11-24 08:00 CET")
        );
        assert_eq!(
            times.last().map(String::as_str),
            Some("2026-11-24 11:20 CET")
        );
        assert_eq!(times.len(), 6);
        // Thursday has the afternoon too.
        assert_eq!(
            c.grid(&offer(30, 0), utc(2026, 11, 25, 23), utc(2026, 11, 26, 23))
                .len(),
            16
        );
        // Saturday: closed.
        assert!(
            c.grid(&offer(30, 0), utc(2026, 11, 27, 23), utc(2026, 11, 28, 23))
                .is_empty()
        );
    }

    #[test]
    fn nine_oclock_is_nine_oclock_on_both_sides_of_the_dst_switches() {
        let c = berlin();
        let o = offer(60, 0);
        // Spring forward: Friday 2026-03-27 (CET, UTC+1) and Monday 2026-03-30 (CEST, UTC+2).
        let before = c.grid(&o, utc(2026, 3, 26, 23), utc(2026, 3, 27, 23));
        let after = c.grid(&o, utc(2026, 3, 29, 22), utc(2026, 3, 30, 22));
        assert_eq!(before[1].0, utc(2026, 3, 27, 8));
        assert_eq!(after[1].0, utc(2026, 3, 30, 7));
        assert_eq!(local(&c, after[1].0), "2026-03-30 09:00 CEST");
        // Fall back: Friday 2026-10-23 (CEST) and Monday 2026-10-26 (CET).
        let before = c.grid(&o, utc(2026, 10, 22, 22), utc(2026, 10, 23, 22));
        let after = c.grid(&o, utc(2026, 10, 25, 23), utc(2026, 10, 26, 23));
        assert_eq!(before[1].0, utc(2026, 10, 23, 7));
        assert_eq!(after[1].0, utc(2026, 10, 26, 8));
        // A month of slots around the switch: every one at a whole local hour.
        for (s, e) in c.grid(&o, utc(2026, 3, 1, 0), utc(2026, 4, 15, 0)) {
            assert_eq!(s.with_timezone(&c.tz).format("%M").to_string(), "00");
            assert_eq!(e - s, Duration::hours(1));
        }
    }

    #[test]
    fn night_hours_skip_the_gap_and_count_the_repeated_hour_once() {
        // A 24-hour service (e.g. an emergency desk) with hourly slots.
        let c = Calendar {
            tz: chrono_tz::Europe::Berlin,
            weekly: [Weekday::Sun]
                .into_iter()
                .map(|wd| {
                    (
                        wd,
                        Window {
                            opens: t(0, 0),
                            closes: t(23, 59),
                        },
                    )
                })
                .collect(),
            overrides: BTreeMap::new(),
        };
        let o = offer(60, 0);
        // 2026-03-29: 02:00 does not exist — 22 slots (00..23 without 02 and the cut-off 23:00).
        let spring = c.grid(&o, utc(2026, 3, 28, 22), utc(2026, 3, 29, 22));
        assert_eq!(spring.len(), 22);
        assert!(
            spring
                .iter()
                .all(|(s, _)| s.with_timezone(&c.tz).format("%H").to_string() != "02")
        );
        assert!(
            c.offers(&o, utc(2026, 3, 29, 1)),
            "03:00 CEST, the hour after the gap"
        );
        // 2026-10-25: 02:00 exists twice — offered once, at the first (CEST) occurrence.
        let fall = c.grid(&o, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23));
        assert_eq!(fall.len(), 23);
        assert!(fall.iter().any(|(s, _)| *s == utc(2026, 10, 25, 0)));
        assert!(!fall.iter().any(|(s, _)| *s == utc(2026, 10, 25, 1)));
    }

    #[test]
    fn holidays_closures_and_special_hours_replace_the_week() {
        let mut c = berlin();
        let o = offer(30, 0);
        c.overrides.insert(d(2026, 12, 24), DayOverride::Closed);
        c.overrides.insert(
            d(2026, 12, 23),
            DayOverride::Special(vec![Window {
                opens: t(10, 0),
                closes: t(11, 0),
            }]),
        );
        assert!(
            c.grid(&o, utc(2026, 12, 23, 23), utc(2026, 12, 24, 23))
                .is_empty()
        );
        let special = c.grid(&o, utc(2026, 12, 22, 23), utc(2026, 12, 23, 23));
        let times: Vec<String> = special.iter().map(|(s, _)| local(&c, *s)).collect();
        assert_eq!(times, ["2026-12-23 10:00 CET", "2026-12-23 10:30 CET"]);
        // Special hours may open a day that is normally closed (a Saturday).
        c.overrides.insert(
            d(2026, 12, 19),
            DayOverride::Special(vec![Window {
                opens: t(9, 0),
                closes: t(10, 0),
            }]),
        );
        assert_eq!(
            c.grid(&o, utc(2026, 12, 18, 23), utc(2026, 12, 19, 23))
                .len(),
            2
        );
    }

    #[test]
    fn notice_horizon_and_capacity_shape_what_is_available() {
        let c = berlin();
        let o = offer(30, 0);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let resources = [
            Resource { id: a, capacity: 2 },
            Resource { id: b, capacity: 1 },
        ];
        let now = utc(2026, 11, 24, 7); // 08:00 local on Tuesday
        let nine = utc(2026, 11, 24, 8);
        let busy = [
            Busy {
                resource: a,
                start: nine,
                end: nine + Duration::minutes(30),
            },
            Busy {
                resource: a,
                start: nine,
                end: nine + Duration::minutes(30),
            },
        ];
        let slots = available(
            &c,
            &o,
            &resources,
            &busy,
            utc(2026, 11, 24, 0),
            utc(2026, 11, 25, 0),
            now,
        );
        // Two hours' notice: the first slot is 10:00 local; 09:00 is gone even though it was
        // on the grid.
        assert_eq!(slots.first().map(|s| s.start), Some(utc(2026, 11, 24, 9)));
        assert!(slots.iter().all(|s| s.remaining == 3));
        // At 06:00 local the 09:00 slot is bookable, with one place left (on `b`).
        let early = available(
            &c,
            &o,
            &resources,
            &busy,
            nine,
            nine + Duration::minutes(1),
            utc(2026, 11, 24, 5),
        );
        assert_eq!(
            early,
            [Slot {
                start: nine,
                end: nine + Duration::minutes(30),
                remaining: 1
            }]
        );
        assert_eq!(
            free_resource(&resources, &busy, nine, nine + Duration::minutes(30)),
            Some(b)
        );
        // Beyond the horizon: nothing.
        let far = now + Duration::days(61);
        assert!(available(&c, &o, &resources, &[], far, far + Duration::days(1), now).is_empty());
    }

    #[test]
    fn a_buffer_keeps_the_next_slot_free_on_the_same_resource() {
        let c = berlin();
        let o = offer(20, 10);
        let r = Uuid::new_v4();
        let resources = [Resource { id: r, capacity: 1 }];
        let eight = utc(2026, 11, 24, 7);
        // Booked 08:00–08:20 plus 10 minutes buffer: blocks until 08:30, the next slot's start.
        let busy = [Busy {
            resource: r,
            start: eight,
            end: eight + Duration::minutes(30),
        }];
        let slots = available(
            &c,
            &o,
            &resources,
            &busy,
            eight,
            eight + Duration::hours(1),
            utc(2026, 11, 23, 0),
        );
        let remaining: Vec<u32> = slots.iter().map(|s| s.remaining).collect();
        assert_eq!(remaining, [0, 1]);
    }

    proptest! {
        /// Whatever the hours, bookings and range: slots are sorted, unique, inside opening
        /// hours in local time, on the grid, and never have negative or excess capacity.
        #[test]
        fn slots_respect_hours_and_capacity(
            opens in 0u32..20,
            len in 1u32..10,
            minutes in 5i64..120,
            buffer in 0i64..30,
            start_day in 0i64..400,
            span in 1i64..40,
            cap in 1u32..4,
            booked in prop::collection::vec((0i64..(40 * 24 * 4), 1i64..8), 0..30),
        ) {
            let closes = (opens + len).min(23);
            let c = Calendar {
                tz: chrono_tz::Europe::Berlin,
                weekly: [Weekday::Mon, Weekday::Wed, Weekday::Sat, Weekday::Sun]
                    .into_iter()
                    .map(|wd| (wd, Window { opens: t(opens, 0), closes: t(closes, 30) }))
                    .collect(),
                overrides: BTreeMap::new(),
            };
            let o = Offer { duration: Duration::minutes(minutes), buffer: Duration::minutes(buffer), min_notice: Duration::zero(), horizon: Duration::days(1000) };
            let from = utc(2026, 1, 1, 0) + Duration::days(start_day);
            let to = from + Duration::days(span);
            let r = Uuid::new_v4();
            let busy: Vec<Busy> = booked.iter().map(|(q, n)| {
                let s = from + Duration::minutes(15 * q);
                Busy { resource: r, start: s, end: s + Duration::minutes(15 * n) }
            }).collect();
            let slots = available(&c, &o, &[Resource { id: r, capacity: cap }], &busy, from, to, from);
            for pair in slots.windows(2) {
                prop_assert!(pair[0].start < pair[1].start);
            }
            for s in &slots {
                prop_assert!(s.start >= from && s.start < to);
                prop_assert!(s.remaining <= cap);
                prop_assert_eq!(s.end - s.start, o.duration);
                let l = s.start.with_timezone(&c.tz);
                prop_assert!(l.time() >= t(opens, 0));
                prop_assert!(c.offers(&o, s.start));
                let steps = (l.time() - t(opens, 0)).num_minutes();
                prop_assert_eq!(steps % (minutes + buffer), 0);
            }
        }
    }
}
