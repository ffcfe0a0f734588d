//! GraphQL of appointments: locations and offers (tenant administrators), available slots and
//! bookings (citizens).

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{appointment_offers, booking_resources, bookings, locations};
use serde_json::Value;

use super::admin::{self, ExceptionEntry, HoursEntry, LocationInput, OfferInput, ResourceInput};
use super::availability::Slot;
use super::booking::{self, BookInput};
use super::{slots, staff};
use crate::error::{AppError, AppResult};
use crate::graphql::RequestOrigin;
use crate::graphql::parse_id;
use crate::graphql::{state, tenant_ctx};
use crate::ids::TenantId;
use crate::state::AppState;

fn deps<'a>(ctx: &'a Context<'_>) -> AppResult<&'a AppState> {
    state::<AppState>(ctx)
}

fn appointments<'a>(ctx: &'a Context<'_>) -> AppResult<&'a super::Appointments> {
    Ok(&state::<crate::state::AppState>(ctx)?.appointments)
}

/// Counts a booking, hold or move against the client IP's booking quota.
async fn rate_limit_booking(ctx: &Context<'_>) -> AppResult<()> {
    let ip = ctx.data_opt::<crate::state::ClientIp>().and_then(|ip| ip.0);
    let state = deps(ctx)?;
    state.appointments.guard.check_ip(state.db.orm(), ip).await
}

/// A place for appointments, with its counters and opening calendar.
pub struct Location {
    pub model: locations::Model,
    pub resources: Vec<booking_resources::Model>,
}

#[derive(SimpleObject)]
pub struct BookingResource {
    pub id: ID,
    pub key: String,
    pub name: String,
    /// Citizens served at a time.
    pub capacity: i32,
}

#[Object]
impl Location {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    async fn key(&self) -> &str {
        &self.model.key
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    async fn address(&self) -> &str {
        &self.model.address
    }
    async fn time_zone(&self) -> &str {
        &self.model.time_zone
    }
    async fn resources(&self) -> Vec<BookingResource> {
        self.resources
            .iter()
            .map(|r| BookingResource {
                id: ID(r.id.to_string()),
                key: r.key.clone(),
                name: r.name.clone(),
                capacity: r.capacity,
            })
            .collect()
    }
    /// Weekly hours: `[{weekday, opens, closes}]`, local time.
    async fn hours(&self) -> Json<Value> {
        Json(self.model.hours.clone())
    }
    /// Holidays, closures and special hours: `[{date, closed, hours, reason}]`.
    async fn exceptions(&self) -> Json<Value> {
        Json(self.model.exceptions.clone())
    }
}

/// A bookable time and how many more citizens it takes (0: full).
#[derive(SimpleObject)]
pub struct AvailableSlot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub remaining: u32,
}

impl From<Slot> for AvailableSlot {
    fn from(s: Slot) -> Self {
        Self {
            start: s.start,
            end: s.end,
            remaining: s.remaining,
        }
    }
}

#[derive(SimpleObject)]
pub struct AppointmentOffer {
    pub id: ID,
    pub location_id: ID,
    pub duration_minutes: i32,
    pub buffer_minutes: i32,
    pub min_notice_minutes: i32,
    pub horizon_days: i32,
    pub requires_application: bool,
    pub max_open_per_contact: i32,
    /// Minutes a slot may be held (`holdSlot`) before booking; 0: no holds.
    pub hold_minutes: i32,
    /// Leading zero bits of the proof of work each booking or hold needs (`bookingChallenge`);
    /// 0: none.
    pub challenge_bits: i32,
}

impl From<appointment_offers::Model> for AppointmentOffer {
    fn from(o: appointment_offers::Model) -> Self {
        Self {
            id: ID(o.id.to_string()),
            location_id: ID(o.location_id.to_string()),
            duration_minutes: o.duration_minutes,
            buffer_minutes: o.buffer_minutes,
            min_notice_minutes: o.min_notice_minutes,
            horizon_days: o.horizon_days,
            requires_application: o.requires_application,
            max_open_per_contact: o.max_open_per_contact,
            hold_minutes: o.hold_minutes,
            challenge_bits: o.challenge_bits,
        }
    }
}

