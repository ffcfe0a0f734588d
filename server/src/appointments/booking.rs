//! Booking: holds, bookings, moves and cancellations by the citizen.
//!
//! A booking runs in one write transaction that locks the location's resource rows (PostgreSQL
//! `FOR UPDATE`; SQLite write transactions are exclusive), reads the bookings that overlap the
//! requested time, and inserts only if a resource has room. Concurrent bookings of one location
//! queue on that lock, so capacity is never exceeded; a full slot is `SLOT_FULL`.

use chrono::{DateTime, Duration, Utc};
use entity::states::BookingState;
use entity::{booking_resources, bookings, locations, tenant_services};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::admin::{active_resources, find_location};
use super::availability::{self, Busy};
use super::mail;
use super::slots::{Bookable, as_resources, bookable, busy};
use crate::auth::tokens::{constant_time_eq, hash_secret, random_secret};
use crate::context::TenantCtx;
use crate::db::{Db, TenantTx, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::ids::{ApplicationId, BookingId, TenantId};

/// `bookingChallenge`: a fresh challenge at the offer's difficulty (0 bits: none needed).
pub async fn challenge(
    db: &DatabaseConnection,
    appts: &super::Appointments,
    tenant: TenantId,
    service_slug: &str,
    location_id: Uuid,
) -> AppResult<super::guard::Challenge> {
    let txn = begin_tenant(db, tenant).await?;
    let b = bookable(&txn, service_slug, location_id).await?;
    txn.commit().await?;
    let bits = u32::try_from(b.offer.challenge_bits).unwrap_or(0);
    Ok(appts.guard.issue(tenant, b.offer.id, bits, Utc::now()))
}

pub struct BookInput {
    pub service_slug: String,
    pub location_id: Uuid,
    pub start: DateTime<Utc>,
    pub contact_name: String,
    pub contact_email: String,
    pub application_id: Option<ApplicationId>,
    pub access_token: Option<String>,
    /// A hold of this slot (`holdSlot`): id and token.
    pub hold: Option<(BookingId, String)>,
    /// A solved booking challenge: challenge and solution.
    pub challenge: Option<(String, String)>,
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
    txn: &TenantTx,
    b: &Bookable,
    start: DateTime<Utc>,
    except: Option<Uuid>,
) -> AppResult<Place> {
    let resources = crate::db::for_update(resources_to_lock(txn, b.location.id), txn)
        .all(txn)
        .await?;
    let (_, blocked) = b.occupies(start);
    let taken = busy(txn, b.location.id, (start, blocked), except).await?;
    b.place(start, &resources, &taken)
}

impl Bookable {
    /// Until when an appointment at `start` takes its resource: its end, then the buffer.
    fn occupies(&self, start: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = start + self.rules.duration;
        (end, end + self.rules.buffer)
    }

    /// A resource with room at `start` among `resources`, given the bookings `taken`; none is
    /// `SLOT_FULL`.
    fn place(
        &self,
        start: DateTime<Utc>,
        resources: &[booking_resources::Model],
        taken: &[Busy],
    ) -> AppResult<Place> {
        let (end, blocked) = self.occupies(start);
        let resource = availability::free_resource(&as_resources(resources), taken, start, blocked)
            .ok_or_else(|| slot_full("no resource has room"))?;
        Ok(Place {
            resource,
            end,
            blocked,
        })
    }
}

/// Mails about a booking (its location and service title read in the same transaction).
async fn notice_parts(
    txn: &TenantTx,
    booking: &bookings::Model,
) -> AppResult<(locations::Model, String)> {
    let location = find_location(txn, booking.location_id).await?;
    let service = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Id.eq(booking.service_id))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    Ok((location, service.title))
}

/// Where links in mails point: the request's origin, the tenant, the booking's token.
pub struct Links<'a> {
    pub origin: &'a str,
    pub token: &'a str,
}

