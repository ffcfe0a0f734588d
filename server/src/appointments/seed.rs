//! Locations and offers declared in a tenant file (`[[locations]]`, `[[appointment_offers]]`),
//! applied after the file's services through the same [`admin::save_location`] and
//! [`admin::set_offer`] the GraphQL API uses. What already matches the file is left alone, so
//! applying twice changes nothing; an edited entry is saved again.

use entity::{appointment_offers, booking_resources, locations, tenant_services};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter};
use serde::Deserialize;

use super::admin::{self, ExceptionEntry, HoursEntry, LocationInput, OfferInput, ResourceInput};
use crate::context::TenantCtx;
use crate::db::begin_tenant;
use crate::error::{AppError, AppResult};

/// `[[locations]]` of a tenant file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationFile {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub address: String,
    /// Default: the tenant's time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    pub resources: Vec<ResourceFile>,
    pub hours: Vec<HoursEntry>,
    /// Dates as strings: `{ date = "2026-12-24", closed = true, reason = "Heiligabend" }`.
    #[serde(default)]
    pub exceptions: Vec<ExceptionEntry>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceFile {
    pub key: String,
    pub name: String,
    #[serde(default = "one")]
    pub capacity: i32,
}

fn one() -> i32 {
    1
}

/// `[[appointment_offers]]` of a tenant file: a service of the file bookable at a location.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferFile {
    /// Service slug.
    pub service: String,
    /// Location key.
    pub location: String,
    /// Default: the service content's `appointment.durationMinutes`.
    #[serde(default)]
    pub duration_minutes: Option<i32>,
    #[serde(default)]
    pub buffer_minutes: i32,
    #[serde(default = "default_notice")]
    pub min_notice_minutes: i32,
    #[serde(default = "default_horizon")]
    pub horizon_days: i32,
    #[serde(default)]
    pub requires_application: bool,
    #[serde(default = "one")]
    pub max_open_per_contact: i32,
    #[serde(default)]
    pub hold_minutes: i32,
    #[serde(default)]
    pub challenge_bits: i32,
}

fn default_notice() -> i32 {
    120
}

fn default_horizon() -> i32 {
    60
}

/// Checks that every offer names a location of the file.
pub fn check(locations: &[LocationFile], offers: &[OfferFile]) -> AppResult<()> {
    for (i, o) in offers.iter().enumerate() {
        if !locations.iter().any(|l| l.key == o.location) {
            return Err(AppError::invalid(
                format!("appointment_offers[{i}].location"),
                "names no location of this file",
            ));
        }
    }
    Ok(())
}

fn location_input(file: &LocationFile, tenant_zone: &str) -> LocationInput {
    LocationInput {
        key: file.key.clone(),
        name: file.name.clone(),
        address: file.address.clone(),
        time_zone: file
            .time_zone
            .clone()
            .unwrap_or_else(|| tenant_zone.to_owned()),
        resources: file
            .resources
            .iter()
            .map(|r| ResourceInput {
                key: r.key.clone(),
                name: r.name.clone(),
                capacity: r.capacity,
            })
            .collect(),
        hours: file.hours.clone(),
        exceptions: file.exceptions.clone(),
    }
}

/// Whether the stored location is what `input` would save.
fn location_matches(
    stored: &locations::Model,
    resources: &[booking_resources::Model],
    input: &LocationInput,
) -> bool {
    let same_resources = resources.len() == input.resources.len()
        && input.resources.iter().all(|r| {
            resources.iter().any(|s| {
                s.key == r.key.trim() && s.name == r.name.trim() && s.capacity == r.capacity
            })
        });
    stored.name == input.name.trim()
        && stored.address == input.address.trim()
        && stored.time_zone == input.time_zone.trim()
        && serde_json::to_value(&input.hours).ok().as_ref() == Some(&stored.hours)
        && serde_json::to_value(&input.exceptions).ok().as_ref() == Some(&stored.exceptions)
        && same_resources
}

fn offer_matches(stored: &appointment_offers::Model, input: &OfferInput) -> bool {
    input
        .duration_minutes
        .is_none_or(|d| d == stored.duration_minutes)
        && stored.buffer_minutes == input.buffer_minutes
        && stored.min_notice_minutes == input.min_notice_minutes
        && stored.horizon_days == input.horizon_days
        && stored.requires_application == input.requires_application
        && stored.max_open_per_contact == input.max_open_per_contact
        && stored.hold_minutes == input.hold_minutes
        && stored.challenge_bits == input.challenge_bits
}

/// Applies a tenant file's locations, then its offers. Returns one line per change.
pub async fn apply(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    locations_in_file: &[LocationFile],
    offers: &[OfferFile],
) -> AppResult<Vec<String>> {
    let mut report = Vec::new();
    let existing = admin::locations(db, ctx.tenant_id).await?;
    for file in locations_in_file {
        let input = location_input(file, &ctx.tenant.time_zone);
        let stored = existing.iter().find(|(l, _)| l.key == file.key.trim());
        if stored.is_some_and(|(l, r)| location_matches(l, r, &input)) {
            continue;
        }
        admin::save_location(db, ctx, input)
            .await
            .map_err(|e| in_file(format!("location {}", file.key), e))?;
        report.push(format!(
            "location {} {}",
            file.key,
            if stored.is_some() {
                "updated"
            } else {
                "created"
            }
        ));
    }
    let all_locations = admin::locations(db, ctx.tenant_id).await?;
    for (i, file) in offers.iter().enumerate() {
        let what = format!("appointment offer {} at {}", file.service, file.location);
        let location = all_locations
            .iter()
            .find(|(l, _)| l.key == file.location)
            .map(|(l, _)| l.id)
            .ok_or_else(|| {
                AppError::invalid(
                    format!("appointment_offers[{i}].location"),
                    "names no location",
                )
            })?;
        let input = OfferInput {
            service_slug: file.service.clone(),
            location_id: location,
            duration_minutes: file.duration_minutes,
            buffer_minutes: file.buffer_minutes,
            min_notice_minutes: file.min_notice_minutes,
            horizon_days: file.horizon_days,
            requires_application: file.requires_application,
            max_open_per_contact: file.max_open_per_contact,
            hold_minutes: file.hold_minutes,
            challenge_bits: file.challenge_bits,
        };
        let stored = stored_offer(db, ctx, &file.service, location).await?;
        if stored.as_ref().is_some_and(|o| offer_matches(o, &input)) {
            continue;
        }
        admin::set_offer(db, ctx, input)
            .await
            .map_err(|e| in_file(what.clone(), e))?;
        report.push(format!(
            "{what} {}",
            if stored.is_some() {
                "updated"
            } else {
                "created"
            }
        ));
    }
    Ok(report)
}

async fn stored_offer(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    service_slug: &str,
    location: uuid::Uuid,
) -> AppResult<Option<appointment_offers::Model>> {
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let service = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Slug.eq(service_slug))
        .one(&txn)
        .await?;
    let offer = match service {
        Some(s) => {
            txn.select::<appointment_offers::Entity>()
                .filter(appointment_offers::Column::ServiceId.eq(s.id))
                .filter(appointment_offers::Column::LocationId.eq(location))
                .one(&txn)
                .await?
        }
        None => None,
    };
    txn.commit().await?;
    Ok(offer)
}

/// Names the file entry an error came from.
fn in_file(what: String, e: AppError) -> AppError {
    AppError::invalid(what, e.describe())
}
