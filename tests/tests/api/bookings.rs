//! Booking around the slot: mails with the calendar file and reminders that follow the booking
//! (through the demo office of Musterstadt's tenant file), short holds, proof-of-work challenges
//! and rate limits against bots.

use chrono::{DateTime, Duration, Utc};
use mail_parser::MimeHeaders as _;
use sea_orm::{ConnectionTrait as _, Database, Statement};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::appointments::{BOOK, CANCEL, RESCHEDULE, book, rathaus, slots, ten_oclock_in};
use crate::helpers::*;

const HOLD: &str = "mutation($i: HoldSlotInput!) { holdSlot(input: $i) { holdToken hold { id state start holdExpiresAt } } }";
pub(crate) const CHALLENGE: &str = "query($s: String!, $l: ID!) { bookingChallenge(serviceSlug: $s, locationId: $l) { challenge bits expiresAt } }";

/// Sets the dog-tax offer at `location` (30-minute slots, a year ahead) with `extra` fields.
pub(crate) async fn set_offer(app: &TestApp, admin: &Session, location: &str, extra: Value) {
    let mut input = json!({ "serviceSlug": "hundesteuer", "locationId": location,
                            "durationMinutes": 30, "minNoticeMinutes": 0, "horizonDays": 366 });
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let resp = app
        .caller(MUSTER, admin)
        .gql(
            "mutation($i: SetAppointmentOfferInput!) { setAppointmentOffer(input: $i) { offer { holdMinutes challengeBits } } }",
            json!({ "i": input }),
        )
        .await;
    data(&resp);
}

pub(crate) fn book_input(location: &str, start: DateTime<Utc>, email: &str, extra: Value) -> Value {
    let mut input = json!({ "serviceSlug": "hundesteuer", "locationId": location, "start": start,
                            "contact": { "name": "Erika Mustermann", "email": email } });
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "i": input })
}

async fn sql(app: &TestApp, statement: &str) {
    let db = Database::connect(&app.db_url).await.unwrap();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        statement.to_owned(),
    ))
    .await
    .unwrap();
    db.close().await.ok();
}

/// One row of the outbox as `(subject, next_attempt_at, sent?, withdrawn?)`.
async fn outbox_rows(app: &TestApp, topic: &str) -> Vec<(String, DateTime<Utc>, bool, bool)> {
    let db = Database::connect(&app.db_url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT subject, next_attempt_at, sent_at IS NOT NULL AS sent, \
                 (failed_at IS NOT NULL AND last_error = 'withdrawn') AS withdrawn \
                 FROM outbox WHERE topic = '{topic}' ORDER BY created_at"
            ),
        ))
        .await
        .unwrap();
    db.close().await.ok();
    rows.iter()
        .map(|r| {
            (
                r.try_get::<String>("", "subject").unwrap(),
                r.try_get::<DateTime<Utc>>("", "next_attempt_at").unwrap(),
                r.try_get::<bool>("", "sent").unwrap(),
                r.try_get::<bool>("", "withdrawn").unwrap(),
            )
        })
        .collect()
}

/// A received mail, parsed: subject, text body, and the calendar file's event start and status.
struct Parsed {
    subject: String,
    text: String,
    calendar: Option<(DateTime<Utc>, String, String)>,
}

fn parse_mail(mail: &ReceivedMail) -> Parsed {
    use icalendar::Component as _;
    let message = mail_parser::MessageParser::default()
        .parse(mail.data.as_bytes())
        .expect("a MIME message");
    let calendar = message.attachments().next().map(|part| {
        assert_eq!(part.attachment_name(), Some("termin.ics"));
        let ct = part.content_type().expect("content type");
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            ("text", Some("calendar")),
            "{ct:?}"
        );
        let text = String::from_utf8(part.contents().to_vec()).unwrap();
        let cal: icalendar::Calendar = text.parse().expect("the .ics parses");
        let event = cal.events().next().expect("one event").clone();
        let start = match event.get_start() {
            Some(icalendar::DatePerhapsTime::DateTime(icalendar::CalendarDateTime::Utc(t))) => t,
            other => panic!("start in UTC: {other:?}"),
        };
        let method = cal.property_value("METHOD").unwrap_or_default().to_owned();
        let status = event
            .property_value("STATUS")
            .unwrap_or_default()
            .to_owned();
        (start, method, status)
    });
    Parsed {
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message.body_text(0).unwrap_or_default().into_owned(),
        calendar,
    }
}

