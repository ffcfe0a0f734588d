//! Races on one booking, and live status across a dropped LISTEN connection: every race ends in
//! exactly one effect, and no status change is lost.

use std::collections::HashSet;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use futures_util::future::{join, join_all};
use sea_orm::{ConnectionTrait as _, Database, QueryResult, Statement};
use serde_json::{Value, json};

use crate::applications::{dog, submitted, subscribe_status};
use crate::appointments::{BOOK, RESCHEDULE, booked, rathaus, ten_oclock_in};
use crate::helpers::*;

const CANCEL: &str =
    "mutation($i: CancelBookingInput!) { cancelBooking(input: $i) { booking { state start } } }";
const HOLD: &str = "mutation($i: HoldSlotInput!) { holdSlot(input: $i) { holdToken hold { id } } }";

/// How many of `answers` succeeded; every other one must be `CONFLICT`.
fn winners(answers: &[Value]) -> usize {
    answers
        .iter()
        .filter(|a| {
            if a["errors"].is_null() {
                return true;
            }
            assert_eq!(
                a["errors"][0]["extensions"]["code"], "CONFLICT",
                "neither success nor CONFLICT: {a}"
            );
            false
        })
        .count()
}

async fn rows(app: &TestApp, sql: &str) -> Vec<QueryResult> {
    let db = Database::connect(&app.db_url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap();
    db.close().await.ok();
    rows
}

/// Subjects of the mails queued to `recipient`, in the order they were queued.
async fn subjects_to(app: &TestApp, recipient: &str) -> Vec<String> {
    rows(
        app,
        &format!(
            "SELECT subject FROM outbox WHERE recipient = '{recipient}' ORDER BY created_at, id"
        ),
    )
    .await
    .iter()
    .map(|r| r.try_get::<String>("", "subject").unwrap())
    .collect()
}

/// Reminders of `booking` still waiting to be sent (neither sent nor withdrawn).
async fn queued_reminders(app: &TestApp, booking: &str) -> i64 {
    count_where(
        app,
        "outbox",
        &format!("topic = 'booking-reminder:{booking}' AND sent_at IS NULL AND failed_at IS NULL"),
    )
    .await
}

#[tokio::test]
async fn of_ten_cancellations_of_one_booking_one_succeeds_and_mails_once() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 1).await;
    let mail = "zehnmal@example.org";
    let (id, token, _) = booked(&app, &rathaus, ten_oclock_in(4), mail).await;
    assert_eq!(queued_reminders(&app, &id).await, 1);

    let cancel = json!({ "i": { "id": id, "token": token } });
    let answers =
        join_all((0..10).map(|_| app.gql(Some(MUSTER), None, CANCEL, cancel.clone()))).await;
    assert_eq!(winners(&answers), 1, "{answers:?}");

    let cancellations = subjects_to(&app, mail)
        .await
        .into_iter()
        .filter(|s| s.starts_with("Termin abgesagt"))
        .count();
    assert_eq!(cancellations, 1);
    assert_eq!(queued_reminders(&app, &id).await, 0);
    assert_eq!(
        count_where(
            &app,
            "bookings",
            &format!("contact_email = '{mail}' AND state = 'cancelled'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_booking_cancelled_while_it_is_moved_is_not_moved_afterwards() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    // Room for every move: only the cancellation decides who wins.
    let rathaus = rathaus(&app, &admin, 10).await;
    // A few rounds: which move commits before and which after the cancellation is up to chance.
    for round in 0..3 {
        let at = |slot: i64| ten_oclock_in(3 + round) + Duration::minutes(30 * slot);
        let mail = format!("runde{round}@example.org");
        let (id, token, _) = booked(&app, &rathaus, at(0), &mail).await;
        let moves = (1..=9).map(|slot| {
            let vars = json!({ "i": { "id": id, "token": token, "start": at(slot) } });
            app.gql(Some(MUSTER), None, RESCHEDULE, vars)
        });
        let cancel = app.gql(
            Some(MUSTER),
            None,
            CANCEL,
            json!({ "i": { "id": id, "token": token } }),
        );
        let (cancelled, moved) = join(cancel, join_all(moves)).await;
        let cancelled = &data(&cancelled)["cancelBooking"]["booking"];
        assert_eq!(cancelled["state"], "cancelled");
        let moves_won = winners(&moved);

        // The booking stays where the cancellation found it.
        let stored = rows(
            &app,
            &format!("SELECT state, start_at FROM bookings WHERE contact_email = '{mail}'"),
        )
        .await;
        assert_eq!(stored.len(), 1);
        assert_eq!(
            stored[0].try_get::<String>("", "state").unwrap(),
            "cancelled"
        );
        let start: DateTime<Utc> = stored[0].try_get("", "start_at").unwrap();
        let answered: DateTime<Utc> = cancelled["start"].as_str().unwrap().parse().unwrap();
        assert_eq!(start, answered, "moved after it was cancelled");

        // One notice per successful move, all before the one cancellation; no reminder left.
        let subjects = subjects_to(&app, &mail).await;
        let cancelled_at = subjects
            .iter()
            .position(|s| s.starts_with("Termin abgesagt"))
            .unwrap_or_else(|| panic!("no cancellation mail: {subjects:?}"));
        let moves_mailed = subjects
            .iter()
            .filter(|s| s.starts_with("Termin verschoben"))
            .count();
        assert_eq!(moves_mailed, moves_won, "{subjects:?}");
        assert!(
            subjects[cancelled_at + 1..]
                .iter()
                .all(|s| !s.starts_with("Termin verschoben")),
            "a move mailed after the cancellation: {subjects:?}"
        );
        assert_eq!(
            subjects
                .iter()
                .filter(|s| s.starts_with("Termin abgesagt"))
                .count(),
            1
        );
        assert_eq!(queued_reminders(&app, &id).await, 0, "{subjects:?}");
    }
}

#[tokio::test]
async fn a_hold_booked_ten_times_at_once_becomes_one_booking_with_one_confirmation() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&app, &admin, 1).await;
    data(
        &app.caller(MUSTER, &admin)
            .gql(
                "mutation($i: SetAppointmentOfferInput!) { setAppointmentOffer(input: $i) { offer { holdMinutes } } }",
                json!({ "i": { "serviceSlug": "hundesteuer", "locationId": rathaus,
                               "durationMinutes": 30, "minNoticeMinutes": 0, "horizonDays": 366,
                               "holdMinutes": 10 } }),
            )
            .await,
    );
    let start = ten_oclock_in(5);
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            HOLD,
            json!({ "i": { "serviceSlug": "hundesteuer", "locationId": rathaus, "start": start } }),
        )
        .await;
    let h = &data(&resp)["holdSlot"];
    let (hold_id, hold_token) = (str_at(&h["hold"], "id"), str_at(h, "holdToken"));

    // A double click, ten times over.
    let mail = "doppelklick@example.org";
    let vars = json!({ "i": { "serviceSlug": "hundesteuer", "locationId": rathaus, "start": start,
                              "contact": { "name": "Erika Mustermann", "email": mail },
                              "holdId": hold_id, "holdToken": hold_token } });
    let answers = join_all((0..10).map(|_| app.gql(Some(MUSTER), None, BOOK, vars.clone()))).await;
    assert_eq!(winners(&answers), 1, "{answers:?}");
    let won = &data(answers.iter().find(|a| a["errors"].is_null()).unwrap())["bookAppointment"];
    assert_eq!(str_at(&won["booking"], "id"), hold_id);

    assert_eq!(count_where(&app, "bookings", "state = 'booked'").await, 1);
    assert_eq!(count_where(&app, "bookings", "state = 'held'").await, 0);
    let subjects = subjects_to(&app, mail).await;
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.starts_with("Terminbestätigung"))
            .count(),
        1,
        "{subjects:?}"
    );
    assert_eq!(queued_reminders(&app, &hold_id).await, 1, "{subjects:?}");
    assert_eq!(
        count_where(&app, "outbox", "topic LIKE 'booking-reminder:%'").await,
        1
    );
    // The token the winner was given is the one that works.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            CANCEL,
            json!({ "i": { "id": hold_id, "token": str_at(won, "cancelToken") } }),
        )
        .await;
    assert_eq!(
        data(&resp)["cancelBooking"]["booking"]["state"],
        "cancelled"
    );
}

