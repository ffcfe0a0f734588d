//! Paying fees (DESIGN.md 7). The amount is always the server's: the fees computed at
//! submission from the service content. A payment is one attempt to collect them through a
//! [`PaymentProvider`]:
//!
//! - [`stripe::Stripe`]: a Stripe Checkout Session on the tenant's connected account (Stripe
//!   Connect, `Stripe-Account` header); the result arrives by signed webhook.
//! - [`counter::OnSite`]: at the counter or by invoice; staff with the cashier role mark it paid.
//!
//! A third provider (an e-payment platform such as ePayBL, pmPayment or XBezahldienste) is one
//! more implementation of the trait plus a [`ProviderKind`] value: it starts a payment (usually a
//! redirect), refunds, and turns its notifications into [`WebhookEvent`]s; [`webhook`] applies
//! those the same way for every provider (deduplicated by event id, never undoing `paid`).
//!
//! - [`account`] (the tenant's provider account), [`checkout`] (starting a payment), [`counter`]
//!   (paying at the counter), [`refund`], [`webhook`], [`report`] (the treasury report): one use
//!   case each; [`service`]: what they share.
//! - [`secrets`]: tenants' webhook secrets sealed at rest. [`signature`]: Stripe's signatures.
//! - [`graphql`], [`http`] (webhook endpoint, CSV export).

pub mod account;
pub mod checkout;
pub mod counter;
pub mod graphql;
pub mod http;
pub mod refund;
pub mod report;
pub mod secrets;
pub mod service;
pub mod signature;
pub mod stripe;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use crate::applications::rules::FeeLine;
use crate::ids::{ApplicationId, PaymentId};
use crate::settings::Settings;

/// Which provider a payment goes through.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ProviderKind {
    /// Online by card, SEPA and more through Stripe Checkout.
    Stripe,
    /// At the counter or by invoice; staff confirm.
    OnSite,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::OnSite => "on_site",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Stripe, Self::OnSite]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Where a payment stands (stored in `payments.state`; the GraphQL enum is
/// [`graphql::PaymentStateOutput`]).
pub use entity::states::PaymentState;

/// Money was received (it may have been given back since).
pub fn was_paid(state: PaymentState) -> bool {
    matches!(
        state,
        PaymentState::Paid | PaymentState::Refunded | PaymentState::PartiallyRefunded
    )
}

/// What a provider reports happened to a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The money arrived (`provider_payment_id`: e.g. Stripe's PaymentIntent).
    Paid {
        provider_payment_id: Option<String>,
    },
    Failed,
    Expired,
    /// The provider's running total of refunds on the payment (refunds made elsewhere, e.g. in
    /// Stripe's dashboard, show up here too).
    RefundedTotal {
        cents: i64,
    },
}

/// The next state after `outcome`, or `None` when it changes nothing. The order events arrive
/// in does not matter: `paid` wins over `failed`/`expired` whenever it comes (money received is
/// never forgotten), and failure or expiry only ends a payment still pending.
pub fn next_state(
    current: PaymentState,
    amount: i64,
    refunded: i64,
    outcome: &Outcome,
) -> Option<(PaymentState, i64)> {
    use PaymentState as S;
    match (current, outcome) {
        (S::Pending | S::Failed | S::Expired, Outcome::Paid { .. }) => Some((S::Paid, refunded)),
        (S::Pending, Outcome::Failed) => Some((S::Failed, refunded)),
        (S::Pending, Outcome::Expired) => Some((S::Expired, refunded)),
        (S::Paid | S::PartiallyRefunded, Outcome::RefundedTotal { cents }) if *cents > refunded => {
            let total = (*cents).min(amount);
            let state = if total >= amount {
                S::Refunded
            } else {
                S::PartiallyRefunded
            };
            Some((state, total))
        }
        _ => None,
    }
}