#[tokio::test]
async fn a_citizen_books_the_demo_office_gets_the_calendar_file_reminders_follow_the_booking() {
    let sink = SmtpSink::start(0).await;
    let port = sink.port;
    let app = spawn_app_with(move |s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        s.mail.poll_interval_ms = 100;
    })
    .await;
    // The demo office comes from Musterstadt's tenant file, bookable for the certificate.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "{ locations { id key name resources { key } } }",
            json!({}),
        )
        .await;
    let office = &data(&resp)["locations"][0];
    assert_eq!(office["key"], "buergerbuero");
    assert_eq!(office["resources"].as_array().unwrap().len(), 3);
    let office = str_at(office, "id");
    // From a midnight: the first two slots are then the first of an opening, whatever the time
    // the test runs at (from now + 3 days, the first could be a day's last).
    let from = (Utc::now() + Duration::days(3))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "query($l: ID!, $f: DateTime!, $t: DateTime!) { availableSlots(serviceSlug: \"meldebescheinigung\", locationId: $l, from: $f, to: $t) { start end remaining } }",
            json!({ "l": office, "f": from, "t": from + Duration::days(14) }),
        )
        .await;
    let open = data(&resp)["availableSlots"].as_array().unwrap().clone();
    assert!(open.len() > 20, "{open:?}");
    let slot = |i: usize| -> DateTime<Utc> { open[i]["start"].as_str().unwrap().parse().unwrap() };
    let (first, later) = (slot(0), slot(7));
    assert_eq!(
        (slot(1) - slot(0)).num_minutes(),
        15,
        "the content's duration"
    );

    let booking = |start: DateTime<Utc>, email: &str| {
        let app = &app;
        let input = json!({ "i": { "serviceSlug": "meldebescheinigung", "locationId": office,
                                   "start": start, "contact": { "name": "Erika Mustermann", "email": email } } });
        async move { app.gql(Some(MUSTER), None, BOOK, input).await }
    };
    let resp = booking(first, "erika@example.org").await;
    let b = &data(&resp)["bookAppointment"];
    let (id, token) = (str_at(&b["booking"], "id"), str_at(b, "cancelToken"));

    // The confirmation carries the calendar file; the reminder waits for the day before.
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, ["erika@example.org"]);
    let confirmation = parse_mail(&mails[0]);
    assert!(
        confirmation.subject.starts_with("Terminbestätigung"),
        "{}",
        confirmation.subject
    );
    assert!(confirmation.text.contains("Bürgerbüro im Rathaus"));
    assert!(confirmation.text.contains(&format!("/bookings/{id}.ics")));
    let (start, method, status) = confirmation.calendar.expect("the .ics is attached");
    assert_eq!(
        (start, method.as_str(), status.as_str()),
        (first, "PUBLISH", "CONFIRMED")
    );
    let reminder = format!("booking-reminder:{id}");
    let rows = outbox_rows(&app, &reminder).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].0.starts_with("Erinnerung"));
    assert_eq!(rows[0].1, first - Duration::hours(24));
    assert!(!rows[0].2 && !rows[0].3, "queued, not sent: {rows:?}");

    // Moving it: a notice with the new file, the old reminder withdrawn, a new one queued.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            RESCHEDULE,
            json!({ "i": { "id": id, "token": token, "start": later } }),
        )
        .await;
    assert_eq!(
        data(&resp)["rescheduleBooking"]["booking"]["state"],
        "booked"
    );
    let moved = parse_mail(&sink.wait_for(2).await[1]);
    assert!(
        moved.subject.starts_with("Termin verschoben"),
        "{}",
        moved.subject
    );
    assert_eq!(moved.calendar.unwrap().0, later);
    let rows = outbox_rows(&app, &reminder).await;
    assert_eq!(rows.len(), 2);
    assert!(rows[0].3, "the first reminder is withdrawn: {rows:?}");
    assert_eq!(rows[1].1, later - Duration::hours(24));
    assert!(!rows[1].2 && !rows[1].3);

    // When its time comes, the worker sends it.
    sql(
        &app,
        &format!(
            "UPDATE outbox SET next_attempt_at = created_at WHERE topic = '{reminder}' AND failed_at IS NULL"
        ),
    )
    .await;
    let reminded = parse_mail(&sink.wait_for(3).await[2]);
    assert!(
        reminded.subject.starts_with("Erinnerung"),
        "{}",
        reminded.subject
    );
    assert!(reminded.text.contains(&format!("/bookings/{id}.ics")));

    // Staff see the day's list at the office.
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let date = later.with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    let resp = app
        .caller(MUSTER, &staff)
        .gql(
            "query($l: ID!, $d: NaiveDate!) { bookings(locationId: $l, date: $d) { id contactEmail state } }",
            json!({ "l": office, "d": date }),
        )
        .await;
    assert_eq!(
        data(&resp)["bookings"],
        json!([{ "id": id, "contactEmail": "erika@example.org", "state": "booked" }])
    );

    // Cancelling another booking withdraws its reminder and sends a file that removes the event.
    let resp = booking(slot(3), "max@example.org").await;
    let b = &data(&resp)["bookAppointment"];
    let (other, other_token) = (str_at(&b["booking"], "id"), str_at(b, "cancelToken"));
    sink.wait_for(4).await;
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            CANCEL,
            json!({ "i": { "id": other, "token": other_token } }),
        )
        .await;
    assert_eq!(
        data(&resp)["cancelBooking"]["booking"]["state"],
        "cancelled"
    );
    let cancelled = parse_mail(&sink.wait_for(5).await[4]);
    assert_eq!(sink.mails.lock().unwrap()[4].to, ["max@example.org"]);
    assert!(cancelled.subject.starts_with("Termin abgesagt"));
    let (_, method, status) = cancelled.calendar.unwrap();
    assert_eq!((method.as_str(), status.as_str()), ("CANCEL", "CANCELLED"));
    let rows = outbox_rows(&app, &format!("booking-reminder:{other}")).await;
    assert!(rows.len() == 1 && rows[0].3, "withdrawn: {rows:?}");
}

