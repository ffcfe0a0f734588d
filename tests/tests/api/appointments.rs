//! Appointments: locations and offers, availability across DST and holidays, bookings that never
//! overbook under concurrency, cancellation by token, isolation.

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, TimeZone as _, Utc};
use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) const SAVE: &str = "mutation($i: SaveLocationInput!) { saveLocation(input: $i) { location { id key timeZone resources { key capacity } } } }";
pub(crate) const OFFER: &str = "mutation($i: SetAppointmentOfferInput!) { setAppointmentOffer(input: $i) { offer { durationMinutes minNoticeMinutes horizonDays } } }";
pub(crate) const SLOTS: &str = "query($s: String!, $l: ID!, $f: DateTime!, $t: DateTime!) { availableSlots(serviceSlug: $s, locationId: $l, from: $f, to: $t) { start end remaining } }";
pub(crate) const BOOK: &str = "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { cancelToken icsUrl booking { id start end state resourceId } } }";
pub(crate) const CANCEL: &str =
    "mutation($i: CancelBookingInput!) { cancelBooking(input: $i) { booking { state } } }";

/// Musterstadt's Rathaus: every day 08:00–18:00 in Berlin, one counter for `capacity`, closed on
/// a holiday, short hours on the day after; the dog tax bookable there in 30-minute slots up to a
/// year ahead. Returns the location id.
pub(crate) async fn rathaus(app: &TestApp, admin: &Session, capacity: i32) -> String {
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
                    { "date": holiday(), "closed": true, "reason": "Heiligabend" },
                    { "date": short_day(), "hours": [{ "opens": "09:00", "closes": "12:00" }] }
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

/// Berlin's date `days` from today.
fn berlin_date_in(days: i64) -> NaiveDate {
    (Utc::now() + Duration::days(days))
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive()
}

/// The Rathaus's closed day. Computed from today, like every date of these tests: a fixed date
/// passes by, and then its check proves nothing (past slots are dropped) or fails.
/// Three weeks ahead, but not on the Friday to Monday around the next switch of summer time,
/// whose usual hours the DST check needs.
pub(crate) fn holiday() -> NaiveDate {
    let switch = next_dst_switch();
    let around_switch = switch - Duration::days(2)..=switch + Duration::days(1);
    let mut day = berlin_date_in(20);
    while around_switch.contains(&day) || around_switch.contains(&(day + Duration::days(1))) {
        day += Duration::days(1);
    }
    day
}

/// The Rathaus's day of short hours (09:00–12:00): the day after the holiday.
pub(crate) fn short_day() -> NaiveDate {
    holiday() + Duration::days(1)
}

/// The Sunday of the next switch between winter and summer time in Berlin, at least three days
/// ahead (so that the Friday before is still to come).
fn next_dst_switch() -> NaiveDate {
    let offset = |d: NaiveDate| {
        use chrono::Offset as _;
        berlin(d, 12)
            .with_timezone(&chrono_tz::Europe::Berlin)
            .offset()
            .fix()
    };
    (3..400)
        .map(berlin_date_in)
        .find(|d| offset(*d) != offset(*d - Duration::days(1)))
        .expect("Berlin switches within a year")
}

/// 10:00 in Berlin, `days` from today.
pub(crate) fn ten_oclock_in(days: i64) -> DateTime<Utc> {
    berlin(berlin_date_in(days), 10)
}

fn berlin(date: NaiveDate, hour: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Berlin
        .from_local_datetime(&date.and_hms_opt(hour, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

pub(crate) async fn slots(
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

pub(crate) async fn book(
    app: &TestApp,
    location: &str,
    start: DateTime<Utc>,
    email: &str,
) -> Value {
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

    // Friday before and Monday after the next switch: the first slot is 08:00 in Berlin both
    // times, i.e. 07:00Z in winter and 06:00Z in summer.
    let switch = next_dst_switch();
    assert_eq!(switch.weekday(), chrono::Weekday::Sun, "{switch}");
    let (friday, monday) = (switch - Duration::days(2), switch + Duration::days(1));
    let (winter, summer) = ("07:00", "06:00");
    let days = match switch.month() {
        3 => [(friday, winter), (monday, summer)],
        10 => [(friday, summer), (monday, winter)],
        m => panic!("Berlin switches in March and October, not in month {m}"),
    };
    for (date, first_utc) in days {
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
    // The holiday closed, the day after 09:00–12:00 only, the day before open as usual.
    let whole_day = |d: NaiveDate| (berlin(d, 0), berlin(d, 23));
    let (from, to) = whole_day(holiday() - Duration::days(1));
    assert_eq!(slots(&app, &rathaus, from, to).await.len(), 20);
    let (from, to) = whole_day(holiday());
    assert!(slots(&app, &rathaus, from, to).await.is_empty());
    let (from, to) = whole_day(short_day());
    let short = local_times(&slots(&app, &rathaus, from, to).await);
    assert!(
        short
            .first()
            .unwrap()
            .starts_with(&format!("{} 09:00 ", short_day())),
        "{short:?}"
    );
    assert!(
        short
            .last()
            .unwrap()
            .starts_with(&format!("{} 11:30 ", short_day())),
        "{short:?}"
    );
    assert_eq!(short.len(), 6);
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

/// A taken slot is refused without waiting for the location's lock (the crowd asking for a full
/// slot never queues behind bookings in progress); a free slot waits for it and is booked.
// SQLite has no row locks; its write transactions queue as a whole.
#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL only")]
async fn a_full_slot_is_refused_without_queueing_on_the_location_lock() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 1).await;
    let (full, free) = (ten_oclock_in(4), ten_oclock_in(4) + Duration::minutes(30));
    assert!(book(&app, &rathaus, full, "first@example.org").await["errors"].is_null());

    // Another transaction (a booking in progress) holds the location's resources.
    let owner = Database::connect(&app.db_url).await.unwrap();
    let lock = owner.begin().await.unwrap();
    lock.execute_unprepared(&format!(
        "SELECT id FROM booking_resources WHERE location_id = '{rathaus}' FOR UPDATE"
    ))
    .await
    .unwrap();
    let holder: i32 = lock
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "pid")
        .unwrap();

    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        book(&app, &rathaus, full, "second@example.org"),
    )
    .await
    .expect("a full slot must be refused while the location is locked");
    assert_code(&refused, "SLOT_FULL");

    let waiting = tokio::spawn({
        let (base, client, rathaus) = (app.base_url.clone(), app.client.clone(), rathaus.clone());
        async move {
            client
                .post(format!("{base}/graphql"))
                .header("X-Tenant", MUSTER)
                .json(&json!({ "query": BOOK, "variables": { "i": {
                    "serviceSlug": "hundesteuer", "locationId": rathaus, "start": free,
                    "contact": { "name": "Erika Mustermann", "email": "third@example.org" } } } }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    // Proof that the booking waits for the lock: PostgreSQL names the holder's backend among
    // the blockers of another session of this database.
    let mut blocked = 0;
    for _ in 0..200 {
        blocked = owner
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND {holder} = ANY(pg_blocking_pids(pid))"
                ),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        if blocked > 0 || waiting.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        blocked, 1,
        "the booking of a free slot waits on the location's lock"
    );
    assert!(
        !waiting.is_finished(),
        "a free slot is booked only under the lock"
    );
    lock.rollback().await.unwrap();
    let booked = waiting.await.unwrap();
    assert!(booked["errors"].is_null(), "{booked}");
    assert_eq!(count_where(&app, "bookings", "state = 'booked'").await, 2);
}

#[tokio::test]
async fn saving_a_location_again_by_key_replaces_it_and_matches_counters_by_key() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let save = |name: &str, resources: Value, opens: &str| {
        json!({ "i": {
            "key": "stadtteilbuero", "name": name, "address": "Am Markt 2", "timeZone": "Europe/Berlin",
            "resources": resources,
            "hours": [{ "weekday": "mon", "opens": opens, "closes": "12:00" }],
            "exceptions": []
        } })
    };
    let query = "mutation($i: SaveLocationInput!) { saveLocation(input: $i) { location { id key name hours resources { id key name capacity } } } }";
    let c = app.caller(MUSTER, &admin);
    let first = c
        .gql(
            query,
            save(
                "Stadtteilbüro",
                json!([{ "key": "schalter-a", "name": "Schalter A", "capacity": 1 },
                       { "key": "schalter-b", "name": "Schalter B", "capacity": 2 }]),
                "08:00",
            ),
        )
        .await;
    let first = data(&first)["saveLocation"]["location"].clone();
    let resource = |l: &Value, key: &str| {
        l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .cloned()
    };
    let a_id = str_at(&resource(&first, "schalter-a").unwrap(), "id");

    // The same key again: the same location, its definition replaced; counter `schalter-a`
    // kept (same id, new capacity), `schalter-b` no longer listed, `schalter-c` new.
    let second = c
        .gql(
            query,
            save(
                "Stadtteilbüro Nord",
                json!([{ "key": "schalter-a", "name": "Schalter A", "capacity": 3 },
                       { "key": "schalter-c", "name": "Schalter C", "capacity": 1 }]),
                "09:00",
            ),
        )
        .await;
    let second = data(&second)["saveLocation"]["location"].clone();
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["name"], "Stadtteilbüro Nord");
    assert_eq!(second["hours"][0]["opens"], "09:00");
    assert_eq!(second["hours"].as_array().unwrap().len(), 1);
    let a = resource(&second, "schalter-a").unwrap();
    assert_eq!((str_at(&a, "id"), a["capacity"].clone()), (a_id, json!(3)));
    assert!(resource(&second, "schalter-b").is_none(), "{second:#}");
    assert_eq!(resource(&second, "schalter-c").unwrap()["capacity"], 1);

    // Stored: one location of that key, `schalter-b` kept but inactive (its bookings stay valid).
    assert_eq!(
        count_where(&app, "locations", "key = 'stadtteilbuero'").await,
        1
    );
    let of_location = "location_id IN (SELECT id FROM locations WHERE key = 'stadtteilbuero')";
    assert_eq!(count_where(&app, "booking_resources", of_location).await, 3);
    let inactive = if app.is_postgres { "false" } else { "0" };
    assert_eq!(
        count_where(
            &app,
            "booking_resources",
            &format!("{of_location} AND key = 'schalter-b' AND active = {inactive}")
        )
        .await,
        1
    );
    // The public list shows the new definition.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "{ locations { key name resources { key capacity } } }",
            json!({}),
        )
        .await;
    let listed = data(&resp)["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == "stadtteilbuero")
        .cloned()
        .unwrap();
    assert_eq!(
        listed["resources"],
        json!([{ "key": "schalter-a", "capacity": 3 }, { "key": "schalter-c", "capacity": 1 }])
    );
}

#[tokio::test]
async fn an_offer_requiring_an_application_books_only_for_the_applicants_own_application() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 2).await;
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            "mutation($i: SetAppointmentOfferInput!) { setAppointmentOffer(input: $i) { offer { requiresApplication } } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "locationId": rathaus, "durationMinutes": 30,
                           "minNoticeMinutes": 0, "horizonDays": 366, "requiresApplication": true } }),
        )
        .await;
    assert_eq!(
        data(&resp)["setAppointmentOffer"]["offer"]["requiresApplication"],
        true
    );
    let start = ten_oclock_in(5);
    let book_for = |application: Option<&str>, token: Option<&str>| {
        app.gql(
            Some(MUSTER),
            None,
            BOOK,
            json!({ "i": { "serviceSlug": "hundesteuer", "locationId": rathaus, "start": start,
                           "contact": { "name": "Erika Mustermann", "email": "erika@example.org" },
                           "applicationId": application, "accessToken": token } }),
        )
    };

    // Without an application: refused, nothing stored.
    assert_field_error(
        &book_for(None, None).await,
        "input.applicationId",
        "after submitting the application",
    );
    assert_eq!(count_where(&app, "bookings", "1 = 1").await, 0);

    let submit = |slug: &str, form: Value| {
        app.gql(
            Some(MUSTER),
            None,
            "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id } } }",
            json!({ "i": { "serviceSlug": slug, "data": form } }),
        )
    };
    let resp = submit("hundesteuer", crate::applications::dog(false)).await;
    let p = &data(&resp)["submitApplication"];
    let (id, token) = (str_at(&p["application"], "id"), str_at(p, "accessToken"));
    let resp = submit(
        "meldebescheinigung",
        json!({ "name": "Max Mustermann", "birth_date": "1980-01-01", "street": "Hauptstraße 2",
                "postcode": "12345", "city": "Musterstadt", "kind": "einfach", "delivery": "post" }),
    )
    .await;
    let p = &data(&resp)["submitApplication"];
    let (other_id, other_token) = (str_at(&p["application"], "id"), str_at(p, "accessToken"));

    // Someone else's application (a wrong token, or none), or an application of another service.
    assert_code(&book_for(Some(&id), Some("geraten")).await, "NOT_FOUND");
    assert_code(&book_for(Some(&id), None).await, "UNAUTHENTICATED");
    assert_code(
        &book_for(Some(&other_id), Some(&other_token)).await,
        "NOT_FOUND",
    );
    assert_eq!(count_where(&app, "bookings", "1 = 1").await, 0);

    // The applicant's own application of this service: booked, and tied to it.
    let resp = book_for(Some(&id), Some(&token)).await;
    assert_eq!(data(&resp)["bookAppointment"]["booking"]["state"], "booked");
    assert_eq!(
        count_where(
            &app,
            "bookings",
            "application_id IN (SELECT id FROM applications WHERE service_slug = 'hundesteuer') AND state = 'booked'"
        )
        .await,
        1
    );
    assert_eq!(count_where(&app, "bookings", "1 = 1").await, 1);
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
    assert_code(
        &book(&app, &rathaus, berlin(holiday(), 10), "a@example.org").await,
        "SLOT_FULL",
    );
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
                "exceptions": [{ "date": holiday() }]
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
    // Nothing was saved (Musterstadt's only location is the demo office of its tenant file).
    let resp = app
        .gql(Some(MUSTER), None, "{ locations { key } }", json!({}))
        .await;
    assert_eq!(data(&resp)["locations"], json!([{ "key": "buergerbuero" }]));
}

