//! After submission: the confirmation with the reference and the status link (shown once),
//! the status link itself, and the status page (timeline, messages, fees). An anonymous
//! applicant's browser keeps the application's access token in a cookie on the
//! application's own path.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use futures_util::StreamExt as _;

use super::form::ErrorLink;
use super::gql::{ApiError, Gql};
use super::page::{Cx, Deps, TENANT_HEAD, TenantHead, TokenQuery, follow_access_link};
use crate::content::ServiceContent;
use crate::graphql::CheckedSchema;
use crate::state::AppState;

/// The cookie holding an anonymous application's access token, on the application's path.
pub const APPLICATION_COOKIE: &str = "ap_application";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationRow {
    id: String,
    reference: String,
    state: String,
    state_label: String,
    submitted_at: String,
    service_content: Value,
    fees: Vec<FeeRow>,
    fee_total_cents: i64,
    awaiting_payment: bool,
    payments: Vec<PaymentRow>,
    /// How the applicant can pay here (filled from `paymentOptions`).
    #[serde(default)]
    payment_options: Vec<String>,
    timeline: Vec<EventRow>,
    messages: Vec<MessageRow>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeeRow {
    key: String,
    label: String,
    amount_cents: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentRow {
    provider: Option<String>,
    state: Option<String>,
    amount_cents: i64,
    paid_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRow {
    at: String,
    kind: String,
    to_state: Option<String>,
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageRow {
    sender: String,
    body: String,
    created_at: String,
}

async fn load(
    gql: &Gql<'_>,
    req: &HttpRequest,
    id: &str,
) -> Result<(TenantHead, ApplicationRow, Option<String>), ApiError> {
    let token = req.cookie(APPLICATION_COOKIE).map(|c| c.value().to_owned());
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        tenant: TenantHead,
        application: ApplicationRow,
        payment_options: Vec<String>,
    }
    let data: Data = gql
        .run(
            &format!(
                "query($id: ID!, $token: String) {{ {TENANT_HEAD} paymentOptions application(id: $id, accessToken: $token) {{ \
                 id reference state stateLabel submittedAt serviceContent fees {{ key label amountCents }} feeTotalCents \
                 awaitingPayment payments {{ provider state amountCents paidAt }} \
                 timeline {{ at kind toState comment }} messages {{ sender body createdAt }} }} }}"
            ),
            json!({ "id": id, "token": token }),
        )
        .await?;
    let mut app = data.application;
    app.payment_options = data.payment_options;
    Ok((data.tenant, app, token))
}

#[derive(Template)]
#[template(path = "submitted.html")]
struct SubmittedPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    service_title: String,
    reference: String,
    confirmation: Option<String>,
    status_link: Option<String>,
    status_page: String,
}

/// `GET /t/{tenant}/applications/{id}/submitted`.
pub async fn submitted(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let id = path.last().map_or("", String::as_str);
    let (tenant, app, token) = match load(&gql, &req, id).await {
        Ok(x) => x,
        Err(e) => return cx.error(&e),
    };
    let content = serde_json::from_value::<ServiceContent>(app.service_content).ok();
    let app_path = cx.link(&format!("/applications/{}", app.id));
    cx.html(
        StatusCode::OK,
        &SubmittedPage {
            cx: &cx,
            tenant: Some(&tenant),
            service_title: content
                .as_ref()
                .map(|c| cx.lang.pick(&c.title))
                .unwrap_or_default(),
            reference: app.reference,
            confirmation: content.as_ref().and_then(|c| {
                c.texts
                    .iter()
                    .find(|(k, _)| k.as_str() == "bestaetigung")
                    .map(|(_, v)| cx.lang.pick(v))
            }),
            status_link: token
                .map(|t| format!("{}{app_path}/access?token={t}", crate::http::origin(&req))),
            status_page: app_path,
        },
    )
}

/// `GET /t/{tenant}/applications/{id}/access?token=…`: the status link. Keeps the token in
/// the application's cookie and continues without it in the address.
pub async fn access(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    query: web::Query<TokenQuery>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (mut cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let id = path.last().map_or("", String::as_str);
    let cookie = (APPLICATION_COOKIE, cx.link(&format!("/applications/{id}")));
    follow_access_link(
        &mut cx,
        &gql,
        "query($id: ID!, $t: String) { application(id: $id, accessToken: $t) { id } }",
        id,
        query.into_inner().token,
        cookie,
    )
    .await
}

struct Event {
    at: String,
    text: String,
}

struct Message {
    from_staff: bool,
    body: String,
    at: String,
}

struct Fee {
    label: String,
    amount: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    service_title: String,
    reference: String,
    state: String,
    submitted_at: String,
    events: Vec<Event>,
    messages: Vec<Message>,
    fees: Vec<Fee>,
    total: String,
    state_key: String,
    awaits_citizen: bool,
    errors: Vec<ErrorLink>,
    message_error: Option<String>,
    provide_error: Option<String>,
    typed: String,
    base: String,
    pay: Option<PayView>,
    pay_error: Option<String>,
    payments: Vec<String>,
    pending_on_site: bool,
    notice: Option<String>,
    /// Where to book an appointment, when the service has them.
    appointment: Option<String>,
}

/// What a form on the status page got wrong, to show at its field.
#[derive(Default)]
struct FormErrors {
    message: Option<String>,
    provide: Option<String>,
    pay: Option<String>,
    /// A notice at the top (back from the payment provider).
    notice: Option<String>,
    /// What was typed, shown again.
    typed: String,
}

fn status_page<'a>(
    cx: &'a Cx,
    tenant: &'a TenantHead,
    app: ApplicationRow,
    form: FormErrors,
) -> StatusPage<'a> {
    let lang = cx.lang;
    let content = serde_json::from_value::<ServiceContent>(app.service_content).ok();
    let currency = content.as_ref().map_or("EUR", |c| c.currency.as_str());
    let events = app
        .timeline
        .iter()
        .map(|e| Event {
            at: lang.date(&e.at),
            text: [
                Some(event_label(lang, &e.kind)),
                e.to_state.as_deref().map(|s| {
                    content
                        .as_ref()
                        .and_then(|c| state_label(c, s))
                        .map_or_else(|| s.to_owned(), |l| lang.pick(l))
                }),
                e.comment.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" – "),
        })
        .collect();
    let messages = app
        .messages
        .iter()
        .map(|m| Message {
            from_staff: m.sender == "staff",
            body: m.body.clone(),
            at: lang.date(&m.created_at),
        })
        .collect();
    let fees = app
        .fees
        .iter()
        .map(|f| Fee {
            label: content
                .as_ref()
                .and_then(|c| c.fees.iter().find(|x| x.key.as_str() == f.key))
                .map_or_else(|| f.label.clone(), |x| lang.pick(&x.label)),
            amount: lang.money(f.amount_cents, currency),
        })
        .collect();
    let awaits_citizen = content.as_ref().is_some_and(|c| {
        c.workflow
            .states
            .iter()
            .any(|s| s.key.as_str() == app.state && s.awaits_citizen)
    });
    let base = cx.link(&format!("/applications/{}", app.id));
    let mut errors = Vec::new();
    let t = cx.t;
    let paid = app.payments.iter().any(|p| {
        matches!(
            p.state.as_deref(),
            Some("PAID" | "PARTIALLY_REFUNDED" | "REFUNDED")
        )
    });
    let payments = app
        .payments
        .iter()
        .map(|p| {
            let how = match p.provider.as_deref() {
                Some("STRIPE") => t.pay_online,
                _ => t.pay_on_site,
            };
            let state = match p.state.as_deref() {
                Some("PAID") => format!(
                    "{} {}",
                    t.payment_paid,
                    p.paid_at
                        .as_deref()
                        .map(|d| lang.date(d))
                        .unwrap_or_default()
                ),
                Some("PENDING") => t.payment_pending.to_owned(),
                Some("REFUNDED" | "PARTIALLY_REFUNDED") => t.payment_refunded.to_owned(),
                _ => t.payment_ended.to_owned(),
            };
            format!("{how}: {} – {state}", lang.money(p.amount_cents, currency))
        })
        .collect();
    let pending_on_site = app
        .payments
        .iter()
        .any(|p| p.provider.as_deref() == Some("ON_SITE") && p.state.as_deref() == Some("PENDING"));
    let pay = (app.fee_total_cents > 0 && !paid && !pending_on_site).then(|| PayView {
        amount: lang.money(app.fee_total_cents, currency),
        online: app.payment_options.iter().any(|o| o == "STRIPE"),
        on_site: app.payment_options.iter().any(|o| o == "ON_SITE"),
        first: app.awaiting_payment,
    });
    for (id, e) in [
        ("payment", &form.pay),
        ("provide-message", &form.provide),
        ("message-body", &form.message),
    ] {
        if let Some(text) = e {
            errors.push(ErrorLink {
                href: format!("#{id}"),
                text: text.clone(),
            });
        }
    }
    StatusPage {
        cx,
        tenant: Some(tenant),
        service_title: content
            .as_ref()
            .map(|c| lang.pick(&c.title))
            .unwrap_or_default(),
        reference: app.reference,
        state_key: app.state.clone(),
        state: content
            .as_ref()
            .and_then(|c| state_label(c, &app.state))
            .map_or(app.state_label, |l| lang.pick(l)),
        submitted_at: lang.date(&app.submitted_at),
        events,
        messages,
        fees,
        total: lang.money(app.fee_total_cents, currency),
        awaits_citizen,
        errors,
        message_error: form.message,
        provide_error: form.provide,
        typed: form.typed,
        base,
        pay,
        pay_error: form.pay,
        payments,
        pending_on_site,
        notice: form.notice,
        appointment: content
            .as_ref()
            .is_some_and(|c| c.appointment.is_some())
            .then(|| cx.link(&format!("/applications/{}/appointment", app.id))),
    }
}

/// The payment offer on the status page.
struct PayView {
    amount: String,
    online: bool,
    on_site: bool,
    /// Processing waits for the payment.
    first: bool,
}

/// The status page of application `id`, with what a form got wrong or a notice.
async fn render(
    cx: &Cx,
    gql: &Gql<'_>,
    req: &HttpRequest,
    id: &str,
    status: StatusCode,
    form: FormErrors,
) -> HttpResponse {
    match load(gql, req, id).await {
        Ok((tenant, app, _)) => cx.html(status, &status_page(cx, &tenant, app, form)),
        Err(e) => cx.error(&e),
    }
}

/// `GET /t/{tenant}/applications/{id}`.
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let id = path.last().cloned().unwrap_or_default();
    render(&cx, &gql, &req, &id, StatusCode::OK, FormErrors::default()).await
}