fn notice<'a>(
    ctx: &'a TenantCtx,
    booking: &'a bookings::Model,
    location: &'a locations::Model,
    service_title: &'a str,
    links: &Links<'_>,
) -> mail::Notice<'a> {
    mail::Notice {
        booking,
        location,
        service_title,
        municipality: &ctx.tenant.name,
        ics_url: mail::ics_url(links.origin, booking.id, &ctx.tenant.slug, links.token),
        manage_url: mail::manage_url(links.origin, booking.id, &ctx.tenant.slug, links.token),
    }
}

/// A hold given with a booking: it must be this slot's, still held (a lapsed hold is fine: its
/// place is simply not reserved any more).
fn check_hold(hold: &bookings::Model, b: &Bookable, start: DateTime<Utc>) -> AppResult<()> {
    if hold.state != BookingState::Held
        || hold.service_id != b.service.id
        || hold.location_id != b.location.id
        || hold.start_at != start
    {
        return Err(AppError::conflict(
            "input.holdId",
            "this hold is for another slot, or was used already",
        ));
    }
    Ok(())
}

/// `bookAppointment`: books the slot at `start` on a resource with room, or answers `SLOT_FULL`.
/// With a hold of the slot the place is reserved (while the hold lasts) and no challenge is
/// asked again. Queues the confirmation mail with the calendar file and the reminder. Returns
/// the booking and its cancel token (shown once; only its hash is stored).
pub async fn book(
    deps: &crate::state::AppState,
    appts: &super::Appointments,
    ctx: &TenantCtx,
    input: BookInput,
    origin: &str,
) -> AppResult<(bookings::Model, String)> {
    let email = check_contact(&input.contact_name, &input.contact_email)?;
    appts
        .guard
        .check_contact(deps.db.orm(), ctx.tenant_id, &email)
        .await?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let b = bookable(&txn, &input.service_slug, input.location_id).await?;
    let now = Utc::now();
    let hold = match &input.hold {
        Some((id, token)) => {
            let hold = hold_by_token(&txn, *id, token).await?;
            check_hold(&hold, &b, input.start)?;
            Some(hold)
        }
        None => None,
    };
    let held = hold
        .as_ref()
        .is_some_and(|h| h.hold_expires_at.is_some_and(|t| t > now));
    if !held {
        check_slot(&b, input.start, now)?;
        // A slot that is full already is refused before taking the location lock (on
        // PostgreSQL), so the crowd asking for a taken slot never queues on it. Only the read
        // under the lock (`free_place`) decides that there is room.
        let resources = active_resources(&txn, b.location.id).await?;
        let (_, blocked) = b.occupies(input.start);
        let taken = busy(&txn, b.location.id, (input.start, blocked), None).await?;
        b.place(input.start, &resources, &taken)?;
    }
    if hold.is_none() {
        let solved = solved_challenge(appts, ctx, &b, input.challenge.as_ref(), now)?;
        super::guard::spend(&txn, solved).await?;
    }
    if let Some(id) = required_application(&b, input.application_id)? {
        let app = crate::applications::access::find(&txn, id).await?;
        let viewer =
            crate::applications::access::viewer_of(&txn, ctx, &app, input.access_token.as_deref())
                .await?;
        if viewer != crate::applications::access::Viewer::Applicant
            || app.service_id != b.service.id
        {
            return Err(AppError::NotFound("application"));
        }
    }
    let open = open_bookings(&txn, b.service.id, &email, now)
        .count(&txn)
        .await?;
    check_open(&b, open)?;

    let place = free_place(&txn, &b, input.start, hold.as_ref().map(|h| h.id)).await?;
    let token = random_secret();
    let booking = match hold {
        Some(h) => {
            // Only the first of several bookings with one hold (a double click) turns it into a
            // booking; the others find it booked already.
            let set = bookings::ActiveModel {
                resource_id: Set(place.resource),
                end_at: Set(place.end),
                blocked_until: Set(place.blocked),
                state: Set(BookingState::Booked),
                contact_name: Set(input.contact_name.trim().to_owned()),
                contact_email: Set(email),
                application_id: Set(input.application_id.map(Uuid::from)),
                cancel_hash: Set(hash_secret(&token)),
                hold_expires_at: Set(None),
                ..Default::default()
            };
            change_if(&txn, h.id, h.state, set)
                .await?
                .ok_or_else(|| AppError::conflict("input.holdId", "this hold was used already"))?
        }
        None => {
            let booking = new_booking(ctx, &b, &place, &input, email, &token, now);
            booking
                .clone()
                .into_active_model()
                .reset_all()
                .insert(&txn)
                .await?;
            booking
        }
    };
    let links = Links {
        origin,
        token: &token,
    };
    let n = notice(ctx, &booking, &b.location, &b.service.title, &links);
    mail::booked(&txn, &n, appts.remind_before).await?;
    deps.finish(txn, Vec::new()).await?;
    Ok((booking, token))
}

