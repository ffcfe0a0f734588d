//! Abuse resistance for hot slots: rate limits per client IP and per contact, and a proof-of-work
//! challenge a tenant can switch on per offer (`challengeBits`).
//!
//! A challenge is a signed, expiring string bound to the tenant and the offer:
//! `<expiry unix>.<offer id>.<bits>.<random>.<HMAC-SHA256>`. The client finds any `solution`
//! (at most 64 characters) for which SHA-256(`challenge` ":" `solution`) starts with `bits` zero
//! bits — about 2^bits hashes, a moment for one citizen's browser, a real cost for a bot that
//! wants every slot — and sends both with the booking. Each challenge is spent once: its digest is
//! inserted in the booking's transaction (so a booking that fails leaves it unspent).

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::auth::rate_limit::{IpLimiter, Limit};
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};
use crate::ids::TenantId;
use crate::settings::AppointmentSettings;

/// The most work an offer may demand (2^26 hashes is several seconds in a browser).
pub const MAX_CHALLENGE_BITS: i32 = 26;
const MAX_SOLUTION_CHARS: usize = 64;

/// A challenge as handed out.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub challenge: String,
    pub bits: u32,
    pub expires_at: DateTime<Utc>,
}

/// A solved challenge, checked but not spent yet.
#[derive(Clone, Debug)]
pub struct Solved {
    digest: String,
    expires_at: DateTime<Utc>,
}

/// Limits and challenges of the booking mutations.
pub struct BookingGuard {
    per_ip: IpLimiter,
    per_contact: Limit,
    /// Keyed once; cloned per signature.
    mac: Hmac<Sha256>,
    challenge_ttl: Duration,
}

impl std::fmt::Debug for BookingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BookingGuard")
    }
}

fn refused(why: &str) -> AppError {
    AppError::invalid("input.challenge", why)
}

fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Whether `solution` solves `challenge` at `bits`.
pub fn solves(challenge: &str, solution: &str, bits: u32) -> bool {
    let digest = Sha256::new()
        .chain_update(challenge.as_bytes())
        .chain_update(b":")
        .chain_update(solution.as_bytes())
        .finalize();
    leading_zero_bits(&digest) >= bits
}

impl BookingGuard {
    pub fn new(settings: &AppointmentSettings, key: [u8; 32]) -> anyhow::Result<Self> {
        Ok(Self {
            per_ip: IpLimiter::per_minute("bookings-ip", settings.bookings_per_ip_per_minute),
            per_contact: Limit::per_hour(
                "bookings-contact",
                settings.bookings_per_contact_per_hour,
            ),
            mac: Hmac::new_from_slice(&key)
                .map_err(|_| anyhow::anyhow!("the booking challenge key is unusable"))?,
            challenge_ttl: Duration::seconds(i64::from(settings.challenge_ttl_secs)),
        })
    }

    /// Counts a booking, hold or move against the client IP's quota.
    pub async fn check_ip(
        &self,
        db: &sea_orm::DatabaseConnection,
        ip: Option<std::net::IpAddr>,
    ) -> AppResult<()> {
        self.per_ip.check(db, ip).await
    }

    /// Counts a booking against the (normalized) contact address's quota.
    pub async fn check_contact(
        &self,
        db: &sea_orm::DatabaseConnection,
        tenant: TenantId,
        email: &str,
    ) -> AppResult<()> {
        self.per_contact
            .hit(db, &format!("{}/{email}", tenant.0))
            .await
    }