/// The database `app` runs on (PostgreSQL), without the URL's options (`?sslmode=…`).
fn database_name(app: &TestApp) -> String {
    let name = app.db_url.rsplit('/').next().unwrap();
    name.split('?').next().unwrap().to_owned()
}

/// Runs `sql` on the PostgreSQL server's own database (it works while `app`'s refuses
/// connections).
async fn on_server(sql: &str) -> Vec<QueryResult> {
    let db = Database::connect(postgres_base_url().unwrap())
        .await
        .unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap();
    db.close().await.ok();
    rows
}

/// The backends listening for status changes on `app`'s database. They use TLS when the
/// server's URL requires it (`sslmode=require`), like every other connection (without, sqlx
/// prefers TLS but may go without).
async fn listeners(app: &TestApp) -> HashSet<i32> {
    let tls = app.db_url.contains("sslmode=require");
    on_server(&format!(
        "SELECT pid, ssl FROM pg_stat_activity JOIN pg_stat_ssl USING (pid) \
         WHERE datname = '{}' AND query LIKE 'LISTEN%'",
        database_name(app)
    ))
    .await
    .iter()
    .map(|r| {
        let pid = r.try_get::<i32>("", "pid").unwrap();
        assert!(
            !tls || r.try_get::<bool>("", "ssl").unwrap(),
            "listener {pid} without TLS"
        );
        pid
    })
    .collect()
}