/// The challenge the offer asks for, checked (not yet spent); `None` when it asks none.
fn solved_challenge(
    appts: &super::Appointments,
    ctx: &TenantCtx,
    b: &Bookable,
    challenge: Option<&(String, String)>,
    now: DateTime<Utc>,
) -> AppResult<Option<super::guard::Solved>> {
    appts.guard.check(
        ctx.tenant_id,
        b.offer.id,
        u32::try_from(b.offer.challenge_bits).unwrap_or(0),
        challenge.map(|(c, s)| (c.as_str(), s.as_str())),
        now,
    )
}

/// The application a booking must name (when the offer requires one, or one is given).
fn required_application(
    b: &Bookable,
    given: Option<ApplicationId>,
) -> AppResult<Option<ApplicationId>> {
    if b.offer.requires_application && given.is_none() {
        return Err(AppError::invalid(
            "input.applicationId",
            "this appointment is booked after submitting the application",
        ));
    }
    Ok(given)
}

/// The contact's future bookings of the service.
fn open_bookings(
    txn: &TenantTx,
    service: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> sea_orm::Select<bookings::Entity> {
    txn.select::<bookings::Entity>()
        .filter(bookings::Column::ServiceId.eq(service))
        .filter(bookings::Column::ContactEmail.eq(email))
        .filter(bookings::Column::State.eq(BookingState::Booked))
        .filter(bookings::Column::StartAt.gt(now))
}

/// At most the offer's number of open bookings per contact.
fn check_open(b: &Bookable, open: u64) -> AppResult<()> {
    if open >= u64::try_from(b.offer.max_open_per_contact).unwrap_or(1) {
        return Err(AppError::conflict(
            "input.contact.email",
            format!(
                "this contact already holds {open} open appointment(s) for this service; cancel one first"
            ),
        ));
    }
    Ok(())
}

/// A new booking at `place`, with the hash of its cancel `token`.
fn new_booking(
    ctx: &TenantCtx,
    b: &Bookable,
    place: &Place,
    input: &BookInput,
    email: String,
    token: &str,
    now: DateTime<Utc>,
) -> bookings::Model {
    bookings::Model {
        id: Uuid::now_v7(),
        tenant_id: ctx.tenant_id.0,
        service_id: b.service.id,
        location_id: b.location.id,
        resource_id: place.resource,
        application_id: input.application_id.map(Uuid::from),
        start_at: input.start,
        end_at: place.end,
        blocked_until: place.blocked,
        state: BookingState::Booked,
        contact_name: input.contact_name.trim().to_owned(),
        contact_email: email,
        cancel_hash: hash_secret(token),
        created_at: now,
        cancelled_at: None,
        hold_expires_at: None,
    }
}

pub struct HoldInput {
    pub service_slug: String,
    pub location_id: Uuid,
    pub start: DateTime<Utc>,
    pub challenge: Option<(String, String)>,
}

/// `holdSlot`: reserves a place in the slot for the offer's `holdMinutes` while the citizen
/// completes the form or payment; `bookAppointment` with the hold turns it into a booking.
/// A lapsed hold frees its place by itself (and is cleared by [`super::housekeeping`]).
pub async fn hold(
    db: &DatabaseConnection,
    appts: &super::Appointments,
    ctx: &TenantCtx,
    input: HoldInput,
) -> AppResult<(bookings::Model, String)> {
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let b = bookable(&txn, &input.service_slug, input.location_id).await?;
    if b.offer.hold_minutes == 0 {
        return Err(AppError::conflict(
            "input.serviceSlug",
            "slots of this service are booked directly, without holding them first",
        ));
    }
    let now = Utc::now();
    check_slot(&b, input.start, now)?;
    let solved = solved_challenge(appts, ctx, &b, input.challenge.as_ref(), now)?;
    super::guard::spend(&txn, solved).await?;
    let Place {
        resource,
        end,
        blocked,
    } = free_place(&txn, &b, input.start, None).await?;
    let token = random_secret();
    let hold = bookings::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id.0),
        service_id: Set(b.service.id),
        location_id: Set(b.location.id),
        resource_id: Set(resource),
        application_id: Set(None),
        start_at: Set(input.start),
        end_at: Set(end),
        blocked_until: Set(blocked),
        state: Set(BookingState::Held),
        contact_name: Set(String::new()),
        contact_email: Set(String::new()),
        cancel_hash: Set(hash_secret(&token)),
        created_at: Set(now),
        cancelled_at: Set(None),
        hold_expires_at: Set(Some(
            now + Duration::minutes(i64::from(b.offer.hold_minutes)),
        )),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok((hold, token))
}

