//! Availability reads: the slots of a service at a location with their remaining capacity, and
//! what a booking of one (service, location) needs to know ([`Bookable`]).

use chrono::{DateTime, Duration, Utc};
use entity::states::{BookingState, ServiceStatus};
use entity::{appointment_offers, booking_resources, bookings, locations, tenant_services};
use sea_orm::{ColumnTrait, Condition, QueryFilter};
use uuid::Uuid;

use super::admin::{active_resources, calendar, find_location};
use super::availability::{self, Busy, Calendar, Offer, Resource, Slot};
use crate::db::{Db, TenantTx, begin_tenant};
use crate::error::{AppError, AppResult};
use crate::ids::TenantId;

/// Everything a booking or an availability query of one (service, location) needs.
pub(super) struct Bookable {
    pub(super) service: tenant_services::Model,
    pub(super) location: locations::Model,
    pub(super) offer: appointment_offers::Model,
    pub(super) calendar: Calendar,
    pub(super) rules: Offer,
}

pub(super) async fn bookable(
    txn: &TenantTx,
    service_slug: &str,
    location_id: Uuid,
) -> AppResult<Bookable> {
    // One round trip on the hot path (the offer with its live service and its location); only
    // a miss looks again, to say which of the three is missing.
    let found = txn
        .select::<appointment_offers::Entity>()
        .filter(appointment_offers::Column::LocationId.eq(location_id))
        .find_also_related(tenant_services::Entity)
        .find_also_related(locations::Entity)
        .filter(is_live(service_slug))
        .one(txn)
        .await?;
    let Some((offer, Some(service), Some(location))) = found else {
        return Err(why_not_bookable(txn, service_slug, location_id).await);
    };
    Bookable::new(service, location, offer)
}

impl Bookable {
    fn new(
        service: tenant_services::Model,
        location: locations::Model,
        offer: appointment_offers::Model,
    ) -> AppResult<Self> {
        let calendar = calendar(&location)?;
        let rules = Offer {
            duration: Duration::minutes(i64::from(offer.duration_minutes)),
            buffer: Duration::minutes(i64::from(offer.buffer_minutes)),
            min_notice: Duration::minutes(i64::from(offer.min_notice_minutes)),
            horizon: Duration::days(i64::from(offer.horizon_days)),
        };
        Ok(Self {
            service,
            location,
            offer,
            calendar,
            rules,
        })
    }
}

/// The live service `slug` of a tenant.
fn live_service(txn: &TenantTx, slug: &str) -> sea_orm::Select<tenant_services::Entity> {
    txn.select::<tenant_services::Entity>()
        .filter(is_live(slug))
}

/// The service is `slug` and live (on a query that selects or joins services).
fn is_live(slug: &str) -> Condition {
    Condition::all()
        .add(tenant_services::Column::Slug.eq(slug))
        .add(tenant_services::Column::Status.eq(ServiceStatus::Live))
}

/// Why (service, location) has no bookable offer: the service, the location or the offer.
async fn why_not_bookable(txn: &TenantTx, service_slug: &str, location_id: Uuid) -> AppError {
    let service = live_service(txn, service_slug).one(txn).await;
    match (service, find_location(txn, location_id).await) {
        (Err(e), _) => e.into(),
        (Ok(None), _) => AppError::NotFound("service"),
        (_, Err(e)) => e,
        (Ok(Some(_)), Ok(_)) => {
            AppError::NotFound("appointment offer (this service is not bookable at this location)")
        }
    }
}

/// Bookings of a location that occupy a resource somewhere in `[from, to)`, except `except` (a
/// booking being moved does not compete with itself).
pub(super) async fn busy(
    txn: &TenantTx,
    location: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    except: Option<Uuid>,
) -> AppResult<Vec<Busy>> {
    let mut select = txn.select::<bookings::Entity>();
    if let Some(id) = except {
        select = select.filter(bookings::Column::Id.ne(id));
    }
    let rows = select
        .filter(bookings::Column::LocationId.eq(location))
        .filter(bookings::Column::State.is_not_in([BookingState::Cancelled, BookingState::Expired]))
        // A hold counts until it lapses.
        .filter(
            Condition::any()
                .add(bookings::Column::HoldExpiresAt.is_null())
                .add(bookings::Column::HoldExpiresAt.gt(Utc::now())),
        )
        .filter(bookings::Column::StartAt.lt(to))
        .filter(bookings::Column::BlockedUntil.gt(from))
        .all(txn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|b| Busy {
            resource: b.resource_id,
            start: b.start_at,
            end: b.blocked_until,
        })
        .collect())
}

pub(super) fn as_resources(rows: &[booking_resources::Model]) -> Vec<Resource> {
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
    let b = bookable(&txn, service_slug, location_id).await?;
    let resources = active_resources(&txn, b.location.id).await?;
    let window = (from, to + b.rules.duration + b.rules.buffer);
    let taken = busy(&txn, b.location.id, window, None).await?;
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
