//! Locations and offers (tenant administrators): the opening calendar as stored and checked,
//! counters (resources) matched by key, and services made bookable at a location.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveTime, Utc, Weekday};
use entity::{
    appointment_offers, booking_resources, locations, service_revisions, tenant_services,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::availability::{Calendar, DayOverride, Window};
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant, begin_tenant_write};
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
    db: &DatabaseConnection,
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
    let existing = txn
        .select::<locations::Entity>()
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
    let current = txn
        .select::<booking_resources::Entity>()
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
        &ctx.actor(),
        "location.saved",
        location.id.to_string(),
        serde_json::json!({ "key": location.key }),
    )
    .await?;
    let resources = active_resources(&txn, location.id).await?;
    txn.commit().await?;
    Ok((location, resources))
}

pub(super) async fn active_resources(
    txn: &TenantTx,
    location: Uuid,
) -> AppResult<Vec<booking_resources::Model>> {
    Ok(txn
        .select::<booking_resources::Entity>()
        .filter(booking_resources::Column::LocationId.eq(location))
        .filter(booking_resources::Column::Active.eq(true))
        .order_by_asc(booking_resources::Column::Key)
        .all(txn)
        .await?)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferInput {
    pub service_slug: String,
    pub location_id: Uuid,
    pub duration_minutes: Option<i32>,
    pub buffer_minutes: i32,
    pub min_notice_minutes: i32,
    pub horizon_days: i32,
    pub requires_application: bool,
    pub max_open_per_contact: i32,
    /// Minutes a slot may be held before booking; 0: no holds.
    pub hold_minutes: i32,
    /// Proof of work demanded per booking or hold; 0: none.
    pub challenge_bits: i32,
}

/// `appointment.durationMinutes` of a service's current content, if it names one.
async fn content_duration(
    txn: &TenantTx,
    service: &tenant_services::Model,
) -> AppResult<Option<i32>> {
    let revision = txn
        .select::<service_revisions::Entity>()
        .filter(service_revisions::Column::ServiceId.eq(service.id))
        .filter(service_revisions::Column::Revision.eq(service.current_revision))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("service revision"))?;
    let content: crate::content::ServiceContent = serde_json::from_value(revision.content)
        .map_err(|e| AppError::internal("reading a stored service revision", e))?;
    Ok(content
        .appointment
        .as_ref()
        .map(|a| i32::try_from(a.duration_minutes).unwrap_or(i32::MAX)))
}

/// Makes a service bookable at a location, or changes how (tenant administrators). The duration
/// defaults to the service content's `appointment.durationMinutes`.
pub async fn set_offer(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    input: OfferInput,
) -> AppResult<appointment_offers::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Slug.eq(input.service_slug.as_str()))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    let location = find_location(&txn, input.location_id).await?;
    let content_duration = match input.duration_minutes {
        Some(_) => None,
        None => content_duration(&txn, &service).await?,
    };
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
        ("input.holdMinutes", input.hold_minutes, 0..=60),
        (
            "input.challengeBits",
            input.challenge_bits,
            0..=super::guard::MAX_CHALLENGE_BITS,
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
    let existing = txn
        .select::<appointment_offers::Entity>()
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
            a.hold_minutes = Set(input.hold_minutes);
            a.challenge_bits = Set(input.challenge_bits);
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
                hold_minutes: Set(input.hold_minutes),
                challenge_bits: Set(input.challenge_bits),
            }
            .insert(&txn)
            .await?
        }
    };
    txn.commit().await?;
    Ok(offer)
}

pub(super) async fn find_location(txn: &TenantTx, id: Uuid) -> AppResult<locations::Model> {
    txn.select::<locations::Entity>()
        .filter(locations::Column::Id.eq(id))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("location"))
}

/// The tenant's locations with their active resources (public: citizens choose where to go).
pub async fn locations(
    db: &DatabaseConnection,
    tenant: TenantId,
) -> AppResult<Vec<(locations::Model, Vec<booking_resources::Model>)>> {
    let txn = begin_tenant(db, tenant).await?;
    let locs = txn
        .select::<locations::Entity>()
        .order_by_asc(locations::Column::Key)
        .all(&txn)
        .await?;
    let resources = txn
        .select::<booking_resources::Entity>()
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
