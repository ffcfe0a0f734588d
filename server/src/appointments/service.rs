//! Availability and bookings: slots, holds, bookings, moves, cancellations, the staff day view
//! and no-shows.
//!
//! A booking runs in one write transaction that locks the location's resource rows (PostgreSQL
//! `FOR UPDATE`; SQLite write transactions are exclusive), reads the bookings that overlap the
//! requested time, and inserts only if a resource has room. Concurrent bookings of one location
//! queue on that lock, so capacity is never exceeded; a full slot is `SLOT_FULL`.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use entity::{appointment_offers, booking_resources, bookings, locations, tenant_services};
use sea_orm::sea_query::{Expr, ExprTrait as _, Value};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QueryTrait as _, Set,
};
use uuid::Uuid;

use super::admin::{active_resources, calendar, find_location};
use super::availability::{self, Busy, Calendar, Offer, Resource, Slot};
use super::mail;
use crate::auth::tokens::{constant_time_eq, hash_secret, random_secret};
use crate::context::TenantCtx;
use crate::db::{Answer, Db, PipelinedTxn, Step, begin_tenant, begin_tenant_write, scoped};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::ids::TenantId;

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
    // One round trip on the hot path (the offer with its live service and its location); only
    // a miss looks again, to say which of the three is missing.
    let found = scoped::<appointment_offers::Entity>(tenant)
        .filter(appointment_offers::Column::LocationId.eq(location_id))
        .find_also_related(tenant_services::Entity)
        .find_also_related(locations::Entity)
        .filter(is_live(service_slug))
        .one(conn)
        .await?;
    let Some((offer, Some(service), Some(location))) = found else {
        return Err(why_not_bookable(conn, tenant, service_slug, location_id).await);
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
fn live_service(tenant: TenantId, slug: &str) -> sea_orm::Select<tenant_services::Entity> {
    scoped::<tenant_services::Entity>(tenant).filter(is_live(slug))
}

/// The service is `slug` and live (on a query that selects or joins services).
fn is_live(slug: &str) -> Condition {
    Condition::all()
        .add(tenant_services::Column::Slug.eq(slug))
        .add(tenant_services::Column::Status.eq("live"))
}

/// Why (service, location) has no bookable offer: the service, the location or the offer.
async fn why_not_bookable<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    service_slug: &str,
    location_id: Uuid,
) -> AppError {
    let service = live_service(tenant, service_slug).one(conn).await;
    match (service, find_location(conn, tenant, location_id).await) {
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
fn busy_query(
    tenant: TenantId,
    location: Uuid,
    (from, to): (DateTime<Utc>, Expr),
    except: Option<Uuid>,
) -> sea_orm::Select<bookings::Entity> {
    let mut select = scoped::<bookings::Entity>(tenant);
    if let Some(id) = except {
        select = select.filter(bookings::Column::Id.ne(id));
    }
    select
        .filter(bookings::Column::LocationId.eq(location))
        .filter(bookings::Column::State.is_not_in(["cancelled", "expired"]))
        // A hold counts until it lapses.
        .filter(
            Condition::any()
                .add(bookings::Column::HoldExpiresAt.is_null())
                .add(bookings::Column::HoldExpiresAt.gt(Utc::now())),
        )
        .filter(Expr::col((bookings::Entity, bookings::Column::StartAt)).lt(to))
        .filter(bookings::Column::BlockedUntil.gt(from))
}

fn as_busy(rows: Vec<bookings::Model>) -> Vec<Busy> {
    rows.into_iter()
        .map(|b| Busy {
            resource: b.resource_id,
            start: b.start_at,
            end: b.blocked_until,
        })
        .collect()
}

async fn busy<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    location: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    except: Option<Uuid>,
) -> AppResult<Vec<Busy>> {
    Ok(as_busy(
        busy_query(tenant, location, (from, Expr::val(to)), except)
            .all(conn)
            .await?,
    ))
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
    let (b, resources, taken) = match db.pipelined_txn(tenant).await? {
        Some(txn) => {
            slot_reads_in_one_flight(txn, tenant, service_slug, location_id, (from, to)).await?
        }
        None => {
            let txn = begin_tenant(db, tenant).await?;
            let b = bookable(&txn, tenant, service_slug, location_id).await?;
            let resources = active_resources(&txn, tenant, b.location.id).await?;
            let window = (from, to + b.rules.duration + b.rules.buffer);
            let taken = busy(&txn, tenant, b.location.id, window, None).await?;
            txn.commit().await?;
            (b, resources, taken)
        }
    };
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

/// What [`available_slots`] reads, on PostgreSQL in one flight (with BEGIN and COMMIT) instead of
/// a round trip per statement: the live service, the location, the offer, the location's
/// resources and the bookings in the way, up to the end of what an appointment at `to` occupies.
async fn slot_reads_in_one_flight(
    txn: PipelinedTxn,
    tenant: TenantId,
    service_slug: &str,
    location_id: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> AppResult<(Bookable, Vec<booking_resources::Model>, Vec<Busy>)> {
    let [live, location, offer] = bookable_steps(tenant, service_slug, location_id);
    let found = txn
        .commit(vec![
            live,
            location,
            offer,
            Step::rows(resources_to_lock(tenant, location_id)),
            Step::rows(busy_query(
                tenant,
                location_id,
                (from, occupied_until(tenant, service_slug, location_id, to)),
                None,
            )),
        ])
        .await?;
    let [service, location, offer, resources, taken] = Answer::exactly(found)?;
    Ok((
        bookable_from(service, location, offer)?,
        resources.decode()?,
        as_busy(taken.decode()?),
    ))
}

/// The reads of a [`Bookable`] as flight steps: the live service, the location and the offer.
fn bookable_steps(tenant: TenantId, service_slug: &str, location_id: Uuid) -> [Step; 3] {
    let offer = scoped::<appointment_offers::Entity>(tenant)
        .filter(appointment_offers::Column::LocationId.eq(location_id))
        .inner_join(tenant_services::Entity)
        .filter(is_live(service_slug));
    let location =
        scoped::<locations::Entity>(tenant).filter(locations::Column::Id.eq(location_id));
    [
        Step::rows(live_service(tenant, service_slug)),
        Step::rows(location),
        Step::rows(offer),
    ]
}

/// The [`Bookable`] from the answers to [`bookable_steps`], or which of the three is missing.
fn bookable_from(service: Answer, location: Answer, offer: Answer) -> AppResult<Bookable> {
    match (
        first(service.decode()?),
        first(location.decode()?),
        first(offer.decode()?),
    ) {
        (None, _, _) => Err(AppError::NotFound("service")),
        (_, None, _) => Err(AppError::NotFound("location")),
        (Some(service), Some(location), Some(offer)) => Bookable::new(service, location, offer),
        (Some(_), Some(_), None) => Err(AppError::NotFound(
            "appointment offer (this service is not bookable at this location)",
        )),
    }
}

/// The end of what an appointment at `start` occupies (the offer's duration and buffer), from
/// the offer in the same statement.
fn occupied_until(
    tenant: TenantId,
    service_slug: &str,
    location_id: Uuid,
    start: DateTime<Utc>,
) -> Expr {
    Expr::cust_with_values(
        "CAST($1 AS timestamptz) + make_interval(mins => (\
         SELECT o.duration_minutes + o.buffer_minutes FROM appointment_offers o \
         JOIN tenant_services s ON s.id = o.service_id \
         WHERE o.tenant_id = $2 AND o.location_id = $3 AND s.slug = $4 AND s.status = 'live'))",
        [
            Value::from(start),
            Value::from(tenant.0),
            Value::from(location_id),
            Value::from(service_slug.to_owned()),
        ],
    )
}

/// `bookingChallenge`: a fresh challenge at the offer's difficulty (0 bits: none needed).
pub async fn challenge(
    db: &DatabaseConnection,
    appts: &super::Appointments,
    tenant: TenantId,
    service_slug: &str,
    location_id: Uuid,
) -> AppResult<super::guard::Challenge> {
    let txn = begin_tenant(db, tenant).await?;
    let b = bookable(&txn, tenant, service_slug, location_id).await?;
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
    pub application_id: Option<Uuid>,
    pub access_token: Option<String>,
    /// A hold of this slot (`holdSlot`): id and token.
    pub hold: Option<(Uuid, String)>,
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
    txn: &sea_orm::DatabaseTransaction,
    tenant: TenantId,
    b: &Bookable,
    start: DateTime<Utc>,
    except: Option<Uuid>,
) -> AppResult<Place> {
    let resources = crate::db::for_update(resources_to_lock(tenant, b.location.id), txn)
        .all(txn)
        .await?;
    let (_, blocked) = b.occupies(start);
    let taken = busy(txn, tenant, b.location.id, (start, blocked), except).await?;
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
async fn notice_parts<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    booking: &bookings::Model,
) -> AppResult<(locations::Model, String)> {
    let location = find_location(conn, tenant, booking.location_id).await?;
    let service = scoped::<tenant_services::Entity>(tenant)
        .filter(tenant_services::Column::Id.eq(booking.service_id))
        .one(conn)
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
    }
}

/// A hold given with a booking: it must be this slot's, still held (a lapsed hold is fine: its
/// place is simply not reserved any more).
fn check_hold(hold: &bookings::Model, b: &Bookable, start: DateTime<Utc>) -> AppResult<()> {
    if hold.state != "held"
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
    deps: &crate::applications::service::Deps,
    appts: &super::Appointments,
    ctx: &TenantCtx,
    input: BookInput,
    origin: &str,
) -> AppResult<(bookings::Model, String)> {
    let email = check_contact(&input.contact_name, &input.contact_email)?;
    appts.guard.check_contact(ctx.tenant_id, &email)?;
    // The common booking (no hold, no application) is the one fought over: on PostgreSQL it
    // goes out in three flights instead of a round trip per statement.
    if input.hold.is_none()
        && input.application_id.is_none()
        && let Some(txn) = deps.db.pipelined_txn(ctx.tenant_id).await?
    {
        return book_in_flights(txn, deps, appts, ctx, input, email, origin).await;
    }
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let b = bookable(&txn, ctx.tenant_id, &input.service_slug, input.location_id).await?;
    let now = Utc::now();
    let hold = match &input.hold {
        Some((id, token)) => {
            let hold = by_token(&txn, ctx.tenant_id, *id, token).await?;
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
    }
    if hold.is_none() {
        let solved = solved_challenge(appts, ctx, &b, input.challenge.as_ref(), now)?;
        super::guard::spend(&txn, ctx.tenant_id, solved).await?;
    }
    if let Some(id) = required_application(&b, input.application_id)? {
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
    let open = open_bookings(ctx.tenant_id, b.service.id, &email, now)
        .count(&txn)
        .await?;
    check_open(&b, open)?;

    let place = free_place(
        &txn,
        ctx.tenant_id,
        &b,
        input.start,
        hold.as_ref().map(|h| h.id),
    )
    .await?;
    let token = random_secret();
    let booking = match hold {
        Some(h) => {
            let mut a: bookings::ActiveModel = h.into();
            a.resource_id = Set(place.resource);
            a.end_at = Set(place.end);
            a.blocked_until = Set(place.blocked);
            a.state = Set("booked".into());
            a.contact_name = Set(input.contact_name.trim().to_owned());
            a.contact_email = Set(email);
            a.application_id = Set(input.application_id);
            a.cancel_hash = Set(hash_secret(&token));
            a.hold_expires_at = Set(None);
            a.update(&txn).await?
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
    mail::booked(&txn, ctx.tenant_id, &n, appts.remind_before).await?;
    deps.finish(txn, Vec::new()).await?;
    Ok((booking, token))
}

/// [`book`] without a hold or an application, on a [`PipelinedTxn`]: the same reads, checks and
/// writes in three round trips.
///
/// 1. BEGIN, the tenant, the live service, the location, the offer, and without any lock the
///    location's resources and the bookings in the way: a slot that is full already is
///    `SLOT_FULL` here, so the crowd that asks for a taken slot never queues on the lock;
/// 2. the spent challenge, the resources locked `FOR UPDATE`, then (a fresh snapshot, after the
///    lock) the bookings in the way and the contact's open bookings: only this read decides
///    that there is room;
/// 3. the booking, its mails and COMMIT. A refusal drops the transaction: it rolls back.
async fn book_in_flights(
    mut txn: PipelinedTxn,
    deps: &crate::applications::service::Deps,
    appts: &super::Appointments,
    ctx: &TenantCtx,
    input: BookInput,
    email: String,
    origin: &str,
) -> AppResult<(bookings::Model, String)> {
    use sea_orm::QuerySelect as _;
    let tenant = ctx.tenant_id;
    let [live, location, offer] = bookable_steps(tenant, &input.service_slug, input.location_id);
    let found = txn
        .flight(vec![
            live,
            location,
            offer,
            Step::rows(resources_to_lock(tenant, input.location_id)),
            Step::rows(busy_query(
                tenant,
                input.location_id,
                (
                    input.start,
                    occupied_until(tenant, &input.service_slug, input.location_id, input.start),
                ),
                None,
            )),
        ])
        .await?;
    let [service, location, offer, resources, taken] = Answer::exactly(found)?;
    let b = bookable_from(service, location, offer)?;
    let now = Utc::now();
    check_slot(&b, input.start, now)?;
    b.place(input.start, &resources.decode()?, &as_busy(taken.decode()?))?;
    let spend = super::guard::spend_insert(
        tenant,
        solved_challenge(appts, ctx, &b, input.challenge.as_ref(), now)?,
    );
    required_application(&b, None)?;

    let (_, blocked) = b.occupies(input.start);
    let spend = spend.map(|i| Step::write(i.as_query()));
    let spends = spend.is_some();
    let mut steps: Vec<Step> = spend.into_iter().collect();
    steps.extend([
        Step::rows(resources_to_lock(tenant, b.location.id).lock_exclusive()),
        Step::rows(busy_query(
            tenant,
            b.location.id,
            (input.start, Expr::val(blocked)),
            None,
        )),
        Step::rows(
            open_bookings(tenant, b.service.id, &email, now)
                .select_only()
                .column_as(bookings::Column::Id.count(), "n"),
        ),
    ]);
    let mut answers = txn.flight(steps).await?;
    if spends {
        super::guard::check_spent(answers.remove(0).written())?;
    }
    let [resources, taken, open] = Answer::exactly(answers)?;
    #[derive(serde::Deserialize)]
    struct Count {
        n: i64,
    }
    let open = first(open.decode::<Count>()?).map_or(0, |c| c.n);
    check_open(&b, u64::try_from(open).unwrap_or(0))?;
    let place = b.place(input.start, &resources.decode()?, &as_busy(taken.decode()?))?;

    let token = random_secret();
    let booking = new_booking(ctx, &b, &place, &input, email, &token, now);
    let links = Links {
        origin,
        token: &token,
    };
    let n = notice(ctx, &booking, &b.location, &b.service.title, &links);
    let mut writes = vec![Step::write(
        bookings::Entity::insert(booking.clone().into_active_model().reset_all()).as_query(),
    )];
    writes.extend(
        crate::messaging::outbox::insert_all(
            Some(tenant),
            mail::booked_mails(&n, appts.remind_before),
        )
        .map(|i| Step::write(i.as_query())),
    );
    txn.commit(writes).await?;
    deps.committed(Vec::new());
    Ok((booking, token))
}

fn first<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
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
fn required_application(b: &Bookable, given: Option<Uuid>) -> AppResult<Option<Uuid>> {
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
    tenant: TenantId,
    service: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> sea_orm::Select<bookings::Entity> {
    scoped::<bookings::Entity>(tenant)
        .filter(bookings::Column::ServiceId.eq(service))
        .filter(bookings::Column::ContactEmail.eq(email))
        .filter(bookings::Column::State.eq("booked"))
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
        application_id: input.application_id,
        start_at: input.start,
        end_at: place.end,
        blocked_until: place.blocked,
        state: "booked".into(),
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
    let b = bookable(&txn, ctx.tenant_id, &input.service_slug, input.location_id).await?;
    if b.offer.hold_minutes == 0 {
        return Err(AppError::conflict(
            "input.serviceSlug",
            "slots of this service are booked directly, without holding them first",
        ));
    }
    let now = Utc::now();
    check_slot(&b, input.start, now)?;
    let solved = solved_challenge(appts, ctx, &b, input.challenge.as_ref(), now)?;
    super::guard::spend(&txn, ctx.tenant_id, solved).await?;
    let Place {
        resource,
        end,
        blocked,
    } = free_place(&txn, ctx.tenant_id, &b, input.start, None).await?;
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
        state: Set("held".into()),
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

/// `cancelBooking`: frees the slot (a booking, or a hold released early). Only before the
/// appointment, only with the booking's token. A booking's holder gets a cancellation mail and
/// no reminder.
pub async fn cancel(
    deps: &crate::applications::service::Deps,
    ctx: &TenantCtx,
    id: Uuid,
    token: &str,
) -> AppResult<bookings::Model> {
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let booking = by_token(&txn, ctx.tenant_id, id, token).await?;
    if !matches!(booking.state.as_str(), "booked" | "held") {
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
    let was_booked = booking.state == "booked";
    let mut a: bookings::ActiveModel = booking.into();
    a.state = Set("cancelled".into());
    a.cancelled_at = Set(Some(Utc::now()));
    a.hold_expires_at = Set(None);
    let booking = a.update(&txn).await?;
    if was_booked {
        let (location, title) = notice_parts(&txn, ctx.tenant_id, &booking).await?;
        let links = Links { origin: "", token };
        let n = notice(ctx, &booking, &location, &title, &links);
        mail::cancelled(&txn, ctx.tenant_id, &n).await?;
    }
    deps.finish(txn, Vec::new()).await?;
    Ok(booking)
}

/// `rescheduleBooking`: moves a booking to another slot in one transaction, keeping its id and
/// token. If the new slot is full (or not bookable) the booking stays where it was. The holder
/// gets the new calendar file; the reminder moves with the booking.
pub async fn reschedule(
    deps: &crate::applications::service::Deps,
    appts: &super::Appointments,
    ctx: &TenantCtx,
    (id, token): (Uuid, &str),
    start: DateTime<Utc>,
    origin: &str,
) -> AppResult<bookings::Model> {
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
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
    let links = Links { origin, token };
    let n = notice(ctx, &booking, &b.location, &b.service.title, &links);
    mail::moved(&txn, ctx.tenant_id, &n, appts.remind_before).await?;
    deps.finish(txn, Vec::new()).await?;
    Ok(booking)
}

/// The active resources of a location in a fixed order: the rows a booking locks (with
/// [`crate::db::for_update`]) for the rest of its transaction.
fn resources_to_lock(
    tenant: TenantId,
    location: Uuid,
) -> sea_orm::Select<booking_resources::Entity> {
    scoped::<booking_resources::Entity>(tenant)
        .filter(booking_resources::Column::LocationId.eq(location))
        .filter(booking_resources::Column::Active.eq(true))
        .order_by_asc(booking_resources::Column::Key)
}

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
        .filter(bookings::Column::State.is_in(["booked", "cancelled", "no_show"]))
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
    ctx.require_staff()?;
    ctx.break_glass()?;
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
    if booking.state == "held" {
        // A hold is no appointment yet: no calendar file.
        return Err(AppError::NotFound("booking"));
    }
    let (location, title) = notice_parts(&txn, ctx.tenant_id, &booking).await?;
    txn.commit().await?;
    Ok((booking, location, title))
}