/// The booking `id` if `token` is its cancel token; anything else is `NOT_FOUND`.
async fn by_token(txn: &TenantTx, id: BookingId, token: &str) -> AppResult<bookings::Model> {
    let booking = txn
        .select::<bookings::Entity>()
        .filter(bookings::Column::Id.eq(id))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("booking"))?;
    if constant_time_eq(&booking.cancel_hash, &hash_secret(token)) {
        Ok(booking)
    } else {
        Err(AppError::NotFound("booking"))
    }
}

/// The hold `id` given with a booking, if `token` is its token. A hold booked already carries
/// the booking's token: booking it again with the hold's token (a second click) is `CONFLICT`,
/// as for the click that lost the race, not `NOT_FOUND`.
async fn hold_by_token(txn: &TenantTx, id: BookingId, token: &str) -> AppResult<bookings::Model> {
    match by_token(txn, id, token).await {
        Err(AppError::NotFound(what)) => {
            let used = txn
                .select::<bookings::Entity>()
                .filter(bookings::Column::Id.eq(id))
                .filter(bookings::Column::State.ne(BookingState::Held))
                .count(txn)
                .await?;
            Err(if used > 0 {
                AppError::conflict("input.holdId", "this hold was used already")
            } else {
                AppError::NotFound(what)
            })
        }
        found => found,
    }
}

/// Applies `set` to the booking `id` only while it is still in `state`, checked and changed in
/// one statement. Of concurrent changes of one booking (two cancellations, a cancellation and a
/// move, one hold booked twice) the first to commit wins: PostgreSQL re-checks the condition on
/// the committed row after waiting for its lock, SQLite write transactions run one at a time.
/// Returns the row as changed (other columns as last committed), or `None` for the losers.
async fn change_if(
    txn: &TenantTx,
    id: Uuid,
    state: BookingState,
    set: bookings::ActiveModel,
) -> AppResult<Option<bookings::Model>> {
    let changed = txn
        .update_many::<bookings::Entity>()
        .set(set)
        .filter(bookings::Column::Id.eq(id))
        .filter(bookings::Column::State.eq(state))
        .exec(txn)
        .await?;
    if changed.rows_affected != 1 {
        return Ok(None);
    }
    Ok(txn
        .select::<bookings::Entity>()
        .filter(bookings::Column::Id.eq(id))
        .one(txn)
        .await?)
}