/// How a webhook event names the payment it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentRef {
    /// Our payment id, carried in the provider's metadata (and cross-checked with the session).
    Ours {
        id: PaymentId,
        session: Option<String>,
    },
    /// The provider's payment id (Stripe PaymentIntent), e.g. on refunds.
    ProviderPayment(String),
}

/// A verified webhook event, provider-neutral.
#[derive(Clone, Debug)]
pub struct WebhookEvent {
    /// The provider's event id: applied at most once.
    pub id: String,
    /// The provider's event type, kept with the event.
    pub kind: String,
    /// What it means for which payment; `None` for events we do not act on.
    pub effect: Option<(PaymentRef, Outcome)>,
}

/// A tenant's account at a provider, secrets opened.
#[derive(Clone, Debug)]
pub struct Account {
    pub account_id: String,
    pub webhook_secret: Option<SecretString>,
    pub success_url: String,
    pub cancel_url: String,
}

/// What a provider is asked to collect: always computed by the server.
#[derive(Debug)]
pub struct Charge<'a> {
    pub payment_id: PaymentId,
    pub tenant_slug: &'a str,
    pub application_id: ApplicationId,
    pub reference: &'a str,
    pub title: &'a str,
    pub lines: &'a [FeeLine],
    pub currency: &'a str,
    pub customer_email: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

impl Charge<'_> {
    pub fn total(&self) -> i64 {
        self.lines.iter().map(|l| l.amount_cents).sum()
    }
}

/// How the citizen goes on after starting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// To the provider's page.
    Redirect {
        session_id: String,
        url: String,
        expires_at: DateTime<Utc>,
    },
    /// To the counter (nothing to do online).
    AtCounter,
}

/// Why a provider could not do what was asked; shown to the caller as `PAYMENT_FAILED`.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused (its message is safe to show).
    #[error("{0}")]
    Refused(String),
    /// The provider could not be reached or answered nonsense (details in the log only).
    #[error("the payment provider is not reachable; please try again later")]
    Unavailable(String),
    /// The tenant has not set the provider up.
    #[error("this municipality does not accept this payment method")]
    NotConfigured,
}

/// Why a webhook delivery was refused (HTTP 400; Stripe retries later).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    #[error("the event is not valid JSON of the expected shape")]
    Shape,
}

/// One way of collecting fees.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> ProviderKind;

    /// Whether staff confirm the payment by hand (instead of the provider by webhook).
    fn confirmed_by_staff(&self) -> bool;

    /// Starts collecting `charge`. Must be idempotent per `charge.payment_id`: a retry after a
    /// crash gets the same session back.
    async fn start(
        &self,
        account: Option<&Account>,
        charge: &Charge<'_>,
    ) -> Result<Started, ProviderError>;

    /// Gives `amount_cents` back on a payment; returns the provider's refund id, if any.
    /// Idempotent per `refund_id`.
    async fn refund(
        &self,
        account: Option<&Account>,
        payment: &entity::payments::Model,
        refund_id: Uuid,
        amount_cents: i64,
    ) -> Result<Option<String>, ProviderError>;

    /// Verifies a webhook delivery with the tenant's secret, then reads it.
    fn read_webhook(
        &self,
        account: &Account,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError>;
}

/// How long a tenant's opened provider account is reused. A change on this replica takes effect
/// at once ([`Payments::forget`]); other replicas follow within this time.
const ACCOUNT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

type AccountCache = HashMap<(uuid::Uuid, ProviderKind), (std::time::Instant, Option<Account>)>;

/// The providers this server offers, the key that seals tenants' webhook secrets, and tenants'
/// opened accounts for a few seconds (every webhook needs its tenant's secret).
#[derive(Debug)]
pub struct Payments {
    providers: HashMap<ProviderKind, Arc<dyn PaymentProvider>>,
    pub sealer: secrets::Sealer,
    accounts: std::sync::Mutex<AccountCache>,
}