/// An appointment.
pub struct Booking(pub bookings::Model);

#[Object]
impl Booking {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn start(&self) -> DateTime<Utc> {
        self.0.start_at
    }
    async fn end(&self) -> DateTime<Utc> {
        self.0.end_at
    }
    /// The service the appointment is for.
    async fn service_slug(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let tctx = tenant_ctx(ctx)?;
        Ok(booking::service_slug(&deps(ctx)?.db, tctx.tenant_id, self.0.service_id).await?)
    }
    /// `held` (see `holdExpiresAt`), `booked`, `cancelled` or `no_show`.
    async fn state(&self) -> &str {
        self.0.state.as_str()
    }
    /// Until when a `held` slot stays reserved.
    async fn hold_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.hold_expires_at
    }
    async fn location_id(&self) -> ID {
        ID(self.0.location_id.to_string())
    }
    async fn resource_id(&self) -> ID {
        ID(self.0.resource_id.to_string())
    }
    async fn application_id(&self) -> Option<ID> {
        self.0.application_id.map(|id| ID(id.to_string()))
    }
    async fn contact_name(&self) -> &str {
        &self.0.contact_name
    }
    /// Staff only (the contact is the citizen's personal data).
    async fn contact_email(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let tctx = tenant_ctx(ctx)?;
        tctx.require_staff()?;
        tctx.break_glass()?;
        Ok(self.0.contact_email.clone())
    }
}

#[derive(Default)]
pub struct AppointmentsQuery;

#[Object]
impl AppointmentsQuery {
    /// The municipality's locations for appointments.
    async fn locations(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Location>> {
        let tctx = tenant_ctx(ctx)?;
        Ok(admin::locations(&deps(ctx)?.db, TenantId(tctx.tenant_id.0))
            .await?
            .into_iter()
            .map(|(model, resources)| Location { model, resources })
            .collect())
    }

    /// A booking, for its holder: by the token of its confirmation mail and calendar link
    /// (the same that cancels or moves it).
    async fn booking(
        &self,
        ctx: &Context<'_>,
        id: ID,
        token: String,
    ) -> async_graphql::Result<Booking> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("id", &id)?;
        let (booking, _, _) = booking::for_ics(&deps(ctx)?.db, &tctx, id, &token).await?;
        Ok(Booking(booking))
    }

    /// The bookings of a location on a (local) date, in time order (staff).
    async fn bookings(
        &self,
        ctx: &Context<'_>,
        location_id: ID,
        date: chrono::NaiveDate,
    ) -> async_graphql::Result<Vec<Booking>> {
        let tctx = tenant_ctx(ctx)?;
        let location = parse_id("locationId", &location_id)?;
        let (_, rows) = staff::day(&deps(ctx)?.db, &tctx, location, date).await?;
        Ok(rows.into_iter().map(Booking).collect())
    }

    /// A proof-of-work challenge for booking or holding a slot of a service at a location. Where
    /// the offer asks for none, `bits` is 0 and bookings need no challenge.
    async fn booking_challenge(
        &self,
        ctx: &Context<'_>,
        service_slug: String,
        location_id: ID,
    ) -> async_graphql::Result<BookingChallenge> {
        let tctx = tenant_ctx(ctx)?;
        let location = parse_id("locationId", &location_id)?;
        let c = booking::challenge(
            &deps(ctx)?.db,
            appointments(ctx)?,
            tctx.tenant_id,
            &service_slug,
            location,
        )
        .await?;
        Ok(BookingChallenge {
            challenge: c.challenge,
            bits: c.bits,
            expires_at: c.expires_at,
        })
    }

