//! Two servers on one database and one data folder behave as one (issue 22, point 1): rate
//! limits and login lockouts count requests to both, a token of one is accepted by the other, a
//! proof-of-work challenge is spent once across both, and queued mail goes out once while both
//! run their outbox workers.

use chrono::Duration;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::appointments::{BOOK, book, rathaus, ten_oclock_in};
use crate::bookings::{CHALLENGE, book_input, set_offer, solve};
use crate::helpers::*;

const ME: &str = "{ me { kind roles } }";

/// The first error code of a response, or "OK".
fn code(resp: &Value) -> String {
    resp["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("OK")
        .to_owned()
}

#[tokio::test]
async fn failed_logins_spread_over_two_replicas_lock_the_account_on_both() {
    let (a, b) = spawn_replicas(|s| s.auth.login_per_account_per_minute = 3).await;
    for app in [&a, &b, &a] {
        assert_code(
            &app.try_login(Some(MUSTER), MUSTER_ADMIN.0, "wrong-password-123")
                .await,
            "UNAUTHENTICATED",
        );
    }
    // Locked on both, even with the right password; each says when to retry.
    for app in [&b, &a] {
        let resp = app
            .try_login(Some(MUSTER), MUSTER_ADMIN.0, MUSTER_ADMIN.1)
            .await;
        assert_code(&resp, "RATE_LIMITED");
        let retry = resp["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    // Another account is not affected, on either.
    data(
        &b.try_login(Some(MUSTER), MUSTER_STAFF.0, MUSTER_STAFF.1)
            .await,
    );
}

#[tokio::test]
async fn a_per_ip_limit_counts_simultaneous_requests_to_both_replicas_exactly() {
    let (a, b) = spawn_replicas(|s| s.auth.login_per_ip_per_minute = 5).await;
    // Twenty attempts at once, half to each replica, each for another account (only the limit
    // per IP can refuse): exactly five pass to the password check.
    let attempts = (0..20).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move {
            code(
                &app.try_login(
                    Some(MUSTER),
                    &format!("nobody{i}@musterstadt.example"),
                    "wrong-password-123",
                )
                .await,
            )
        }
    });
    let codes = join_all(attempts).await;
    let unauthenticated = codes.iter().filter(|c| *c == "UNAUTHENTICATED").count();
    let limited = codes.iter().filter(|c| *c == "RATE_LIMITED").count();
    assert_eq!((unauthenticated, limited), (5, 15), "{codes:?}");
}

#[tokio::test]
async fn bookings_per_contact_count_on_both_replicas() {
    let (a, b) = spawn_replicas(|s| s.appointments.bookings_per_contact_per_hour = 2).await;
    let admin = a.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&a, &admin, 5).await;
    set_offer(&a, &admin, &rathaus, json!({ "maxOpenPerContact": 10 })).await;
    let at = |h: i64| ten_oclock_in(3) + Duration::hours(h);
    data(&book(&a, &rathaus, at(0), "erika@example.org").await);
    data(&book(&b, &rathaus, at(1), "erika@example.org").await);
    assert_code(
        &book(&a, &rathaus, at(2), "erika@example.org").await,
        "RATE_LIMITED",
    );
    assert_code(
        &book(&b, &rathaus, at(2), "erika@example.org").await,
        "RATE_LIMITED",
    );
    assert_eq!(count_where(&a, "bookings", "1 = 1").await, 2);
}