impl Payments {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let mut providers: HashMap<ProviderKind, Arc<dyn PaymentProvider>> = HashMap::new();
        providers.insert(ProviderKind::OnSite, Arc::new(counter::OnSite));
        if let Some(stripe) = stripe::Stripe::from_settings(&settings.payments)? {
            providers.insert(ProviderKind::Stripe, Arc::new(stripe));
        }
        let key = crate::storage::local::load_or_generate_secret(
            &settings.payment_secrets_key_path(),
            "payment secrets key",
        )?;
        Ok(Self {
            providers,
            sealer: secrets::Sealer::new(&key),
            accounts: std::sync::Mutex::default(),
        })
    }

    /// The cached account of `tenant` at `kind`: `Some(None)` is a cached "not set up".
    pub fn cached_account(
        &self,
        tenant: uuid::Uuid,
        kind: ProviderKind,
    ) -> Option<Option<Account>> {
        let cache = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(&(tenant, kind))
            .filter(|(at, _)| at.elapsed() < ACCOUNT_TTL)
            .map(|(_, a)| a.clone())
    }

    pub fn remember_account(
        &self,
        tenant: uuid::Uuid,
        kind: ProviderKind,
        account: Option<Account>,
    ) {
        let mut cache = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert((tenant, kind), (std::time::Instant::now(), account));
    }

    /// Drops the tenant's cached accounts (after they changed).
    pub fn forget(&self, tenant: uuid::Uuid) {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(t, _), _| *t != tenant);
    }

    /// The provider of `kind`, or `PAYMENT_FAILED` when this server does not offer it.
    pub fn provider(&self, kind: ProviderKind) -> Result<&Arc<dyn PaymentProvider>, ProviderError> {
        self.providers
            .get(&kind)
            .ok_or(ProviderError::NotConfigured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Paid {
                provider_payment_id: None
            }),
            Just(Outcome::Failed),
            Just(Outcome::Expired),
            (0i64..=12_000).prop_map(|cents| Outcome::RefundedTotal { cents }),
        ]
    }

    fn run(events: &[Outcome]) -> (PaymentState, i64) {
        events.iter().fold((PaymentState::Pending, 0), |(s, r), e| {
            next_state(s, 10_000, r, e).unwrap_or((s, r))
        })
    }

    #[test]
    fn late_expiry_never_undoes_paid() {
        let paid = Outcome::Paid {
            provider_payment_id: None,
        };
        assert_eq!(run(&[paid.clone(), Outcome::Expired]).0, PaymentState::Paid);
        assert_eq!(run(&[Outcome::Expired, paid.clone()]).0, PaymentState::Paid);
        assert_eq!(run(&[paid.clone(), Outcome::Failed]).0, PaymentState::Paid);
        assert_eq!(
            run(&[paid.clone(), Outcome::RefundedTotal { cents: 2_500 }]),
            (PaymentState::PartiallyRefunded, 2_500)
        );
        assert_eq!(
            run(&[paid, Outcome::RefundedTotal { cents: 20_000 }]),
            (PaymentState::Refunded, 10_000)
        );
        assert_eq!(
            run(&[Outcome::RefundedTotal { cents: 5 }]).0,
            PaymentState::Pending
        );
    }

    proptest! {
        /// Whatever the order: a payment that saw `paid` ends paid (or refunded), never pending,
        /// failed or expired; refunds never exceed the amount and never shrink.
        #[test]
        fn paid_is_never_lost(events in proptest::collection::vec(outcome(), 0..12)) {
            let (state, refunded) = run(&events);
            let saw_paid = events.iter().any(|e| matches!(e, Outcome::Paid { .. }));
            prop_assert_eq!(was_paid(state), saw_paid);
            prop_assert!((0..=10_000).contains(&refunded));
            // More events later (in any order) never take a received payment back, and the
            // refunded total never shrinks.
            let again = events.iter().fold((state, refunded), |(s, r), e| next_state(s, 10_000, r, e).unwrap_or((s, r)));
            if saw_paid {
                prop_assert!(was_paid(again.0));
                prop_assert!(again.1 >= refunded);
            }
        }
    }
}