/// `POST /t/{tenant}/applications/{id}/messages` (`body`) and `…/provide` (`message`): a
/// message to the office, or the information it asked for.
pub async fn write(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    payload: web::Payload,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let form = match super::apply::posted(&req, &cx, payload).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let id = path.last().cloned().unwrap_or_default();
    let token = req.cookie(APPLICATION_COOKIE).map(|c| c.value().to_owned());
    let providing = req.path().ends_with("/provide");
    let text = form
        .get(if providing { "message" } else { "body" })
        .unwrap_or_default()
        .trim()
        .to_owned();
    let de = cx.lang == super::i18n::Lang::De;
    let refuse = |gql_err: Option<ApiError>| {
        let message = match gql_err {
            None if de => "Bitte schreiben Sie eine Nachricht.".to_owned(),
            None => "Write a message.".to_owned(),
            Some(_) if de => "Die Nachricht konnte nicht angenommen werden (höchstens 10.000 Zeichen, keine Steuerzeichen).".to_owned(),
            Some(_) => "The message could not be accepted (at most 10,000 characters, no control characters).".to_owned(),
        };
        let mut errors = FormErrors {
            typed: text.clone(),
            ..FormErrors::default()
        };
        if providing {
            errors.provide = Some(message);
        } else {
            errors.message = Some(message);
        }
        errors
    };
    if text.is_empty() {
        return render(
            &cx,
            &gql,
            &req,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            refuse(None),
        )
        .await;
    }
    let answer: Result<Value, _> = if providing {
        gql.run(
            "mutation($id: ID!, $m: String, $t: String) { provideInformation(input: {id: $id, message: $m, accessToken: $t}) { application { id } } }",
            json!({ "id": id, "m": text, "t": token }),
        )
        .await
    } else {
        gql.run(
            "mutation($id: ID!, $b: String!, $t: String) { sendMessage(input: {applicationId: $id, body: $b, accessToken: $t}) { message { id } } }",
            json!({ "id": id, "b": text, "t": token }),
        )
        .await
    };
    match answer {
        Ok(_) => cx.redirect(&format!(
            "{}#{}",
            cx.link(&format!("/applications/{id}")),
            if providing { "status" } else { "messages" }
        )),
        Err(e) if e.is("VALIDATION_FAILED") => {
            let form = refuse(Some(e));
            render(&cx, &gql, &req, &id, StatusCode::UNPROCESSABLE_ENTITY, form).await
        }
        Err(e) => cx.error(&e),
    }
}

