//! Locations, offers, availability and bookings.
//!
//! A booking runs in one write transaction that locks the location's resource rows (PostgreSQL
//! `FOR UPDATE`; SQLite write transactions are exclusive), reads the bookings that overlap the
//! requested time, and inserts only if a resource has room. Concurrent bookings of one location
//! queue on that lock, so capacity is never exceeded; a full slot is `SLOT_FULL`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use entity::{appointment_offers, booking_resources, bookings, locations, tenant_services};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::availability::{self, Busy, Calendar, DayOverride, Offer, Resource, Slot, Window};
use crate::auth::tokens::{constant_time_eq, hash_secret, random_secret};
use crate::context::TenantCtx;
use crate::db::{Db, begin_tenant, begin_tenant_write, scoped};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::ids::TenantId;
use crate::tenancy::types::{Slug, TimeZone};

// ---- the calendar as stored --------------------------------------------------------------------

/// Weekly opening hours of a location: one entry per window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoursEntry {
    /// `mon` … `sun`.
    pub weekday: String,
    /// `HH:MM`, local time.
    pub opens: String,
    pub closes: String,
}

/// Special opening hours on a date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowEntry {
    pub opens: String,
    pub closes: String,
}

/// A dated exception: closed (holiday, closure), or special hours instead of the weekly ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionEntry {
    pub date: NaiveDate,
    #[serde(default)]
    pub closed: bool,
    #[serde(default)]
    pub hours: Vec<WindowEntry>,
    #[serde(default)]
    pub reason: Option<String>,
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn time(field: &str, raw: &str, errors: &mut FieldErrors) -> NaiveTime {
    NaiveTime::parse_from_str(raw, "%H:%M").unwrap_or_else(|_| {
        errors.insert(field.to_owned(), "must be a time HH:MM".into());
        NaiveTime::MIN
    })
}

fn window(field: &str, opens: &str, closes: &str, errors: &mut FieldErrors) -> Window {
    let w = Window {
        opens: time(&format!("{field}.opens"), opens, errors),
        closes: time(&format!("{field}.closes"), closes, errors),
    };
    if w.opens >= w.closes && !errors.keys().any(|k| k.starts_with(field)) {
        errors.insert(
            format!("{field}.closes"),
            "must be after the opening time".into(),
        );
    }
    w
}

/// Parses and checks a calendar; errors name the input path.
fn calendar_of(
    tz: chrono_tz::Tz,
    hours: &[HoursEntry],
    exceptions: &[ExceptionEntry],
    errors: &mut FieldErrors,
) -> Calendar {
    let mut weekly = Vec::new();
    for (i, h) in hours.iter().enumerate() {
        let field = format!("input.hours.{i}");
        let day = WEEKDAYS
            .iter()
            .find(|(k, _)| *k == h.weekday)
            .map(|(_, d)| *d);
        let w = window(&field, &h.opens, &h.closes, errors);
        match day {
            Some(d) => weekly.push((d, w)),
            None => {
                errors.insert(format!("{field}.weekday"), "one of mon … sun".into());
            }
        }
    }
    let mut overrides = BTreeMap::new();
    for (i, e) in exceptions.iter().enumerate() {
        let field = format!("input.exceptions.{i}");
        let value = if e.closed {
            if !e.hours.is_empty() {
                errors.insert(format!("{field}.hours"), "a closed day has no hours".into());
            }
            DayOverride::Closed
        } else if e.hours.is_empty() {
            errors.insert(
                format!("{field}.hours"),
                "give special hours, or set closed".into(),
            );
            DayOverride::Closed
        } else {
            DayOverride::Special(
                e.hours
                    .iter()
                    .enumerate()
                    .map(|(j, w)| {
                        window(&format!("{field}.hours.{j}"), &w.opens, &w.closes, errors)
                    })
                    .collect(),
            )
        };
        if overrides.insert(e.date, value).is_some() {
            errors.insert(format!("{field}.date"), "this date is listed twice".into());
        }
    }
    Calendar {
        tz,
        weekly,
        overrides,
    }
}

