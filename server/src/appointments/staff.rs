//! Staff-side operations on bookings: the day view of a location and no-shows.

use chrono::{Duration, NaiveDate, NaiveTime, Utc};
use entity::states::BookingState;
use entity::{bookings, locations};
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use super::admin::{calendar, find_location};
use crate::context::TenantCtx;
use crate::db::{Db, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::BookingId;

/// The bookings of a location on a local date (staff), in time order, cancelled ones included.
pub async fn day(
    db: &Db,
    ctx: &TenantCtx,
    location_id: Uuid,
    date: NaiveDate,
) -> AppResult<(locations::Model, Vec<bookings::Model>)> {
    ctx.require_staff()?;
    crate::audit::break_glass_read(db, ctx, "bookings", format!("location:{location_id}")).await?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let location = find_location(&txn, location_id).await?;
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
    let rows = txn
        .select::<bookings::Entity>()
        .filter(bookings::Column::LocationId.eq(location.id))
        .filter(bookings::Column::State.is_in([
            BookingState::Booked,
            BookingState::Cancelled,
            BookingState::NoShow,
        ]))
        .filter(bookings::Column::StartAt.gte(from))
        .filter(bookings::Column::StartAt.lt(to))
        .order_by_asc(bookings::Column::StartAt)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok((location, rows))
}

/// Marks that the citizen did not come (staff; once the appointment has begun).
pub async fn mark_no_show(db: &Db, ctx: &TenantCtx, id: BookingId) -> AppResult<bookings::Model> {
    ctx.require_staff()?;
    ctx.break_glass()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let booking = txn
        .select::<bookings::Entity>()
        .filter(bookings::Column::Id.eq(id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("booking"))?;
    if booking.state != BookingState::Booked {
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
    a.state = Set(BookingState::NoShow);
    let booking = a.update(&txn).await?;
    txn.commit().await?;
    Ok(booking)
}