/// `POST /t/{tenant}/applications/{id}/pay` (`provider`: `STRIPE` or `ON_SITE`): starts the
/// payment of the fees the server computed; online, the browser goes on to the provider's
/// checkout.
pub async fn pay(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    payload: web::Payload,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let form = match super::apply::posted(&req, &cx, payload).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let id = path.last().cloned().unwrap_or_default();
    let token = req.cookie(APPLICATION_COOKIE).map(|c| c.value().to_owned());
    let provider = match form.get("provider") {
        Some("STRIPE") => "STRIPE",
        _ => "ON_SITE",
    };
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Started {
        checkout_url: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        start_payment: Started,
    }
    let answer: Result<Data, _> = gql
        .run(
            "mutation($id: ID!, $p: ProviderKind!, $t: String) { startPayment(input: {applicationId: $id, provider: $p, accessToken: $t}) { checkoutUrl } }",
            json!({ "id": id, "p": provider, "t": token }),
        )
        .await;
    let status_page_path = cx.link(&format!("/applications/{id}"));
    match answer {
        Ok(Data {
            start_payment: Started {
                checkout_url: Some(url),
            },
        }) => cx.redirect(&url),
        Ok(_) => cx.redirect(&format!("{status_page_path}#payment")),
        Err(e) if matches!(e.code.as_str(), "PAYMENT_FAILED" | "CONFLICT") => {
            let text = if cx.lang == super::i18n::Lang::De {
                "Die Zahlung konnte gerade nicht begonnen werden. Bitte versuchen Sie es später erneut oder wählen Sie die Zahlung an der Kasse."
            } else {
                "The payment could not be started just now. Please try again later or choose to pay at the counter."
            };
            let form = FormErrors {
                pay: Some(text.to_owned()),
                ..FormErrors::default()
            };
            render(&cx, &gql, &req, &id, StatusCode::CONFLICT, form).await
        }
        Err(e) => cx.error(&e),
    }
}