/// The stored calendar of a location.
pub fn calendar(location: &locations::Model) -> AppResult<Calendar> {
    let hours: Vec<HoursEntry> = serde_json::from_value(location.hours.clone())
        .map_err(|e| AppError::internal("reading opening hours", e))?;
    let exceptions: Vec<ExceptionEntry> = serde_json::from_value(location.exceptions.clone())
        .map_err(|e| AppError::internal("reading opening exceptions", e))?;
    let tz = location
        .time_zone
        .parse()
        .map_err(|e| AppError::internal("reading a time zone", anyhow::anyhow!("{e}")))?;
    let mut errors = FieldErrors::new();
    let cal = calendar_of(tz, &hours, &exceptions, &mut errors);
    if errors.is_empty() {
        Ok(cal)
    } else {
        Err(AppError::internal(
            "reading a stored calendar",
            anyhow::anyhow!("{errors:?}"),
        ))
    }
}

// ---- administration ----------------------------------------------------------------------------

pub struct ResourceInput {
    pub key: String,
    pub name: String,
    pub capacity: i32,
}

pub struct LocationInput {
    pub key: String,
    pub name: String,
    pub address: String,
    pub time_zone: String,
    pub resources: Vec<ResourceInput>,
    pub hours: Vec<HoursEntry>,
    pub exceptions: Vec<ExceptionEntry>,
}

const MAX_RESOURCES: usize = 50;
const MAX_HOURS: usize = 70;
const MAX_EXCEPTIONS: usize = 1000;