pub(crate) const RESCHEDULE: &str = "mutation($i: RescheduleBookingInput!) { rescheduleBooking(input: $i) { booking { start state } } }";
pub(crate) const DAY: &str = "query($l: ID!, $d: NaiveDate!) { bookings(locationId: $l, date: $d) { id start state contactName contactEmail } }";

pub(crate) async fn booked(
    app: &TestApp,
    location: &str,
    start: DateTime<Utc>,
    email: &str,
) -> (String, String, String) {
    let resp = book(app, location, start, email).await;
    let p = &data(&resp)["bookAppointment"];
    (
        str_at(&p["booking"], "id"),
        str_at(p, "cancelToken"),
        str_at(p, "icsUrl"),
    )
}

#[tokio::test]
async fn rescheduling_keeps_the_old_slot_when_the_new_one_is_full_even_under_concurrency() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 1).await;
    let at = |h: i64| ten_oclock_in(5) + Duration::minutes(30 * h);
    let (a, a_token, _) = booked(&app, &rathaus, at(0), "a@example.org").await;
    let (b, b_token, _) = booked(&app, &rathaus, at(1), "b@example.org").await;
    let move_to = |id: &str, token: &str, start: DateTime<Utc>| json!({ "i": { "id": id, "token": token, "start": start } });

    // B to A's slot: full, B stays.
    assert_code(
        &app.gql(Some(MUSTER), None, RESCHEDULE, move_to(&b, &b_token, at(0)))
            .await,
        "SLOT_FULL",
    );
    // With another booking's token: not found.
    assert_code(
        &app.gql(Some(MUSTER), None, RESCHEDULE, move_to(&b, &a_token, at(2)))
            .await,
        "NOT_FOUND",
    );
    // A moves later; its old slot is free for B.
    let resp = app
        .gql(Some(MUSTER), None, RESCHEDULE, move_to(&a, &a_token, at(2)))
        .await;
    assert_eq!(
        data(&resp)["rescheduleBooking"]["booking"]["state"],
        "booked"
    );
    data(
        &app.gql(Some(MUSTER), None, RESCHEDULE, move_to(&b, &b_token, at(0)))
            .await,
    );

    // Ten bookings race for one free place: one moves, nine keep their slots.
    let mut racers = Vec::new();
    for i in 0..10 {
        racers.push(booked(&app, &rathaus, at(4 + i), &format!("r{i}@example.org")).await);
    }
    let target = at(3);
    let moves = racers.iter().map(|(id, token, _)| {
        let app = &app;
        async move {
            app.gql(Some(MUSTER), None, RESCHEDULE, move_to(id, token, target))
                .await
        }
    });
    let results = futures_util::future::join_all(moves).await;
    let moved = results.iter().filter(|r| r["errors"].is_null()).count();
    let full = results
        .iter()
        .filter(|r| r["errors"][0]["extensions"]["code"] == "SLOT_FULL")
        .count();
    assert_eq!((moved, full), (1, 9));
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let date = target
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    let resp = app
        .caller(MUSTER, &kasse)
        .gql(DAY, json!({ "l": rathaus, "d": date }))
        .await;
    let day = data(&resp)["bookings"].as_array().unwrap().clone();
    assert_eq!(day.len(), 12, "every booking once: {day:?}");
    let mut starts: Vec<&str> = day.iter().map(|b| b["start"].as_str().unwrap()).collect();
    starts.dedup();
    assert_eq!(
        starts.len(),
        12,
        "no two bookings share the single counter's slot: {day:?}"
    );
    assert!(day.iter().all(|b| {
        b["contactEmail"]
            .as_str()
            .unwrap()
            .ends_with("@example.org")
    }));

    // Citizens do not see the day list; staff mark no-shows only once the appointment began.
    assert_code(
        &app.gql(Some(MUSTER), None, DAY, json!({ "l": rathaus, "d": date }))
            .await,
        "UNAUTHENTICATED",
    );
    let resp = app
        .caller(MUSTER, &kasse)
        .gql(
            "mutation($i: MarkNoShowInput!) { markNoShow(input: $i) { booking { state } } }",
            json!({ "i": { "id": a } }),
        )
        .await;
    assert_code(&resp, "CONFLICT");
}