/// `GET /t/{tenant}/applications/{id}/payment/{done|cancelled}`: where the payment provider
/// sends the citizen back (the municipality's success and cancel URLs point here); the status
/// page with a notice. Whether it is paid, only the provider's signed webhook says.
pub async fn payment_return(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let (id, outcome) = super::apply::two(&path);
    let notice = if outcome == "done" {
        cx.t.payment_returned
    } else {
        cx.t.payment_cancelled
    };
    let form = FormErrors {
        notice: Some(notice.to_owned()),
        ..FormErrors::default()
    };
    render(&cx, &gql, &req, id, StatusCode::OK, form).await
}

/// `GET /t/{tenant}/applications/{id}/events`: the application's status as server-sent events
/// (the API's `applicationStatusChanged` subscription, in-process), for live updates when
/// JavaScript is on. The page works without: it shows the status of when it was loaded.
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (_, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let id = path.last().cloned().unwrap_or_default();
    let token = req.cookie(APPLICATION_COOKIE).map(|c| c.value().to_owned());
    let stream = gql.stream(
        "subscription($id: ID!, $t: String) { applicationStatusChanged(id: $id, accessToken: $t) { state at } }",
        json!({ "id": id, "t": token }),
    );
    let body = stream.map(|resp| {
        let line = if resp.errors.is_empty() {
            let data = resp.data.into_json().unwrap_or_default();
            format!(
                "event: status\ndata: {}\n\n",
                data["applicationStatusChanged"]
            )
        } else {
            // Refused (no access) or ended: the browser stops listening on `end`.
            "event: end\ndata: {}\n\n".to_owned()
        };
        Ok::<_, actix_web::Error>(web::Bytes::from(line))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        // Not compressed: each event must reach the browser at once.
        .insert_header((actix_web::http::header::CONTENT_ENCODING, "identity"))
        .streaming(body)
}

fn state_label<'c>(content: &'c ServiceContent, key: &str) -> Option<&'c crate::content::I18n> {
    content
        .workflow
        .states
        .iter()
        .find(|s| s.key.as_str() == key)
        .map(|s| &s.label)
}

fn event_label(lang: super::i18n::Lang, kind: &str) -> String {
    let de = lang == super::i18n::Lang::De;
    match kind {
        "submitted" if de => "Antrag eingegangen",
        "submitted" => "Application received",
        "transitioned" if de => "Status geändert",
        "transitioned" => "Status changed",
        "withdrawn" if de => "Antrag zurückgezogen",
        "withdrawn" => "Application withdrawn",
        "information_provided" if de => "Angaben nachgereicht",
        "information_provided" => "Information provided",
        "task_completed" if de => "Bearbeitungsschritt erledigt",
        "task_completed" => "Processing step completed",
        "message_sent" if de => "Nachricht",
        "message_sent" => "Message",
        other => other,
    }
    .to_owned()
}