/// Creates or replaces a location by key (tenant administrators): name, address, time zone,
/// weekly hours and exceptions as given; resources matched by key (new ones added, missing ones
/// deactivated — their bookings stay).
pub async fn save_location(
    db: &Db,
    ctx: &TenantCtx,
    input: LocationInput,
) -> AppResult<(locations::Model, Vec<booking_resources::Model>)> {
    ctx.require_tenant_admin()?;
    let mut errors = FieldErrors::new();
    let key = Slug::parse("input.key", &input.key);
    let tz = TimeZone::parse("input.timeZone", &input.time_zone);
    if input.name.trim().is_empty() || input.name.len() > 200 {
        errors.insert("input.name".into(), "must have 1 to 200 characters".into());
    }
    if input.address.len() > 500 {
        errors.insert("input.address".into(), "at most 500 characters".into());
    }
    if input.resources.is_empty() || input.resources.len() > MAX_RESOURCES {
        errors.insert(
            "input.resources".into(),
            format!("between 1 and {MAX_RESOURCES} counters or desks"),
        );
    }
    if input.hours.len() > MAX_HOURS || input.exceptions.len() > MAX_EXCEPTIONS {
        errors.insert(
            "input.exceptions".into(),
            format!("at most {MAX_HOURS} weekly windows and {MAX_EXCEPTIONS} exceptions"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in input.resources.iter().enumerate() {
        if let Err(AppError::Validation(f)) =
            Slug::parse(&format!("input.resources.{i}.key"), &r.key)
        {
            errors.extend(f);
        }
        if !seen.insert(r.key.trim().to_owned()) {
            errors.insert(format!("input.resources.{i}.key"), "listed twice".into());
        }
        if !(1..=100).contains(&r.capacity) {
            errors.insert(
                format!("input.resources.{i}.capacity"),
                "between 1 and 100".into(),
            );
        }
    }
    let tz_parsed = tz
        .as_ref()
        .ok()
        .and_then(|t| t.as_str().parse::<chrono_tz::Tz>().ok())
        .unwrap_or(chrono_tz::UTC);
    calendar_of(tz_parsed, &input.hours, &input.exceptions, &mut errors);
    for r in [key.as_ref().err(), tz.as_ref().err()]
        .into_iter()
        .flatten()
    {
        if let AppError::Validation(f) = r {
            errors.extend(f.clone());
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let (key, tz) = (key?, tz?);
    let now = Utc::now();
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let existing = scoped::<locations::Entity>(ctx.tenant_id)
        .filter(locations::Column::Key.eq(key.as_str()))
        .one(&txn)
        .await?;
    let hours = serde_json::to_value(&input.hours).unwrap_or_default();
    let exceptions = serde_json::to_value(&input.exceptions).unwrap_or_default();
    let location = match existing {
        Some(l) => {
            let mut a: locations::ActiveModel = l.into();
            a.name = Set(input.name.trim().to_owned());
            a.address = Set(input.address.trim().to_owned());
            a.time_zone = Set(tz.as_str().to_owned());
            a.hours = Set(hours);
            a.exceptions = Set(exceptions);
            a.updated_at = Set(now);
            a.update(&txn).await?
        }
        None => {
            locations::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id.0),
                key: Set(key.as_str().to_owned()),
                name: Set(input.name.trim().to_owned()),
                address: Set(input.address.trim().to_owned()),
                time_zone: Set(tz.as_str().to_owned()),
                hours: Set(hours),
                exceptions: Set(exceptions),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?
        }
    };
    let current = scoped::<booking_resources::Entity>(ctx.tenant_id)
        .filter(booking_resources::Column::LocationId.eq(location.id))
        .all(&txn)
        .await?;
    for old in &current {
        if !input.resources.iter().any(|r| r.key.trim() == old.key) && old.active {
            let mut a: booking_resources::ActiveModel = old.clone().into();
            a.active = Set(false);
            a.update(&txn).await?;
        }
    }
    for r in &input.resources {
        match current.iter().find(|c| c.key == r.key.trim()) {
            Some(c) => {
                let mut a: booking_resources::ActiveModel = c.clone().into();
                a.name = Set(r.name.trim().to_owned());
                a.capacity = Set(r.capacity);
                a.active = Set(true);
                a.update(&txn).await?;
            }
            None => {
                booking_resources::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    tenant_id: Set(ctx.tenant_id.0),
                    location_id: Set(location.id),
                    key: Set(r.key.trim().to_owned()),
                    name: Set(r.name.trim().to_owned()),
                    capacity: Set(r.capacity),
                    active: Set(true),
                }
                .insert(&txn)
                .await?;
            }
        }
    }
    crate::audit::record(
        &txn,
        ctx.tenant_id,
        &ctx.actor(),
        "location.saved",
        location.id.to_string(),
        serde_json::json!({ "key": location.key }),
    )
    .await?;
    let resources = active_resources(&txn, ctx.tenant_id, location.id).await?;
    txn.commit().await?;
    Ok((location, resources))
}

async fn active_resources<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    location: Uuid,
) -> AppResult<Vec<booking_resources::Model>> {
    Ok(scoped::<booking_resources::Entity>(tenant)
        .filter(booking_resources::Column::LocationId.eq(location))
        .filter(booking_resources::Column::Active.eq(true))
        .order_by_asc(booking_resources::Column::Key)
        .all(conn)
        .await?)
}

pub struct OfferInput {
    pub service_slug: String,
    pub location_id: Uuid,
    pub duration_minutes: Option<i32>,
    pub buffer_minutes: i32,
    pub min_notice_minutes: i32,
    pub horizon_days: i32,
    pub requires_application: bool,
    pub max_open_per_contact: i32,
}

/// Makes a service bookable at a location, or changes how (tenant administrators). The duration
/// defaults to the service content's `appointment.durationMinutes`.
pub async fn set_offer(
    deps: &crate::applications::service::Deps,
    ctx: &TenantCtx,
    input: OfferInput,
) -> AppResult<appointment_offers::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let service = scoped::<tenant_services::Entity>(ctx.tenant_id)
        .filter(tenant_services::Column::Slug.eq(input.service_slug.as_str()))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    let location = find_location(&txn, ctx.tenant_id, input.location_id).await?;
    let content_duration = deps
        .pinned(&txn, ctx.tenant_id, service.id, service.current_revision)
        .await?
        .content
        .appointment
        .as_ref()
        .map(|a| i32::try_from(a.duration_minutes).unwrap_or(i32::MAX));
    let duration = input.duration_minutes.or(content_duration).ok_or_else(|| {
        AppError::invalid(
            "input.durationMinutes",
            "the service content names no appointment duration; give one",
        )
    })?;
    let mut errors = FieldErrors::new();
    for (field, value, range) in [
        ("input.durationMinutes", duration, 5..=480),
        ("input.bufferMinutes", input.buffer_minutes, 0..=240),
        (
            "input.minNoticeMinutes",
            input.min_notice_minutes,
            0..=60 * 24 * 30,
        ),
        ("input.horizonDays", input.horizon_days, 1..=366),
        (
            "input.maxOpenPerContact",
            input.max_open_per_contact,
            1..=20,
        ),
    ] {
        if !range.contains(&value) {
            errors.insert(
                field.into(),
                format!("between {} and {}", range.start(), range.end()),
            );
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let existing = scoped::<appointment_offers::Entity>(ctx.tenant_id)
        .filter(appointment_offers::Column::ServiceId.eq(service.id))
        .filter(appointment_offers::Column::LocationId.eq(location.id))
        .one(&txn)
        .await?;
    let offer = match existing {
        Some(o) => {
            let mut a: appointment_offers::ActiveModel = o.into();
            a.duration_minutes = Set(duration);
            a.buffer_minutes = Set(input.buffer_minutes);
            a.min_notice_minutes = Set(input.min_notice_minutes);
            a.horizon_days = Set(input.horizon_days);
            a.requires_application = Set(input.requires_application);
            a.max_open_per_contact = Set(input.max_open_per_contact);
            a.update(&txn).await?
        }
        None => {
            appointment_offers::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id.0),
                service_id: Set(service.id),
                location_id: Set(location.id),
                duration_minutes: Set(duration),
                buffer_minutes: Set(input.buffer_minutes),
                min_notice_minutes: Set(input.min_notice_minutes),
                horizon_days: Set(input.horizon_days),
                requires_application: Set(input.requires_application),
                max_open_per_contact: Set(input.max_open_per_contact),
            }
            .insert(&txn)
            .await?
        }
    };
    txn.commit().await?;
    Ok(offer)
}

async fn find_location<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    id: Uuid,
) -> AppResult<locations::Model> {
    scoped::<locations::Entity>(tenant)
        .filter(locations::Column::Id.eq(id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("location"))
}

/// The tenant's locations with their active resources (public: citizens choose where to go).
pub async fn locations(
    db: &Db,
    tenant: TenantId,
) -> AppResult<Vec<(locations::Model, Vec<booking_resources::Model>)>> {
    let txn = begin_tenant(db, tenant).await?;
    let locs = scoped::<locations::Entity>(tenant)
        .order_by_asc(locations::Column::Key)
        .all(&txn)
        .await?;
    let resources = scoped::<booking_resources::Entity>(tenant)
        .filter(booking_resources::Column::Active.eq(true))
        .order_by_asc(booking_resources::Column::Key)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(locs
        .into_iter()
        .map(|l| {
            let mine = resources
                .iter()
                .filter(|r| r.location_id == l.id)
                .cloned()
                .collect();
            (l, mine)
        })
        .collect())
}

// ---- availability and booking ------------------------------------------------------------------

/// Everything a booking or an availability query of one (service, location) needs.
struct Bookable {
    service: tenant_services::Model,
    location: locations::Model,
    offer: appointment_offers::Model,
    calendar: Calendar,
    rules: Offer,
}

async fn bookable<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    service_slug: &str,
    location_id: Uuid,
) -> AppResult<Bookable> {
    let service = scoped::<tenant_services::Entity>(tenant)
        .filter(tenant_services::Column::Slug.eq(service_slug))
        .one(conn)
        .await?
        .filter(|s| s.status == "live")
        .ok_or(AppError::NotFound("service"))?;
    let location = find_location(conn, tenant, location_id).await?;
    let offer = scoped::<appointment_offers::Entity>(tenant)
        .filter(appointment_offers::Column::ServiceId.eq(service.id))
        .filter(appointment_offers::Column::LocationId.eq(location.id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound(
            "appointment offer (this service is not bookable at this location)",
        ))?;
    let calendar = calendar(&location)?;
    let rules = Offer {
        duration: Duration::minutes(i64::from(offer.duration_minutes)),
        buffer: Duration::minutes(i64::from(offer.buffer_minutes)),
        min_notice: Duration::minutes(i64::from(offer.min_notice_minutes)),
        horizon: Duration::days(i64::from(offer.horizon_days)),
    };
    Ok(Bookable {
        service,
        location,
        offer,
        calendar,
        rules,
    })
}

/// Bookings that occupy the given resources somewhere in `[from, to)`, except `except` (a
/// booking being moved does not compete with itself).
async fn busy<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    resources: &[Uuid],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    except: Option<Uuid>,
) -> AppResult<Vec<Busy>> {
    let mut select = scoped::<bookings::Entity>(tenant);
    if let Some(id) = except {
        select = select.filter(bookings::Column::Id.ne(id));
    }
    Ok(select
        .filter(bookings::Column::ResourceId.is_in(resources.to_vec()))
        .filter(bookings::Column::State.ne("cancelled"))
        .filter(bookings::Column::StartAt.lt(to))
        .filter(bookings::Column::BlockedUntil.gt(from))
        .all(conn)
        .await?
        .into_iter()
        .map(|b| Busy {
            resource: b.resource_id,
            start: b.start_at,
            end: b.blocked_until,
        })
        .collect())
}