/// Waits until `n` backends other than `gone` listen; returns them.
async fn wait_for_listeners(app: &TestApp, n: usize, gone: &HashSet<i32>) -> HashSet<i32> {
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        let now: HashSet<i32> = listeners(app).await.difference(gone).copied().collect();
        if now.len() == n {
            return now;
        }
        assert!(Instant::now() < deadline, "listeners: {now:?}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Ends the backends `pids` and waits until they are gone.
async fn terminate(pids: &HashSet<i32>) {
    let list = pids
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    on_server(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ({list})"
    ))
    .await;
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while !on_server(&format!(
        "SELECT pid FROM pg_stat_activity WHERE pid IN ({list})"
    ))
    .await
    .is_empty()
    {
        assert!(Instant::now() < deadline, "backends {list} linger");
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}

/// Lets new connections to `app`'s database in or not (for everybody, superusers included).
async fn allow_connections(app: &TestApp, allow: bool) {
    on_server(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
        database_name(app)
    ))
    .await;
}

#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL only")]
async fn a_status_change_while_the_listener_reconnects_still_reaches_subscribers() {
    let app = spawn_app().await;
    // The subscriber's server, and a replica on the same database that makes the change.
    let url = app.db_url.clone();
    let replica = spawn_app_with(move |s| s.database.url = Some(url.into())).await;
    let staff = replica.login(Some(MUSTER), MUSTER_KASSE).await;
    let staff = replica.caller(MUSTER, &staff);
    let (a, token) = submitted(&app, dog(false)).await;
    let id = str_at(&a, "id");
    let mut ws = subscribe_status(&app, &id, &token).await;
    let listening = wait_for_listeners(&app, 2, &HashSet::new()).await;

    // Both LISTEN connections drop and cannot come back until the change is committed
    // (the replica's pool keeps its open connections): its notification reaches nobody.
    allow_connections(&app, false).await;
    terminate(&listening).await;
    let moved = staff
        .gql(
            "mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }",
            json!({ "i": { "id": id, "to": "in_review" } }),
        )
        .await;
    assert!(listeners(&app).await.is_empty());
    allow_connections(&app, true).await;
    data(&moved);
    let next = ws_next(&mut ws).await;
    assert_eq!(
        next["payload"]["data"]["applicationStatusChanged"]["state"], "in_review",
        "{next}"
    );
    let mut listening = wait_for_listeners(&app, 2, &listening).await;

    // After each reconnect the delay starts over: six drops in a row, each back within two
    // seconds (the delay used to double: 6.4 s before the sixth reconnect, more after the
    // failed attempts above).
    for drop in 0..6 {
        terminate(&listening).await;
        let dropped = Instant::now();
        let gone = listening.clone();
        listening = wait_for_listeners(&app, 2, &gone).await;
        let took = dropped.elapsed();
        assert!(
            took < StdDuration::from_secs(2),
            "reconnect {drop} took {took:?}"
        );
    }
}