#[tokio::test]
async fn a_token_issued_by_one_replica_is_accepted_by_the_other_and_refreshed_there() {
    let (a, b) = spawn_replicas(|_| {}).await;
    let s = a.login(Some(MUSTER), MUSTER_ADMIN).await;
    let me = data(&b.gql(Some(MUSTER), Some(&s.access), ME, json!({})).await).clone();
    assert_eq!(me["me"]["kind"], "STAFF");
    // The refresh token rotates on B; the new access token works on A.
    let resp = b
        .gql(
            Some(MUSTER),
            None,
            "mutation($t: String!) { refreshSession(input: {refreshToken: $t}) { accessToken } }",
            json!({ "t": s.refresh }),
        )
        .await;
    let access = str_at(&data(&resp)["refreshSession"], "accessToken");
    data(&a.gql(Some(MUSTER), Some(&access), ME, json!({})).await);
    // The JWKS both publish is the same key.
    let jwks = |app: &TestApp| {
        let url = format!("{}/.well-known/jwks.json", app.base_url);
        let client = app.client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(jwks(&a).await, jwks(&b).await);
}

#[tokio::test]
async fn logout_on_one_replica_ends_the_token_on_the_other() {
    let (a, b) = spawn_replicas(|_| {}).await;
    // B's listener forgets every cached session when it connects: let it connect first, so
    // what B caches below is only dropped by the announcement.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let s = a.login(Some(MUSTER), MUSTER_ADMIN).await;
    // B has seen the session standing (and caches that answer).
    data(&b.gql(Some(MUSTER), Some(&s.access), ME, json!({})).await);
    a.logout(Some(MUSTER), &s).await;
    // On A at once; on B as soon as the announcement arrives on PostgreSQL (pg_notify), at
    // most the session cache's TTL (5 s) later on SQLite, where replicas are not announced.
    assert_code(
        &a.gql(Some(MUSTER), Some(&s.access), ME, json!({})).await,
        "UNAUTHENTICATED",
    );
    let started = std::time::Instant::now();
    loop {
        let resp = b.gql(Some(MUSTER), Some(&s.access), ME, json!({})).await;
        if code(&resp) == "UNAUTHENTICATED" {
            break;
        }
        let bound = if a.is_postgres { 1 } else { 7 };
        assert!(
            started.elapsed() < std::time::Duration::from_secs(bound),
            "B still accepts the token after {:?}: {resp}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_challenge_issued_by_one_replica_is_spent_once_across_both() {
    let (a, b) = spawn_replicas(|_| {}).await;
    let admin = a.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&a, &admin, 20).await;
    set_offer(&a, &admin, &rathaus, json!({ "challengeBits": 8 })).await;
    let resp = a
        .gql(
            Some(MUSTER),
            None,
            CHALLENGE,
            json!({ "s": "hundesteuer", "l": rathaus }),
        )
        .await;
    let c = str_at(&data(&resp)["bookingChallenge"], "challenge");
    let s = solve(&c, 8);
    let answer = json!({ "challenge": { "challenge": c, "solution": s } });
    // Ten bookings with the same solved challenge at once, over both replicas, each for
    // another slot: exactly one is booked (B accepts A's challenge: the key is shared).
    let start = ten_oclock_in(5);
    let attempts = (0..10).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let input = book_input(
            &rathaus,
            start + Duration::minutes(30 * i),
            &format!("person{i}@example.org"),
            answer.clone(),
        );
        async move { app.gql(Some(MUSTER), None, BOOK, input).await }
    });
    let responses = join_all(attempts).await;
    let booked = responses.iter().filter(|r| code(r) == "OK").count();
    assert_eq!(booked, 1, "{responses:#?}");
    for r in responses.iter().filter(|r| code(r) != "OK") {
        assert_field_error(r, "input.challenge", "used already");
    }
    assert_eq!(count_where(&a, "bookings", "1 = 1").await, 1);
}

#[tokio::test]
async fn mail_queued_while_two_replicas_run_their_outbox_workers_is_sent_once() {
    let sink = SmtpSink::start(0).await;
    let port = sink.port;
    let (a, b) = spawn_replicas(move |s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        s.mail.poll_interval_ms = 20;
    })
    .await;
    let admin = a.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rathaus = rathaus(&a, &admin, 20).await;
    // Twelve bookings at once over both replicas: twelve confirmations (the reminders are due
    // later), each sent once although both workers poll the same outbox.
    let start = ten_oclock_in(6);
    let bookings = (0..12).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let rathaus = rathaus.clone();
        async move {
            book(
                app,
                &rathaus,
                start + Duration::minutes(30 * i),
                &format!("person{i}@example.org"),
            )
            .await
        }
    });
    for resp in join_all(bookings).await {
        data(&resp);
    }
    sink.wait_for(12).await;
    // Give a duplicate time to arrive, then count per recipient.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mails = sink.mails.lock().unwrap().clone();
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    let mut expected: Vec<String> = (0..12).map(|i| format!("person{i}@example.org")).collect();
    expected.sort();
    assert_eq!(to, expected);
}