fn as_resources(rows: &[booking_resources::Model]) -> Vec<Resource> {
    rows.iter()
        .map(|r| Resource {
            id: r.id,
            capacity: u32::try_from(r.capacity).unwrap_or(0),
        })
        .collect()
}

/// `availableSlots`: the slots of a service at a location in `[from, to)` with their remaining
/// capacity (public).
pub async fn available_slots(
    db: &Db,
    tenant: TenantId,
    service_slug: &str,
    location_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<Slot>> {
    if to <= from || to - from > Duration::days(availability::MAX_RANGE_DAYS) {
        return Err(AppError::invalid(
            "to",
            format!(
                "must be after `from`, at most {} days later",
                availability::MAX_RANGE_DAYS
            ),
        ));
    }
    let txn = begin_tenant(db, tenant).await?;
    let b = bookable(&txn, tenant, service_slug, location_id).await?;
    let resources = active_resources(&txn, tenant, b.location.id).await?;
    let ids: Vec<Uuid> = resources.iter().map(|r| r.id).collect();
    let window = (from, to + b.rules.duration + b.rules.buffer);
    let taken = busy(&txn, tenant, &ids, window, None).await?;
    txn.commit().await?;
    Ok(availability::available(
        &b.calendar,
        &b.rules,
        &as_resources(&resources),
        &taken,
        from,
        to,
        Utc::now(),
    ))
}

pub struct BookInput {
    pub service_slug: String,
    pub location_id: Uuid,
    pub start: DateTime<Utc>,
    pub contact_name: String,
    pub contact_email: String,
    pub application_id: Option<Uuid>,
    pub access_token: Option<String>,
}

fn check_contact(name: &str, email: &str) -> AppResult<String> {
    let mut errors = FieldErrors::new();
    if name.trim().is_empty() || name.len() > 200 {
        errors.insert(
            "input.contact.name".into(),
            "must have 1 to 200 characters".into(),
        );
    }
    let email = email.trim().to_lowercase();
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        errors.insert(
            "input.contact.email".into(),
            "is not an email address".into(),
        );
    }
    if errors.is_empty() {
        Ok(email)
    } else {
        Err(AppError::Validation(errors))
    }
}

