//! Appointments: a slot picker by day for the service's location, booking from the status
//! page, the confirmation with the calendar file, and the page the booking mail links to, where
//! the citizen moves or cancels the appointment. The booking's token (from the mail's link) is
//! kept in a cookie scoped to that booking's pages.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::form::ErrorLink;
use super::gql::{ApiError, Gql};
use super::i18n::Lang;
use super::page::{Cx, Deps, ErrorKind, TENANT_HEAD, TenantHead, TokenQuery, follow_access_link};
use super::status::APPLICATION_COOKIE;
use crate::graphql::CheckedSchema;
use crate::state::AppState;

/// The cookie holding a booking's token, on the booking's own path.
const BOOKING_COOKIE: &str = "ap_booking";

/// How many days the picker looks ahead for free slots.
const WINDOW_DAYS: i64 = 14;

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct LocationRow {
    id: String,
    name: String,
    address: String,
    time_zone: String,
}

#[derive(Deserialize)]
struct SlotRow {
    start: DateTime<Utc>,
    remaining: i64,
}

struct SlotView {
    value: String,
    label: String,
    checked: bool,
}

struct DayLink {
    href: String,
    label: String,
    current: bool,
}

/// The picker: the location, the days with free slots, the chosen day's slots.
struct Picker {
    location_id: String,
    location: String,
    address: String,
    day: String,
    days: Vec<DayLink>,
    slots: Vec<SlotView>,
    earlier: Option<String>,
    later: String,
}

#[derive(Deserialize)]
pub struct PickerQuery {
    day: Option<String>,
}

fn tz_of(location: &LocationRow) -> chrono_tz::Tz {
    location
        .time_zone
        .parse()
        .unwrap_or(chrono_tz::Europe::Berlin)
}