    fn mac(&self, tenant: TenantId, body: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(tenant.0.as_bytes());
        mac.update(body.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// A fresh challenge for `offer` at `bits`.
    pub fn issue(&self, tenant: TenantId, offer: Uuid, bits: u32, now: DateTime<Utc>) -> Challenge {
        let expires_at = now + self.challenge_ttl;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let body = format!(
            "{}.{}.{bits}.{}",
            expires_at.timestamp(),
            offer.simple(),
            hex(&nonce)
        );
        let mac = self.mac(tenant, &body);
        Challenge {
            challenge: format!("{body}.{mac}"),
            bits,
            expires_at,
        }
    }

    /// Checks a solution for `offer`, which now demands `required` bits: signature, offer,
    /// expiry, difficulty and work. `VALIDATION_FAILED` on `input.challenge` otherwise.
    pub fn check(
        &self,
        tenant: TenantId,
        offer: Uuid,
        required: u32,
        answer: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<Solved>> {
        if required == 0 {
            return Ok(None);
        }
        let Some((challenge, solution)) = answer else {
            return Err(refused(
                "this appointment needs a solved booking challenge (query bookingChallenge)",
            ));
        };
        let (body, mac) = challenge
            .rsplit_once('.')
            .ok_or_else(|| refused("not a booking challenge"))?;
        let expected = self.mac(tenant, body);
        if !crate::auth::tokens::constant_time_eq(mac, &expected) {
            return Err(refused("not a booking challenge of this service"));
        }
        let parts: Vec<&str> = body.split('.').collect();
        let [expiry, offer_id, bits, _nonce] = parts[..] else {
            return Err(refused("not a booking challenge"));
        };
        let expiry = expiry
            .parse::<i64>()
            .ok()
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| refused("not a booking challenge"))?;
        if offer_id != offer.simple().to_string() {
            return Err(refused(
                "this challenge belongs to another service or location",
            ));
        }
        if expiry <= now {
            return Err(refused("the challenge has expired; fetch a new one"));
        }
        let bits: u32 = bits
            .parse()
            .map_err(|_| refused("not a booking challenge"))?;
        if bits < required {
            return Err(refused(
                "the challenge is easier than this service now demands",
            ));
        }
        if solution.chars().count() > MAX_SOLUTION_CHARS || !solves(challenge, solution, bits) {
            return Err(refused("the solution does not solve the challenge"));
        }
        Ok(Some(Solved {
            digest: hex(&Sha256::digest(challenge.as_bytes())),
            expires_at: expiry,
        }))
    }
}

/// Spends a solved challenge in the booking's transaction; a second use is refused (the
/// INSERT touches no row when the challenge was spent before).
pub async fn spend(txn: &TenantTx, solved: Option<Solved>) -> AppResult<()> {
    use entity::spent_challenges as spent;
    let Some(solved) = solved else {
        return Ok(());
    };
    let inserted = spent::Entity::insert(spent::ActiveModel {
        tenant_id: Set(txn.tenant().0),
        digest: Set(solved.digest),
        expires_at: Set(solved.expires_at),
    })
    .on_conflict(
        OnConflict::columns([spent::Column::TenantId, spent::Column::Digest])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    if inserted == 0 {
        return Err(refused("this challenge was used already; fetch a new one"));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn guard() -> BookingGuard {
        BookingGuard::new(&AppointmentSettings::default(), [7; 32]).unwrap()
    }

    fn solve(challenge: &str, bits: u32) -> String {
        (0u64..)
            .map(|n| n.to_string())
            .find(|s| solves(challenge, s, bits))
            .unwrap()
    }

    #[test]
    fn counts_leading_zero_bits() {
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0x00, 0x10]), 11);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn a_solution_passes_once_checked_and_other_offers_tenants_or_times_fail() {
        let g = guard();
        let (tenant, offer, now) = (TenantId(Uuid::now_v7()), Uuid::now_v7(), Utc::now());
        let c = g.issue(tenant, offer, 10, now);
        let s = solve(&c.challenge, 10);
        assert!(
            g.check(tenant, offer, 10, Some((&c.challenge, &s)), now)
                .unwrap()
                .is_some()
        );
        assert!(g.check(tenant, offer, 0, None, now).unwrap().is_none());
        for bad in [
            g.check(tenant, offer, 10, None, now),
            g.check(
                TenantId(Uuid::now_v7()),
                offer,
                10,
                Some((&c.challenge, &s)),
                now,
            ),
            g.check(tenant, Uuid::now_v7(), 10, Some((&c.challenge, &s)), now),
            g.check(tenant, offer, 11, Some((&c.challenge, &s)), now),
            g.check(
                tenant,
                offer,
                10,
                Some((&c.challenge, &s)),
                now + Duration::hours(1),
            ),
        ] {
            assert!(matches!(bad, Err(AppError::Validation(_))), "{bad:?}");
        }
        // Raising the difficulty in the signed part breaks the signature.
        let forged = c.challenge.replacen(".10.", ".30.", 1);
        assert!(
            g.check(tenant, offer, 10, Some((&forged, &s)), now)
                .is_err()
        );
    }

    proptest! {
        /// Random strings never panic the checker and never pass without the work.
        #[test]
        fn arbitrary_answers_are_refused(challenge in ".{0,200}", solution in ".{0,80}") {
            let g = guard();
            let r = g.check(TenantId(Uuid::nil()), Uuid::nil(), 8, Some((&challenge, &solution)), Utc::now());
            prop_assert!(r.is_err());
        }
    }
}