/// `cancelBooking`: frees the slot (a booking, or a hold released early). Only before the
/// appointment, only with the booking's token. A booking's holder gets a cancellation mail and
/// no reminder.
pub async fn cancel(
    deps: &crate::state::AppState,
    ctx: &TenantCtx,
    id: BookingId,
    token: &str,
) -> AppResult<bookings::Model> {
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let booking = by_token(&txn, id, token).await?;
    if !matches!(booking.state, BookingState::Booked | BookingState::Held) {
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
    let was_booked = booking.state == BookingState::Booked;
    let set = bookings::ActiveModel {
        state: Set(BookingState::Cancelled),
        cancelled_at: Set(Some(Utc::now())),
        hold_expires_at: Set(None),
        ..Default::default()
    };
    // Of concurrent cancellations only the first changes the booking and mails.
    let booking = change_if(&txn, booking.id, booking.state, set)
        .await?
        .ok_or_else(|| AppError::conflict("input.id", "this booking is already cancelled"))?;
    if was_booked {
        let (location, title) = notice_parts(&txn, &booking).await?;
        let links = Links { origin: "", token };
        let n = notice(ctx, &booking, &location, &title, &links);
        mail::cancelled(&txn, &n).await?;
    }
    deps.finish(txn, Vec::new()).await?;
    Ok(booking)
}

/// `rescheduleBooking`: moves a booking to another slot in one transaction, keeping its id and
/// token. If the new slot is full (or not bookable) the booking stays where it was. The holder
/// gets the new calendar file; the reminder moves with the booking.
pub async fn reschedule(
    deps: &crate::state::AppState,
    appts: &super::Appointments,
    ctx: &TenantCtx,
    (id, token): (BookingId, &str),
    start: DateTime<Utc>,
    origin: &str,
) -> AppResult<bookings::Model> {
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let booking = by_token(&txn, id, token).await?;
    let now = Utc::now();
    if booking.state != BookingState::Booked || booking.start_at <= now {
        return Err(AppError::conflict(
            "input.id",
            "only future, not cancelled appointments can be moved",
        ));
    }
    let service = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Id.eq(booking.service_id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    let b = bookable(&txn, &service.slug, booking.location_id).await?;
    check_slot(&b, start, now)?;
    // The booking's own place does not count against its new time.
    let Place {
        resource,
        end,
        blocked,
    } = free_place(&txn, &b, start, Some(booking.id)).await?;
    let set = bookings::ActiveModel {
        start_at: Set(start),
        end_at: Set(end),
        blocked_until: Set(blocked),
        resource_id: Set(resource),
        ..Default::default()
    };
    // A booking cancelled since it was read above stays cancelled where it was.
    let booking = change_if(&txn, booking.id, BookingState::Booked, set)
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                "input.id",
                "only future, not cancelled appointments can be moved",
            )
        })?;
    let links = Links { origin, token };
    let n = notice(ctx, &booking, &b.location, &b.service.title, &links);
    mail::moved(&txn, &n, appts.remind_before).await?;
    deps.finish(txn, Vec::new()).await?;
    Ok(booking)
}

/// The active resources of a location in a fixed order: the rows a booking locks (with
/// [`crate::db::for_update`]) for the rest of its transaction.
fn resources_to_lock(txn: &TenantTx, location: Uuid) -> sea_orm::Select<booking_resources::Entity> {
    txn.select::<booking_resources::Entity>()
        .filter(booking_resources::Column::LocationId.eq(location))
        .filter(booking_resources::Column::Active.eq(true))
        .order_by_asc(booking_resources::Column::Key)
}

/// The slug of a booking's service.
pub async fn service_slug(db: &Db, tenant: TenantId, service: Uuid) -> AppResult<String> {
    let txn = begin_tenant(db, tenant).await?;
    let row = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Id.eq(service))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    txn.commit().await?;
    Ok(row.slug)
}

/// A booking with what its calendar file shows, for its holder.
pub async fn for_ics(
    db: &Db,
    ctx: &TenantCtx,
    id: BookingId,
    token: &str,
) -> AppResult<(bookings::Model, locations::Model, String)> {
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let booking = by_token(&txn, id, token).await?;
    if booking.state == BookingState::Held {
        // A hold is no appointment yet: no calendar file.
        return Err(AppError::NotFound("booking"));
    }
    let (location, title) = notice_parts(&txn, &booking).await?;
    txn.commit().await?;
    Ok((booking, location, title))
}