#[tokio::test]
async fn a_hold_reserves_the_place_until_it_is_booked_released_or_lapses() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 1).await;
    let start = ten_oclock_in(6);
    let hold = |start: DateTime<Utc>| {
        let (app, rathaus) = (&app, &rathaus);
        async move {
            app.gql(
                Some(MUSTER),
                None,
                HOLD,
                json!({ "i": { "serviceSlug": "hundesteuer", "locationId": rathaus, "start": start } }),
            )
            .await
        }
    };
    // Holds are off unless the offer allows them.
    assert_code(&hold(start).await, "CONFLICT");
    set_offer(&app, &admin, &rathaus, json!({ "holdMinutes": 10 })).await;

    let resp = hold(start).await;
    let h = &data(&resp)["holdSlot"];
    let (hold_id, hold_token) = (str_at(&h["hold"], "id"), str_at(h, "holdToken"));
    assert_eq!(h["hold"]["state"], "held");
    let expires: DateTime<Utc> = h["hold"]["holdExpiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (expires - Utc::now() - Duration::minutes(10))
            .num_seconds()
            .abs()
            < 30
    );
    // The place is taken for everybody else, for holding as for booking.
    let one = start + Duration::minutes(1);
    assert_eq!(slots(&app, &rathaus, start, one).await[0]["remaining"], 0);
    assert_code(
        &book(&app, &rathaus, start, "bot@example.org").await,
        "SLOT_FULL",
    );
    assert_code(&hold(start).await, "SLOT_FULL");
    // A hold has no calendar file.
    let ics = format!(
        "{}/bookings/{hold_id}.ics?tenant={MUSTER}&token={hold_token}",
        app.base_url
    );
    assert_eq!(app.client.get(&ics).send().await.unwrap().status(), 404);
    // A hold of another slot does not book this one.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            BOOK,
            book_input(
                &rathaus,
                start + Duration::minutes(30),
                "erika@example.org",
                json!({ "holdId": hold_id, "holdToken": hold_token }),
            ),
        )
        .await;
    assert_code(&resp, "CONFLICT");
    // Its holder books it: the same row, now booked, with a new token.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            BOOK,
            book_input(
                &rathaus,
                start,
                "erika@example.org",
                json!({ "holdId": hold_id, "holdToken": hold_token }),
            ),
        )
        .await;
    let b = &data(&resp)["bookAppointment"];
    assert_eq!(b["booking"]["id"], hold_id.as_str());
    assert_eq!(b["booking"]["state"], "booked");
    assert_ne!(str_at(b, "cancelToken"), hold_token);
    // The hold token is spent.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            CANCEL,
            json!({ "i": { "id": hold_id, "token": hold_token } }),
        )
        .await;
    assert_code(&resp, "NOT_FOUND");
    assert_eq!(
        count_where(&app, "bookings", "state <> 'cancelled'").await,
        1
    );

    // A hold released early frees the place at once.
    let later = start + Duration::minutes(60);
    let resp = hold(later).await;
    let h = &data(&resp)["holdSlot"];
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            CANCEL,
            json!({ "i": { "id": str_at(&h["hold"], "id"), "token": str_at(h, "holdToken") } }),
        )
        .await;
    assert_eq!(
        data(&resp)["cancelBooking"]["booking"]["state"],
        "cancelled"
    );
    assert_eq!(
        slots(&app, &rathaus, later, later + Duration::minutes(1)).await[0]["remaining"],
        1
    );

    // A lapsed hold stops counting; someone else takes the place, the late holder finds it full.
    let resp = hold(later).await;
    let h = &data(&resp)["holdSlot"];
    let (lapsed, lapsed_token) = (str_at(&h["hold"], "id"), str_at(h, "holdToken"));
    // (It is the only one held; ids are blobs on SQLite, so select by state.)
    sql(
        &app,
        "UPDATE bookings SET hold_expires_at = created_at WHERE state = 'held'",
    )
    .await;
    assert_eq!(
        slots(&app, &rathaus, later, later + Duration::minutes(1)).await[0]["remaining"],
        1
    );
    data(&book(&app, &rathaus, later, "max@example.org").await);
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            BOOK,
            book_input(
                &rathaus,
                later,
                "moritz@example.org",
                json!({ "holdId": lapsed, "holdToken": lapsed_token }),
            ),
        )
        .await;
    assert_code(&resp, "SLOT_FULL");
    // Housekeeping marks it expired.
    let db = Database::connect(&app.db_url).await.unwrap();
    let cleared = server::appointments::housekeeping::clear(&db, Utc::now())
        .await
        .unwrap();
    db.close().await.ok();
    assert_eq!(cleared.lapsed_holds, 1);
    assert_eq!(count_where(&app, "bookings", "state = 'expired'").await, 1);
    assert_eq!(count_where(&app, "bookings", "state = 'held'").await, 0);
}

