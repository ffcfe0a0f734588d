//! Appointments: locations and offers, availability across DST and holidays, bookings that never
//! overbook under concurrency, cancellation by token, isolation.

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use serde_json::{Value, json};

use crate::helpers::*;

const SAVE: &str = "mutation($i: SaveLocationInput!) { saveLocation(input: $i) { location { id key timeZone resources { key capacity } } } }";
const OFFER: &str = "mutation($i: SetAppointmentOfferInput!) { setAppointmentOffer(input: $i) { offer { durationMinutes minNoticeMinutes horizonDays } } }";
const SLOTS: &str = "query($s: String!, $l: ID!, $f: DateTime!, $t: DateTime!) { availableSlots(serviceSlug: $s, locationId: $l, from: $f, to: $t) { start end remaining } }";
const BOOK: &str = "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { cancelToken booking { id start end state resourceId } } }";
const CANCEL: &str =
    "mutation($i: CancelBookingInput!) { cancelBooking(input: $i) { booking { state } } }";

/// Musterstadt's Rathaus: every day 08:00–18:00 in Berlin, one counter for `capacity`, closed on
/// Christmas Eve, short hours on New Year's Eve; the dog tax bookable there in 30-minute slots
/// up to a year ahead. Returns the location id.
async fn rathaus(app: &TestApp, admin: &Session, capacity: i32) -> String {
    let hours: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| json!({ "weekday": d, "opens": "08:00", "closes": "18:00" }))
        .collect();
    let resp = app
        .caller(MUSTER, admin)
        .gql(
            SAVE,
            json!({ "i": {
                "key": "rathaus", "name": "Rathaus Musterstadt", "address": "Marktplatz 1",
                "timeZone": "Europe/Berlin",
                "resources": [{ "key": "schalter-1", "name": "Schalter 1", "capacity": capacity }],
                "hours": hours,
                "exceptions": [
                    { "date": "2026-12-24", "closed": true, "reason": "Heiligabend" },
                    { "date": "2026-12-31", "hours": [{ "opens": "09:00", "closes": "12:00" }] }
                ]
            } }),
        )
        .await;
    let id = str_at(&data(&resp)["saveLocation"]["location"], "id");
    let resp = app
        .caller(MUSTER, admin)
        .gql(
            OFFER,
            json!({ "i": { "serviceSlug": "hundesteuer", "locationId": id, "durationMinutes": 30,
                           "minNoticeMinutes": 0, "horizonDays": 366 } }),
        )
        .await;
    assert_eq!(
        data(&resp)["setAppointmentOffer"]["offer"]["durationMinutes"],
        30
    );
    id
}

/// 10:00 in Berlin, `days` from today.
fn ten_oclock_in(days: i64) -> DateTime<Utc> {
    let date = (Utc::now() + Duration::days(days))
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    berlin(date, 10)
}