    /// Slots of a service at a location starting in `[from, to)` (at most 62 days), with the
    /// places left; full slots are listed with `remaining: 0`.
    async fn available_slots(
        &self,
        ctx: &Context<'_>,
        service_slug: String,
        location_id: ID,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> async_graphql::Result<Vec<AvailableSlot>> {
        let tctx = tenant_ctx(ctx)?;
        let location = parse_id("locationId", &location_id)?;
        Ok(slots::available_slots(
            &deps(ctx)?.db,
            tctx.tenant_id,
            &service_slug,
            location,
            from,
            to,
        )
        .await?
        .into_iter()
        .map(AvailableSlot::from)
        .collect())
    }
}

/// Find any `solution` (at most 64 characters) for which SHA-256 of `challenge` + ":" +
/// `solution` starts with `bits` zero bits, and send both with the booking.
#[derive(SimpleObject)]
pub struct BookingChallenge {
    pub challenge: String,
    pub bits: u32,
    pub expires_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct ChallengeAnswerInput {
    pub challenge: String,
    pub solution: String,
}

fn answer(input: Option<ChallengeAnswerInput>) -> Option<(String, String)> {
    input.map(|c| (c.challenge, c.solution))
}

#[derive(InputObject)]
pub struct LocationResourceInput {
    pub key: String,
    pub name: String,
    pub capacity: i32,
}

#[derive(InputObject)]
pub struct HoursInput {
    /// `mon` … `sun`.
    pub weekday: String,
    /// `HH:MM`, local time.
    pub opens: String,
    pub closes: String,
}

#[derive(InputObject)]
pub struct WindowInput {
    pub opens: String,
    pub closes: String,
}

#[derive(InputObject)]
pub struct ExceptionInput {
    pub date: chrono::NaiveDate,
    /// Closed all day (holiday, closure) …
    #[graphql(default)]
    pub closed: bool,
    /// … or open with these hours instead of the weekly ones.
    #[graphql(default)]
    pub hours: Vec<WindowInput>,
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct SaveLocationInput {
    /// Stable key; saving again with the same key replaces the location's definition.
    pub key: String,
    pub name: String,
    #[graphql(default)]
    pub address: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub resources: Vec<LocationResourceInput>,
    pub hours: Vec<HoursInput>,
    #[graphql(default)]
    pub exceptions: Vec<ExceptionInput>,
}

#[derive(SimpleObject)]
pub struct SaveLocationPayload {
    pub location: Location,
}

#[derive(InputObject)]
pub struct SetAppointmentOfferInput {
    pub service_slug: String,
    pub location_id: ID,
    /// Default: the service content's `appointment.durationMinutes`.
    pub duration_minutes: Option<i32>,
    #[graphql(default)]
    pub buffer_minutes: i32,
    #[graphql(default = 120)]
    pub min_notice_minutes: i32,
    #[graphql(default = 60)]
    pub horizon_days: i32,
    #[graphql(default)]
    pub requires_application: bool,
    #[graphql(default = 1)]
    pub max_open_per_contact: i32,
    /// Minutes a slot may be held before booking (0–60); 0: no holds.
    #[graphql(default)]
    pub hold_minutes: i32,
    /// Proof of work per booking or hold, in leading zero bits (0–26); 0: none. About 2^bits
    /// hashes: 16–20 slows bots down while a citizen's browser takes a moment.
    #[graphql(default)]
    pub challenge_bits: i32,
}

#[derive(SimpleObject)]
pub struct SetAppointmentOfferPayload {
    pub offer: AppointmentOffer,
}

#[derive(InputObject)]
pub struct ContactInput {
    pub name: String,
    pub email: String,
}

#[derive(InputObject)]
pub struct BookAppointmentInput {
    pub service_slug: String,
    pub location_id: ID,
    /// A slot start from `availableSlots`.
    pub start: DateTime<Utc>,
    pub contact: ContactInput,
    /// The submitted application the appointment is for (required where the offer says so).
    pub application_id: Option<ID>,
    /// The application's access token (anonymous citizens).
    pub access_token: Option<String>,
    /// A hold of this slot from `holdSlot`: its place is kept for this booking.
    pub hold_id: Option<ID>,
    pub hold_token: Option<String>,
    /// Where the offer demands one (and no hold is given): a solved `bookingChallenge`.
    pub challenge: Option<ChallengeAnswerInput>,
}

#[derive(InputObject)]
pub struct HoldSlotInput {
    pub service_slug: String,
    pub location_id: ID,
    pub start: DateTime<Utc>,
    /// Where the offer demands one: a solved `bookingChallenge`.
    pub challenge: Option<ChallengeAnswerInput>,
}

#[derive(SimpleObject)]
pub struct HoldSlotPayload {
    pub hold: Booking,
    /// Give it with `holdId` to `bookAppointment`, or to `cancelBooking` to release the slot.
    pub hold_token: String,
}

#[derive(SimpleObject)]
pub struct BookAppointmentPayload {
    pub booking: Booking,
    /// Cancels or reschedules the booking; shown once.
    pub cancel_token: String,
    /// The booking's calendar file (the link carries the token).
    pub ics_url: String,
}

#[derive(InputObject)]
pub struct RescheduleBookingInput {
    pub id: ID,
    pub token: String,
    /// The new slot; if it is full, the booking keeps its old one.
    pub start: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct MarkNoShowInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct CancelBookingInput {
    pub id: ID,
    pub token: String,
}

#[derive(SimpleObject)]
pub struct BookingPayload {
    pub booking: Booking,
}

#[derive(Default)]
pub struct AppointmentsMutation;

#[Object]
impl AppointmentsMutation {
    /// Creates or replaces a location (tenant administrators).
    async fn save_location(
        &self,
        ctx: &Context<'_>,
        input: SaveLocationInput,
    ) -> async_graphql::Result<SaveLocationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let (model, resources) = admin::save_location(
            &deps(ctx)?.db,
            &tctx,
            LocationInput {
                key: input.key,
                name: input.name,
                address: input.address,
                time_zone: input.time_zone,
                resources: input
                    .resources
                    .into_iter()
                    .map(|r| ResourceInput {
                        key: r.key,
                        name: r.name,
                        capacity: r.capacity,
                    })
                    .collect(),
                hours: input
                    .hours
                    .into_iter()
                    .map(|h| HoursEntry {
                        weekday: h.weekday,
                        opens: h.opens,
                        closes: h.closes,
                    })
                    .collect(),
                exceptions: input
                    .exceptions
                    .into_iter()
                    .map(|e| ExceptionEntry {
                        date: e.date,
                        closed: e.closed,
                        hours: e
                            .hours
                            .into_iter()
                            .map(|w| admin::WindowEntry {
                                opens: w.opens,
                                closes: w.closes,
                            })
                            .collect(),
                        reason: e.reason,
                    })
                    .collect(),
            },
        )
        .await?;
        Ok(SaveLocationPayload {
            location: Location { model, resources },
        })
    }