#[tokio::test]
async fn the_calendar_file_parses_and_shows_the_local_time() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 1).await;
    let start = ten_oclock_in(9);
    let (id, token, ics_url) = booked(&app, &rathaus, start, "erika@example.org").await;
    let resp = app.client.get(&ics_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let body = resp.text().await.unwrap();
    assert!(
        body.lines().all(|l| l.len() <= 76),
        "folded at 75 octets: {body}"
    );

    use icalendar::{Component as _, EventLike as _};
    let calendar: icalendar::Calendar = body.parse().expect("an iCalendar parser reads it");
    let event = calendar.events().next().expect("one event");
    let start_at = match event.get_start() {
        Some(icalendar::DatePerhapsTime::DateTime(icalendar::CalendarDateTime::Utc(t))) => t,
        other => panic!("start in UTC: {other:?}"),
    };
    assert_eq!(start_at, start);
    assert_eq!(
        start_at
            .with_timezone(&chrono_tz::Europe::Berlin)
            .format("%H:%M")
            .to_string(),
        "10:00"
    );
    assert!(event.get_summary().unwrap().contains("Stadt Musterstadt"));
    assert!(event.get_location().unwrap().contains("Marktplatz 1"));
    assert_eq!(event.get_uid(), Some(format!("{id}@amtsplatz").as_str()));

    // Another token, or another municipality: no file.
    let wrong = ics_url.replace(&urlencode(&token), "falsch");
    assert_ne!(wrong, ics_url);
    assert_eq!(app.client.get(&wrong).send().await.unwrap().status(), 404);
    let elsewhere = ics_url.replace("tenant=musterstadt", "tenant=beispielhausen");
    assert_eq!(
        app.client.get(&elsewhere).send().await.unwrap().status(),
        404
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