fn slot_full(why: &str) -> AppError {
    tracing::debug!(why, "slot refused");
    AppError::SlotFull
}

/// A start that is not on the offer's grid, on a closed day, too soon or too far ahead is
/// `SLOT_FULL` (no longer valid) like a full one.
fn check_slot(b: &Bookable, start: DateTime<Utc>, now: DateTime<Utc>) -> AppResult<()> {
    if b.calendar.offers(&b.rules, start) && availability::bookable_at(&b.rules, start, now) {
        Ok(())
    } else {
        Err(slot_full("not a bookable slot now"))
    }
}

/// Where and until when an appointment at `start` goes.
struct Place {
    resource: Uuid,
    end: DateTime<Utc>,
    blocked: DateTime<Utc>,
}

/// Locks the location's resources (for the rest of the transaction) and finds one with room at
/// `start`, not counting the booking `except`; none is `SLOT_FULL`.
async fn free_place(
    txn: &sea_orm::DatabaseTransaction,
    tenant: TenantId,
    b: &Bookable,
    start: DateTime<Utc>,
    except: Option<Uuid>,
) -> AppResult<Place> {
    let resources = lock_resources(txn, tenant, b.location.id).await?;
    let ids: Vec<Uuid> = resources.iter().map(|r| r.id).collect();
    let end = start + b.rules.duration;
    let blocked = end + b.rules.buffer;
    let taken = busy(txn, tenant, &ids, (start, blocked), except).await?;
    let resource = availability::free_resource(&as_resources(&resources), &taken, start, blocked)
        .ok_or_else(|| slot_full("no resource has room"))?;
    Ok(Place {
        resource,
        end,
        blocked,
    })
}