    /// Makes a service bookable at a location (tenant administrators).
    async fn set_appointment_offer(
        &self,
        ctx: &Context<'_>,
        input: SetAppointmentOfferInput,
    ) -> async_graphql::Result<SetAppointmentOfferPayload> {
        let tctx = tenant_ctx(ctx)?;
        let offer = admin::set_offer(
            &deps(ctx)?.db,
            &tctx,
            OfferInput {
                service_slug: input.service_slug,
                location_id: parse_id("input.locationId", &input.location_id)?,
                duration_minutes: input.duration_minutes,
                buffer_minutes: input.buffer_minutes,
                min_notice_minutes: input.min_notice_minutes,
                horizon_days: input.horizon_days,
                requires_application: input.requires_application,
                max_open_per_contact: input.max_open_per_contact,
                hold_minutes: input.hold_minutes,
                challenge_bits: input.challenge_bits,
            },
        )
        .await?;
        Ok(SetAppointmentOfferPayload {
            offer: offer.into(),
        })
    }

    /// Books a slot; a full or no longer bookable one is `SLOT_FULL`. The contact gets a
    /// confirmation mail with the calendar file, and a reminder before the appointment.
    async fn book_appointment(
        &self,
        ctx: &Context<'_>,
        input: BookAppointmentInput,
    ) -> async_graphql::Result<BookAppointmentPayload> {
        let tctx = tenant_ctx(ctx)?;
        rate_limit_booking(ctx).await?;
        let hold = match (&input.hold_id, input.hold_token) {
            (Some(id), Some(token)) => Some((parse_id("input.holdId", id)?, token)),
            (None, None) => None,
            _ => {
                return Err(AppError::invalid(
                    "input.holdToken",
                    "give holdId and holdToken together",
                )
                .into());
            }
        };
        let origin = RequestOrigin::of(ctx);
        let (booking, cancel_token) = booking::book(
            deps(ctx)?,
            appointments(ctx)?,
            &tctx,
            BookInput {
                service_slug: input.service_slug,
                location_id: parse_id("input.locationId", &input.location_id)?,
                start: input.start,
                contact_name: input.contact.name,
                contact_email: input.contact.email,
                application_id: input
                    .application_id
                    .as_ref()
                    .map(|id| parse_id("input.applicationId", id))
                    .transpose()?,
                access_token: input.access_token,
                hold,
                challenge: answer(input.challenge),
            },
            origin,
        )
        .await?;
        let ics_url = super::mail::ics_url(origin, booking.id, &tctx.tenant.slug, &cancel_token);
        Ok(BookAppointmentPayload {
            booking: Booking(booking),
            cancel_token,
            ics_url,
        })
    }