/// Leading zero bits of SHA-256(`challenge` ":" `solution`).
fn zero_bits(challenge: &str, solution: &str) -> u32 {
    let digest = Sha256::new()
        .chain_update(challenge)
        .chain_update(":")
        .chain_update(solution)
        .finalize();
    let mut zeros = 0;
    for byte in digest {
        zeros += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    zeros
}

/// Finds a solution the way a client would: counting up until the hash has `bits` zero bits.
pub(crate) fn solve(challenge: &str, bits: u32) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|s| zero_bits(challenge, s) >= bits)
        .unwrap()
}

#[tokio::test]
async fn hot_services_demand_proof_of_work_once_per_booking() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 1).await;
    set_offer(
        &app,
        &admin,
        &rathaus,
        json!({ "challengeBits": 12, "holdMinutes": 5 }),
    )
    .await;
    let start = ten_oclock_in(4);
    let challenge = || {
        let (app, rathaus) = (&app, &rathaus);
        async move {
            let resp = app
                .gql(
                    Some(MUSTER),
                    None,
                    CHALLENGE,
                    json!({ "s": "hundesteuer", "l": rathaus }),
                )
                .await;
            let c = data(&resp)["bookingChallenge"].clone();
            assert_eq!(c["bits"], 12);
            str_at(&c, "challenge")
        }
    };
    let attempt = |start: DateTime<Utc>, answer: Value| {
        let (app, rathaus) = (&app, &rathaus);
        async move {
            app.gql(
                Some(MUSTER),
                None,
                BOOK,
                book_input(rathaus, start, "erika@example.org", answer),
            )
            .await
        }
    };
    let answer = |c: &str, s: &str| json!({ "challenge": { "challenge": c, "solution": s } });

    // Without, with a wrong solution, with a forged challenge: refused, nothing stored.
    assert_field_error(
        &attempt(start, json!({})).await,
        "input.challenge",
        "challenge",
    );
    let c = challenge().await;
    let s = solve(&c, 12);
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|x| zero_bits(&c, x) < 12)
        .unwrap();
    assert_field_error(
        &attempt(start, answer(&c, &wrong)).await,
        "input.challenge",
        "does not solve",
    );
    let forged = c.replacen(".12.", ".1.", 1);
    assert_field_error(
        &attempt(start, answer(&forged, &solve(&forged, 1))).await,
        "input.challenge",
        "not a booking challenge",
    );
    assert_eq!(count_where(&app, "bookings", "1 = 1").await, 0);

    // Solved: booked. The same solution again is refused, even for another slot.
    data(&attempt(start, answer(&c, &s)).await);
    assert_field_error(
        &attempt(start + Duration::hours(1), answer(&c, &s)).await,
        "input.challenge",
        "used already",
    );
    // A booking that fails (full slot) does not spend its challenge.
    let c2 = challenge().await;
    let s2 = solve(&c2, 12);
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            BOOK,
            book_input(&rathaus, start, "max@example.org", answer(&c2, &s2)),
        )
        .await;
    assert_code(&resp, "SLOT_FULL");
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            HOLD,
            json!({ "i": { "serviceSlug": "hundesteuer", "locationId": rathaus,
                           "start": start + Duration::hours(2), "challenge": { "challenge": c2, "solution": s2 } } }),
        )
        .await;
    // Holding costs the work too; booking the hold then needs none.
    let h = &data(&resp)["holdSlot"];
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            BOOK,
            book_input(
                &rathaus,
                start + Duration::hours(2),
                "max@example.org",
                json!({ "holdId": str_at(&h["hold"], "id"), "holdToken": str_at(h, "holdToken") }),
            ),
        )
        .await;
    assert_eq!(data(&resp)["bookAppointment"]["booking"]["state"], "booked");
    assert_eq!(count_where(&app, "spent_challenges", "1 = 1").await, 2);
    // Spent challenges are kept until they expire, then housekeeping drops them.
    let db = Database::connect(&app.db_url).await.unwrap();
    let cleared = server::appointments::housekeeping::clear(&db, Utc::now())
        .await
        .unwrap();
    assert_eq!(cleared.spent_challenges, 0);
    let later = Utc::now() + Duration::hours(1);
    let cleared = server::appointments::housekeeping::clear(&db, later)
        .await
        .unwrap();
    db.close().await.ok();
    assert_eq!(cleared.spent_challenges, 2);
    assert_eq!(count_where(&app, "spent_challenges", "1 = 1").await, 0);
}

#[tokio::test]
async fn bookings_are_limited_per_client_ip_and_per_contact() {
    let app = spawn_app_with(|s| {
        s.appointments.bookings_per_ip_per_minute = 4;
        s.appointments.bookings_per_contact_per_hour = 2;
    })
    .await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 5).await;
    set_offer(&app, &admin, &rathaus, json!({ "maxOpenPerContact": 10 })).await;
    let at = |h: i64| ten_oclock_in(3) + Duration::hours(h);
    // Per contact: two an hour, whatever the slot; another contact still books.
    data(&book(&app, &rathaus, at(0), "erika@example.org").await);
    data(&book(&app, &rathaus, at(1), "Erika@Example.org").await);
    assert_code(
        &book(&app, &rathaus, at(2), "erika@example.org").await,
        "RATE_LIMITED",
    );
    data(&book(&app, &rathaus, at(2), "max@example.org").await);
    // Per IP: the fifth booking request within the minute is refused, whoever it names.
    assert_code(
        &book(&app, &rathaus, at(3), "moritz@example.org").await,
        "RATE_LIMITED",
    );
    assert_eq!(count_where(&app, "bookings", "1 = 1").await, 3);
}