/// `bookAppointment`: books the slot at `start` on a resource with room, or answers `SLOT_FULL`.
/// Returns the booking and its cancel token (shown once; only its hash is stored).
pub async fn book(
    deps: &crate::applications::service::Deps,
    ctx: &TenantCtx,
    input: BookInput,
) -> AppResult<(bookings::Model, String)> {
    let email = check_contact(&input.contact_name, &input.contact_email)?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let b = bookable(&txn, ctx.tenant_id, &input.service_slug, input.location_id).await?;
    let now = Utc::now();
    check_slot(&b, input.start, now)?;
    if b.offer.requires_application || input.application_id.is_some() {
        let id = input.application_id.ok_or_else(|| {
            AppError::invalid(
                "input.applicationId",
                "this appointment is booked after submitting the application",
            )
        })?;
        let app = crate::applications::service::find(&txn, ctx.tenant_id, id).await?;
        let viewer =
            crate::applications::service::viewer_of(&txn, ctx, &app, input.access_token.as_deref())
                .await?;
        if viewer != crate::applications::service::Viewer::Applicant
            || app.service_id != b.service.id
        {
            return Err(AppError::NotFound("application"));
        }
    }
    let open = scoped::<bookings::Entity>(ctx.tenant_id)
        .filter(bookings::Column::ServiceId.eq(b.service.id))
        .filter(bookings::Column::ContactEmail.eq(email.as_str()))
        .filter(bookings::Column::State.eq("booked"))
        .filter(bookings::Column::StartAt.gt(now))
        .count(&txn)
        .await?;
    if open >= u64::try_from(b.offer.max_open_per_contact).unwrap_or(1) {
        return Err(AppError::conflict(
            "input.contact.email",
            format!(
                "this contact already holds {open} open appointment(s) for this service; cancel one first"
            ),
        ));
    }

    let Place {
        resource,
        end,
        blocked,
    } = free_place(&txn, ctx.tenant_id, &b, input.start, None).await?;
    let token = random_secret();
    let booking = bookings::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id.0),
        service_id: Set(b.service.id),
        location_id: Set(b.location.id),
        resource_id: Set(resource),
        application_id: Set(input.application_id),
        start_at: Set(input.start),
        end_at: Set(end),
        blocked_until: Set(blocked),
        state: Set("booked".into()),
        contact_name: Set(input.contact_name.trim().to_owned()),
        contact_email: Set(email),
        cancel_hash: Set(hash_secret(&token)),
        created_at: Set(now),
        cancelled_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok((booking, token))
}