    /// Holds a place in a slot for the offer's `holdMinutes` while the citizen completes the
    /// form or payment (`SLOT_FULL` if there is none); book it with `holdId`/`holdToken`.
    async fn hold_slot(
        &self,
        ctx: &Context<'_>,
        input: HoldSlotInput,
    ) -> async_graphql::Result<HoldSlotPayload> {
        let tctx = tenant_ctx(ctx)?;
        rate_limit_booking(ctx).await?;
        let (hold, hold_token) = booking::hold(
            &deps(ctx)?.db,
            appointments(ctx)?,
            &tctx,
            booking::HoldInput {
                service_slug: input.service_slug,
                location_id: parse_id("input.locationId", &input.location_id)?,
                start: input.start,
                challenge: answer(input.challenge),
            },
        )
        .await?;
        Ok(HoldSlotPayload {
            hold: Booking(hold),
            hold_token,
        })
    }

    /// Moves a booking to another slot (atomic: a full slot leaves it where it was).
    async fn reschedule_booking(
        &self,
        ctx: &Context<'_>,
        input: RescheduleBookingInput,
    ) -> async_graphql::Result<BookingPayload> {
        let tctx = tenant_ctx(ctx)?;
        rate_limit_booking(ctx).await?;
        let id = parse_id("input.id", &input.id)?;
        let booking = booking::reschedule(
            deps(ctx)?,
            appointments(ctx)?,
            &tctx,
            (id, &input.token),
            input.start,
            RequestOrigin::of(ctx),
        )
        .await?;
        Ok(BookingPayload {
            booking: Booking(booking),
        })
    }

    /// Marks that the citizen did not come (staff).
    async fn mark_no_show(
        &self,
        ctx: &Context<'_>,
        input: MarkNoShowInput,
    ) -> async_graphql::Result<BookingPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let booking = staff::mark_no_show(&deps(ctx)?.db, &tctx, id).await?;
        Ok(BookingPayload {
            booking: Booking(booking),
        })
    }

    /// Cancels a booking (or releases a hold) with its token; the contact gets a cancellation
    /// mail.
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        input: CancelBookingInput,
    ) -> async_graphql::Result<BookingPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let booking = booking::cancel(deps(ctx)?, &tctx, id, &input.token).await?;
        Ok(BookingPayload {
            booking: Booking(booking),
        })
    }
}