fn berlin(date: NaiveDate, hour: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Berlin
        .from_local_datetime(&date.and_hms_opt(hour, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

async fn slots(
    app: &TestApp,
    location: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Value> {
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            SLOTS,
            json!({ "s": "hundesteuer", "l": location, "f": from, "t": to }),
        )
        .await;
    data(&resp)["availableSlots"].as_array().unwrap().clone()
}

async fn book(app: &TestApp, location: &str, start: DateTime<Utc>, email: &str) -> Value {
    app.gql(
        Some(MUSTER),
        None,
        BOOK,
        json!({ "i": { "serviceSlug": "hundesteuer", "locationId": location, "start": start,
                       "contact": { "name": "Erika Mustermann", "email": email } } }),
    )
    .await
}

fn local_times(slots: &[Value]) -> Vec<String> {
    slots
        .iter()
        .map(|s| {
            DateTime::parse_from_rfc3339(s["start"].as_str().unwrap())
                .unwrap()
                .with_timezone(&chrono_tz::Europe::Berlin)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn availability_follows_local_time_across_dst_holidays_and_special_hours() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 2).await;
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();

    // Friday before and Monday after the spring switch (2027-03-28): the first slot is 08:00 in
    // Berlin both times, i.e. 07:00Z in winter and 06:00Z in summer.
    for (date, first_utc) in [(d(2027, 3, 26), "07:00"), (d(2027, 3, 29), "06:00")] {
        let day = slots(&app, &rathaus, berlin(date, 0), berlin(date, 23)).await;
        assert_eq!(day.len(), 20, "08:00–18:00 in 30-minute slots");
        assert!(
            day[0]["start"]
                .as_str()
                .unwrap()
                .contains(&format!("T{first_utc}:00")),
            "{day:?}"
        );
        assert_eq!(
            local_times(&day)[0],
            format!(
                "{date} 08:00 {}",
                if first_utc == "07:00" { "CET" } else { "CEST" }
            )
        );
        assert!(day.iter().all(|s| s["remaining"] == 2));
    }
    // Christmas Eve closed; New Year's Eve 09:00–12:00 only.
    assert!(
        slots(
            &app,
            &rathaus,
            berlin(d(2026, 12, 24), 0),
            berlin(d(2026, 12, 24), 23)
        )
        .await
        .is_empty()
    );
    let nye = local_times(
        &slots(
            &app,
            &rathaus,
            berlin(d(2026, 12, 31), 0),
            berlin(d(2026, 12, 31), 23),
        )
        .await,
    );
    assert_eq!(nye.first().unwrap(), "2026-12-31 09:00 CET");
    assert_eq!(nye.last().unwrap(), "2026-12-31 11:30 CET");
    assert_eq!(nye.len(), 6);
    // Beyond the horizon (366 days): nothing; more than 62 days at once: refused.
    let far = Utc::now() + Duration::days(400);
    assert!(
        slots(&app, &rathaus, far, far + Duration::days(7))
            .await
            .is_empty()
    );
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            SLOTS,
            json!({ "s": "hundesteuer", "l": rathaus, "f": far, "t": far + Duration::days(90) }),
        )
        .await;
    assert_code(&resp, "VALIDATION_FAILED");
}

#[tokio::test]
async fn concurrent_bookings_never_exceed_capacity() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 3).await;
    let start = ten_oclock_in(7);
    let attempts = (0..200).map(|i| {
        let (app, rathaus) = (&app, &rathaus);
        async move {
            let (status, body) = app
                .gql_raw(
                    Some(MUSTER),
                    None,
                    BOOK,
                    json!({ "i": { "serviceSlug": "hundesteuer", "locationId": rathaus, "start": start,
                                   "contact": { "name": format!("Person {i}"), "email": format!("p{i}@example.org") } } }),
                )
                .await;
            assert!(status < 500, "{status}: {body}");
            body
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let booked = results.iter().filter(|r| r["errors"].is_null()).count();
    let full = results
        .iter()
        .filter(|r| r["errors"][0]["extensions"]["code"] == "SLOT_FULL")
        .count();
    assert_eq!((booked, full), (3, 197));
    let left = slots(&app, &rathaus, start, start + Duration::minutes(1)).await;
    assert_eq!(left[0]["remaining"], 0);
}

#[tokio::test]
async fn bookings_are_checked_cancelled_by_token_and_isolated() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 1).await;
    let start = ten_oclock_in(3);

    // Not a slot: off the grid, in the past, on a closed day.
    assert_code(
        &book(
            &app,
            &rathaus,
            start + Duration::minutes(7),
            "a@example.org",
        )
        .await,
        "SLOT_FULL",
    );
    assert_code(
        &book(&app, &rathaus, ten_oclock_in(-1), "a@example.org").await,
        "SLOT_FULL",
    );
    let eve = berlin(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap(), 10);
    if eve > Utc::now() {
        assert_code(
            &book(&app, &rathaus, eve, "a@example.org").await,
            "SLOT_FULL",
        );
    }
    assert_code(
        &book(&app, &rathaus, start, "keine-adresse").await,
        "VALIDATION_FAILED",
    );

    let resp = book(&app, &rathaus, start, "Erika@Example.org ").await;
    let first = data(&resp)["bookAppointment"].clone();
    assert_eq!(first["booking"]["state"], "booked");
    let (id, token) = (
        str_at(&first["booking"], "id"),
        str_at(&first, "cancelToken"),
    );
    // The slot (capacity 1) is full; the same contact may hold one open booking per service.
    assert_code(
        &book(&app, &rathaus, start, "b@example.org").await,
        "SLOT_FULL",
    );
    assert_code(
        &book(
            &app,
            &rathaus,
            start + Duration::hours(1),
            "erika@example.org",
        )
        .await,
        "CONFLICT",
    );
    let other = book(&app, &rathaus, start + Duration::hours(1), "b@example.org").await;
    let other = data(&other)["bookAppointment"].clone();

    // Cancelling needs this booking's own token, in this tenant.
    let cancel = |id: &str, token: &str| json!({ "i": { "id": id, "token": token } });
    assert_code(
        &app.gql(
            Some(MUSTER),
            None,
            CANCEL,
            cancel(&id, &str_at(&other, "cancelToken")),
        )
        .await,
        "NOT_FOUND",
    );
    assert_code(
        &app.gql(Some(BEISPIEL), None, CANCEL, cancel(&id, &token))
            .await,
        "NOT_FOUND",
    );
    let resp = app
        .gql(Some(MUSTER), None, CANCEL, cancel(&id, &token))
        .await;
    assert_eq!(
        data(&resp)["cancelBooking"]["booking"]["state"],
        "cancelled"
    );
    assert_code(
        &app.gql(Some(MUSTER), None, CANCEL, cancel(&id, &token))
            .await,
        "CONFLICT",
    );
    // The place is free again.
    assert_eq!(
        slots(&app, &rathaus, start, start + Duration::minutes(1)).await[0]["remaining"],
        1
    );
    data(&book(&app, &rathaus, start, "c@example.org").await);

    // Other municipalities see neither the location nor its slots.
    let resp = app
        .gql(
            Some(BEISPIEL),
            None,
            SLOTS,
            json!({ "s": "hundesteuer", "l": rathaus, "f": start, "t": start + Duration::days(1) }),
        )
        .await;
    assert_code(&resp, "NOT_FOUND");
    let resp = app
        .gql(Some(BEISPIEL), None, "{ locations { key } }", json!({}))
        .await;
    assert_eq!(data(&resp)["locations"], json!([]));
}

#[tokio::test]
async fn only_administrators_define_locations_and_bad_calendars_name_their_fields() {
    let app = spawn_app().await;
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let location = json!({ "i": {
        "key": "buero", "name": "Büro", "timeZone": "Europe/Berlin",
        "resources": [{ "key": "a", "name": "A", "capacity": 1 }],
        "hours": [{ "weekday": "mon", "opens": "08:00", "closes": "12:00" }]
    } });
    assert_code(
        &app.caller(MUSTER, &staff).gql(SAVE, location).await,
        "FORBIDDEN",
    );
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            SAVE,
            json!({ "i": {
                "key": "buero", "name": "Büro", "timeZone": "Mars/Olympus",
                "resources": [{ "key": "a", "name": "A", "capacity": 0 }],
                "hours": [{ "weekday": "montag", "opens": "12:00", "closes": "08:00" }],
                "exceptions": [{ "date": "2026-12-24" }]
            } }),
        )
        .await;
    assert_code(&resp, "VALIDATION_FAILED");
    let fields = resp["errors"][0]["extensions"]["fields"]
        .as_object()
        .unwrap();
    for f in [
        "input.timeZone",
        "input.resources.0.capacity",
        "input.hours.0.weekday",
        "input.hours.0.closes",
        "input.exceptions.0.hours",
    ] {
        assert!(fields.contains_key(f), "{f} in {fields:?}");
    }
    let resp = app
        .gql(Some(MUSTER), None, "{ locations { key } }", json!({}))
        .await;
    assert_eq!(data(&resp)["locations"], json!([]));
}