/// Free slots of `service` at `location` from `from` (a local date) for [`WINDOW_DAYS`], shown
/// for the chosen day (else the first day with any).
async fn picker(
    gql: &Gql<'_>,
    lang: Lang,
    service: &str,
    location: &LocationRow,
    query: &PickerQuery,
    chosen: Option<&str>,
    page: &str,
) -> Result<Picker, ApiError> {
    let tz = tz_of(location);
    let today = Utc::now().with_timezone(&tz).date_naive();
    let wanted = query
        .day
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .filter(|d| *d >= today && *d <= today + Duration::days(60));
    let from_day = wanted.unwrap_or(today);
    let local_midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
    };
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        available_slots: Vec<SlotRow>,
    }
    let data: Data = gql
        .run(
            "query($s: String!, $l: ID!, $f: DateTime!, $t: DateTime!) { availableSlots(serviceSlug: $s, locationId: $l, from: $f, to: $t) { start remaining } }",
            json!({
                "s": service,
                "l": location.id,
                "f": local_midnight(from_day),
                "t": local_midnight(from_day + Duration::days(WINDOW_DAYS)),
            }),
        )
        .await?;
    let mut by_day: BTreeMap<NaiveDate, Vec<&SlotRow>> = BTreeMap::new();
    for slot in data.available_slots.iter().filter(|s| s.remaining > 0) {
        by_day
            .entry(slot.start.with_timezone(&tz).date_naive())
            .or_default()
            .push(slot);
    }
    let day = wanted
        .filter(|d| by_day.contains_key(d))
        .or_else(|| by_day.keys().next().copied())
        .unwrap_or(from_day);
    let day_label = |d: NaiveDate| match lang {
        Lang::De => d.format("%d.%m.%Y").to_string(),
        Lang::En => d.format("%-d %B %Y").to_string(),
    };
    let days = by_day
        .keys()
        .map(|d| DayLink {
            href: format!("{page}?day={d}"),
            label: day_label(*d),
            current: *d == day,
        })
        .collect();
    let slots = by_day
        .get(&day)
        .map(|slots| {
            slots
                .iter()
                .map(|s| {
                    let value = s.start.to_rfc3339();
                    SlotView {
                        checked: chosen == Some(value.as_str()),
                        label: s.start.with_timezone(&tz).format("%H:%M").to_string(),
                        value,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Picker {
        location_id: location.id.clone(),
        location: location.name.clone(),
        address: location.address.clone(),
        day: day_label(day),
        days,
        slots,
        earlier: (from_day > today).then(|| {
            format!(
                "{page}?day={}",
                (from_day - Duration::days(WINDOW_DAYS)).max(today)
            )
        }),
        later: format!("{page}?day={}", from_day + Duration::days(WINDOW_DAYS)),
    })
}

/// The first location that offers the service (the municipality's locations, in order).
async fn location_for(gql: &Gql<'_>) -> Result<Option<LocationRow>, ApiError> {
    #[derive(Deserialize)]
    struct Data {
        locations: Vec<LocationRow>,
    }
    let data: Data = gql
        .run("{ locations { id name address timeZone } }", json!({}))
        .await?;
    Ok(data.locations.into_iter().next())
}

#[derive(Template)]
#[template(path = "appointment.html")]
struct BookPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    service_title: String,
    picker: Picker,
    action: String,
    name: String,
    email: String,
    errors: Vec<ErrorLink>,
    slot_error: Option<String>,
    back: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationRow {
    service_slug: String,
    service_content: Value,
    data: Option<Value>,
}

async fn application(
    gql: &Gql<'_>,
    req: &HttpRequest,
    id: &str,
) -> Result<(TenantHead, ApplicationRow, Option<String>), ApiError> {
    let token = req.cookie(APPLICATION_COOKIE).map(|c| c.value().to_owned());
    #[derive(Deserialize)]
    struct Data {
        tenant: TenantHead,
        application: ApplicationRow,
    }
    let data: Data = gql
        .run(
            &format!(
                "query($id: ID!, $t: String) {{ {TENANT_HEAD} application(id: $id, accessToken: $t) {{ serviceSlug serviceContent data }} }}"
            ),
            json!({ "id": id, "t": token }),
        )
        .await?;
    Ok((data.tenant, data.application, token))
}

fn title_of(lang: Lang, content: &Value) -> String {
    serde_json::from_value::<crate::content::I18n>(content["title"].clone())
        .map(|t| lang.pick(&t))
        .unwrap_or_default()
}

/// `GET /t/{tenant}/applications/{id}/appointment?day=`: free slots to book.
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    query: web::Query<PickerQuery>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let id = path.last().cloned().unwrap_or_default();
    render_book(&cx, &gql, &req, &id, &query, None, StatusCode::OK).await
}

#[allow(clippy::too_many_arguments)]
async fn render_book(
    cx: &Cx,
    gql: &Gql<'_>,
    req: &HttpRequest,
    id: &str,
    query: &PickerQuery,
    refused: Option<(String, Option<String>, String, String)>,
    status: StatusCode,
) -> HttpResponse {
    let (tenant, app, _) = match application(gql, req, id).await {
        Ok(x) => x,
        Err(e) => return cx.error(&e),
    };
    let location = match location_for(gql).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return cx.error_page(StatusCode::NOT_FOUND, ErrorKind::NotFound, Some(&tenant));
        }
        Err(e) => return cx.error(&e),
    };
    let page = cx.link(&format!("/applications/{id}/appointment"));
    let (slot_error, chosen, name, email) = match refused {
        Some((msg, chosen, name, email)) => (Some(msg), chosen, name, email),
        None => {
            let field = |k: &str| {
                app.data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (None, None, field("name"), field("email"))
        }
    };
    let picker = match picker(
        gql,
        cx.lang,
        &app.service_slug,
        &location,
        query,
        chosen.as_deref(),
        &page,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return cx.error(&e),
    };
    let errors = slot_error
        .iter()
        .map(|text| ErrorLink {
            href: "#slots".into(),
            text: text.clone(),
        })
        .collect();
    cx.html(
        status,
        &BookPage {
            cx,
            tenant: Some(&tenant),
            service_title: title_of(cx.lang, &app.service_content),
            picker,
            action: page,
            name,
            email,
            errors,
            slot_error,
            back: cx.link(&format!("/applications/{id}")),
        },
    )
}

/// What the API said about a slot, in the page's language.
fn slot_refused(lang: Lang, e: &ApiError) -> String {
    match (lang, e.code.as_str()) {
        (Lang::De, "SLOT_FULL") => {
            "Dieser Termin ist inzwischen vergeben. Bitte wählen Sie einen anderen.".into()
        }
        (Lang::En, "SLOT_FULL") => {
            "This slot has just been taken. Please choose another one.".into()
        }
        (Lang::De, _) => {
            "Bitte wählen Sie einen freien Termin und geben Sie Name und E-Mail-Adresse an.".into()
        }
        (Lang::En, _) => "Please choose a free slot and give your name and email address.".into(),
    }
}

/// `POST /t/{tenant}/applications/{id}/appointment`: books the chosen slot.
pub async fn book(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    payload: web::Payload,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (mut cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let form = match super::apply::posted(&req, &cx, payload).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let id = path.last().cloned().unwrap_or_default();
    let (_, app, token) = match application(&gql, &req, &id).await {
        Ok(x) => x,
        Err(e) => return cx.error(&e),
    };
    let (start, name, email) = (
        form.get("start").unwrap_or_default().to_owned(),
        form.get("name").unwrap_or_default().trim().to_owned(),
        form.get("email").unwrap_or_default().trim().to_owned(),
    );
    #[derive(Deserialize)]
    struct Booked {
        id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Payload {
        booking: Booked,
        cancel_token: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        book_appointment: Payload,
    }
    let answer: Result<Data, _> = gql
        .run(
            "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { booking { id } cancelToken } }",
            json!({ "i": {
                "serviceSlug": app.service_slug,
                "locationId": form.get("location").unwrap_or_default(),
                "start": start,
                "contact": { "name": name, "email": email },
                "applicationId": id,
                "accessToken": token,
            }}),
        )
        .await;
    match answer {
        Ok(data) => {
            let booking = data.book_appointment.booking.id;
            let booking_path = cx.link(&format!("/appointments/{booking}"));
            cx.set_cookie(
                BOOKING_COOKIE,
                data.book_appointment.cancel_token,
                booking_path.clone(),
            );
            cx.redirect(&format!("{booking_path}?booked=1"))
        }
        Err(e)
            if matches!(
                e.code.as_str(),
                "SLOT_FULL" | "VALIDATION_FAILED" | "CONFLICT"
            ) =>
        {
            let text = slot_refused(cx.lang, &e);
            let query = PickerQuery { day: None };
            let chosen = (!start.is_empty() && e.code != "SLOT_FULL").then_some(start);
            render_book(
                &cx,
                &gql,
                &req,
                &id,
                &query,
                Some((text, chosen, name, email)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => cx.error(&e),
    }
}

/// `GET /t/{tenant}/appointments/{id}/manage?token=…`: the link of the booking mail. Keeps the
/// token in the booking's cookie and continues without it in the address.
pub async fn manage_link(
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
    let id = path.last().cloned().unwrap_or_default();
    let cookie = (BOOKING_COOKIE, cx.link(&format!("/appointments/{id}")));
    follow_access_link(
        &mut cx,
        &gql,
        "query($id: ID!, $t: String!) { booking(id: $id, token: $t) { id } }",
        &id,
        query.into_inner().token,
        cookie,
    )
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookingRow {
    start: DateTime<Utc>,
    state: String,
    location_id: String,
    service_slug: String,
}

#[derive(Template)]
#[template(path = "booking.html")]
struct BookingPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    when: String,
    place: String,
    booked_now: bool,
    cancelled: bool,
    ics: String,
    picker: Option<Picker>,
    base: String,
    errors: Vec<ErrorLink>,
    slot_error: Option<String>,
}

#[derive(Deserialize)]
pub struct BookingQuery {
    day: Option<String>,
    booked: Option<String>,
}

/// `GET /t/{tenant}/appointments/{id}`: the booking, to move or cancel.
pub async fn manage(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    query: web::Query<BookingQuery>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let id = path.last().cloned().unwrap_or_default();
    let q = PickerQuery {
        day: query.day.clone(),
    };
    render_booking(
        &cx,
        &gql,
        &req,
        &id,
        &q,
        query.booked.is_some(),
        None,
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_booking(
    cx: &Cx,
    gql: &Gql<'_>,
    req: &HttpRequest,
    id: &str,
    query: &PickerQuery,
    booked_now: bool,
    slot_error: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let token = req.cookie(BOOKING_COOKIE).map(|c| c.value().to_owned());
    let Some(token) = token else {
        return cx.error_page(StatusCode::FORBIDDEN, ErrorKind::Forbidden, None);
    };
    #[derive(Deserialize)]
    struct Data {
        tenant: TenantHead,
        booking: BookingRow,
        locations: Vec<LocationRow>,
    }
    let data: Data = match gql
        .run(
            &format!(
                "query($id: ID!, $t: String!) {{ {TENANT_HEAD} booking(id: $id, token: $t) {{ start state locationId serviceSlug }} \
                 locations {{ id name address timeZone }} }}"
            ),
            json!({ "id": id, "t": token }),
        )
        .await
    {
        Ok(d) => d,
        Err(e) if e.is("NOT_FOUND") => {
            return cx.error_page(StatusCode::NOT_FOUND, ErrorKind::NotFound, None);
        }
        Err(e) => return cx.error(&e),
    };
    let Some(location) = data
        .locations
        .iter()
        .find(|l| l.id == data.booking.location_id)
        .cloned()
    else {
        return cx.error_page(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            Some(&data.tenant),
        );
    };
    let tz = tz_of(&location);
    let local = data.booking.start.with_timezone(&tz);
    let when = match cx.lang {
        Lang::De => local.format("%d.%m.%Y, %H:%M Uhr").to_string(),
        Lang::En => local.format("%-d %B %Y, %H:%M").to_string(),
    };
    let base = cx.link(&format!("/appointments/{id}"));
    let cancelled = data.booking.state == "cancelled";
    let picker = if cancelled || data.booking.start <= Utc::now() {
        None
    } else {
        match picker(
            gql,
            cx.lang,
            &data.booking.service_slug,
            &location,
            query,
            None,
            &base,
        )
        .await
        {
            Ok(p) => Some(p),
            Err(e) => return cx.error(&e),
        }
    };
    let errors = slot_error
        .iter()
        .map(|text| ErrorLink {
            href: "#slots".into(),
            text: text.clone(),
        })
        .collect();
    cx.html(
        status,
        &BookingPage {
            cx,
            tenant: Some(&data.tenant),
            when,
            place: format!("{}, {}", location.name, location.address),
            booked_now,
            cancelled,
            ics: format!(
                "/bookings/{id}.ics?tenant={}&token={}",
                cx.slug,
                percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC)
            ),
            picker,
            base,
            errors,
            slot_error,
        },
    )
}

/// `POST /t/{tenant}/appointments/{id}/cancel` and `…/reschedule` (`start`).
pub async fn change(
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
    let token = req
        .cookie(BOOKING_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let cancelling = req.path().ends_with("/cancel");
    let answer: Result<Value, _> = if cancelling {
        gql.run(
            "mutation($id: ID!, $t: String!) { cancelBooking(input: {id: $id, token: $t}) { booking { id } } }",
            json!({ "id": id, "t": token }),
        )
        .await
    } else {
        gql.run(
            "mutation($id: ID!, $t: String!, $s: DateTime!) { rescheduleBooking(input: {id: $id, token: $t, start: $s}) { booking { id } } }",
            json!({ "id": id, "t": token, "s": form.get("start").unwrap_or_default() }),
        )
        .await
    };
    let base = cx.link(&format!("/appointments/{id}"));
    match answer {
        Ok(_) => cx.redirect(&base),
        Err(e)
            if matches!(
                e.code.as_str(),
                "SLOT_FULL" | "VALIDATION_FAILED" | "CONFLICT"
            ) =>
        {
            let text = slot_refused(cx.lang, &e);
            let q = PickerQuery { day: None };
            render_booking(
                &cx,
                &gql,
                &req,
                &id,
                &q,
                false,
                Some(text),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => cx.error(&e),
    }
}