/// The booking `id` if `token` is its cancel token; anything else is `NOT_FOUND`.
async fn by_token<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    id: Uuid,
    token: &str,
) -> AppResult<bookings::Model> {
    let booking = scoped::<bookings::Entity>(tenant)
        .filter(bookings::Column::Id.eq(id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("booking"))?;
    if constant_time_eq(&booking.cancel_hash, &hash_secret(token)) {
        Ok(booking)
    } else {
        Err(AppError::NotFound("booking"))
    }
}

/// `cancelBooking`: frees the slot. Only before the appointment, only with the booking's token.
pub async fn cancel(db: &Db, ctx: &TenantCtx, id: Uuid, token: &str) -> AppResult<bookings::Model> {
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let booking = by_token(&txn, ctx.tenant_id, id, token).await?;
    if booking.state != "booked" {
        return Err(AppError::conflict(
            "input.id",
            "this booking is already cancelled",
        ));
    }
    if booking.start_at <= Utc::now() {
        return Err(AppError::conflict(
            "input.id",
            "the appointment has begun; it can no longer be cancelled",
        ));
    }
    let mut a: bookings::ActiveModel = booking.into();
    a.state = Set("cancelled".into());
    a.cancelled_at = Set(Some(Utc::now()));
    let booking = a.update(&txn).await?;
    txn.commit().await?;
    Ok(booking)
}

/// `rescheduleBooking`: moves a booking to another slot in one transaction, keeping its id and
/// token. If the new slot is full (or not bookable) the booking stays where it was.
pub async fn reschedule(
    db: &Db,
    ctx: &TenantCtx,
    id: Uuid,
    token: &str,
    start: DateTime<Utc>,
) -> AppResult<bookings::Model> {
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let booking = by_token(&txn, ctx.tenant_id, id, token).await?;
    let now = Utc::now();
    if booking.state != "booked" || booking.start_at <= now {
        return Err(AppError::conflict(
            "input.id",
            "only future, not cancelled appointments can be moved",
        ));
    }
    let service = scoped::<tenant_services::Entity>(ctx.tenant_id)
        .filter(tenant_services::Column::Id.eq(booking.service_id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    let b = bookable(&txn, ctx.tenant_id, &service.slug, booking.location_id).await?;
    check_slot(&b, start, now)?;
    // The booking's own place does not count against its new time.
    let Place {
        resource,
        end,
        blocked,
    } = free_place(&txn, ctx.tenant_id, &b, start, Some(booking.id)).await?;
    let mut a: bookings::ActiveModel = booking.into();
    a.start_at = Set(start);
    a.end_at = Set(end);
    a.blocked_until = Set(blocked);
    a.resource_id = Set(resource);
    let booking = a.update(&txn).await?;
    txn.commit().await?;
    Ok(booking)
}

/// The active resources of a location, locked for the rest of the transaction.
async fn lock_resources(
    txn: &sea_orm::DatabaseTransaction,
    tenant: TenantId,
    location: Uuid,
) -> AppResult<Vec<booking_resources::Model>> {
    let mut select = scoped::<booking_resources::Entity>(tenant)
        .filter(booking_resources::Column::LocationId.eq(location))
        .filter(booking_resources::Column::Active.eq(true))
        .order_by_asc(booking_resources::Column::Key);
    if txn.get_database_backend() == DbBackend::Postgres {
        select = select.lock_exclusive();
    }
    Ok(select.all(txn).await?)
}

/// Staff may see and mark bookings: tenant administrators and staff of the tenant.
pub(crate) fn require_staff(ctx: &TenantCtx) -> AppResult<()> {
    match ctx.principal {
        crate::context::Principal::Staff { .. }
        | crate::context::Principal::PlatformAdmin { .. } => Ok(()),
        crate::context::Principal::Anonymous => Err(AppError::Unauthenticated),
        _ => Err(AppError::Forbidden("for the municipality's staff")),
    }
}

/// The bookings of a location on a local date (staff), in time order, cancelled ones included.
pub async fn day(
    db: &Db,
    ctx: &TenantCtx,
    location_id: Uuid,
    date: NaiveDate,
) -> AppResult<(locations::Model, Vec<bookings::Model>)> {
    require_staff(ctx)?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let location = find_location(&txn, ctx.tenant_id, location_id).await?;
    let cal = calendar(&location)?;
    let local_start = |d: NaiveDate| {
        use chrono::TimeZone as _;
        cal.tz
            .from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(to)) = (local_start(date), local_start(date + Duration::days(1))) else {
        return Err(AppError::invalid("date", "is not a date of this location"));
    };
    let rows = scoped::<bookings::Entity>(ctx.tenant_id)
        .filter(bookings::Column::LocationId.eq(location.id))
        .filter(bookings::Column::StartAt.gte(from))
        .filter(bookings::Column::StartAt.lt(to))
        .order_by_asc(bookings::Column::StartAt)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok((location, rows))
}

/// Marks that the citizen did not come (staff; once the appointment has begun).
pub async fn mark_no_show(db: &Db, ctx: &TenantCtx, id: Uuid) -> AppResult<bookings::Model> {
    require_staff(ctx)?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let booking = scoped::<bookings::Entity>(ctx.tenant_id)
        .filter(bookings::Column::Id.eq(id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("booking"))?;
    if booking.state != "booked" {
        return Err(AppError::conflict(
            "input.id",
            "only booked appointments can be missed",
        ));
    }
    if booking.start_at > Utc::now() {
        return Err(AppError::conflict(
            "input.id",
            "the appointment has not begun yet",
        ));
    }
    let mut a: bookings::ActiveModel = booking.into();
    a.state = Set("no_show".into());
    let booking = a.update(&txn).await?;
    txn.commit().await?;
    Ok(booking)
}

/// A booking with what its calendar file shows, for its holder.
pub async fn for_ics(
    db: &Db,
    ctx: &TenantCtx,
    id: Uuid,
    token: &str,
) -> AppResult<(bookings::Model, locations::Model, String)> {
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let booking = by_token(&txn, ctx.tenant_id, id, token).await?;
    let location = find_location(&txn, ctx.tenant_id, booking.location_id).await?;
    let service = scoped::<tenant_services::Entity>(ctx.tenant_id)
        .filter(tenant_services::Column::Id.eq(booking.service_id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    txn.commit().await?;
    Ok((booking, location, service.title))
}
