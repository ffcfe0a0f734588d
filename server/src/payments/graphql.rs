//! GraphQL of payments: the tenant's Stripe account (administrators), starting a payment
//! (applicants), confirming at the counter and refunds (cashiers), the treasury report.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{payment_accounts, payments};
use secrecy::SecretString;

use super::account::{self, AccountInput};
use super::checkout::{self, StartInput};
use super::counter;
use super::refund::{self, RefundInput};
use super::report::{self, LedgerLine};
use super::{PaymentState, Payments, ProviderKind};

/// Where a payment stands. Once `paid`, nothing but refunds changes it.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "PaymentState",
    remote = "PaymentState",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum PaymentStateOutput {
    Pending,
    Paid,
    Failed,
    Expired,
    Refunded,
    PartiallyRefunded,
}
use crate::error::AppResult;
use crate::graphql::parse_id;
use crate::graphql::{state, tenant_ctx};
use crate::state::AppState;

fn deps<'a>(ctx: &'a Context<'_>) -> AppResult<&'a AppState> {
    state::<AppState>(ctx)
}

fn app_state<'a>(ctx: &'a Context<'_>) -> AppResult<&'a crate::state::AppState> {
    state::<crate::state::AppState>(ctx)
}

fn payments_of<'a>(ctx: &'a Context<'_>) -> AppResult<&'a Payments> {
    Ok(&app_state(ctx)?.payments)
}

/// One attempt to pay an application's fees.
pub struct Payment(pub payments::Model);

#[Object]
impl Payment {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn application_id(&self) -> ID {
        ID(self.0.application_id.to_string())
    }
    async fn provider(&self) -> Option<ProviderKind> {
        ProviderKind::parse(&self.0.provider)
    }
    async fn state(&self) -> Option<PaymentStateOutput> {
        Some(self.0.state.into())
    }
    /// The application's fees at submission, computed by the server.
    async fn amount_cents(&self) -> i64 {
        self.0.amount_cents
    }
    async fn refunded_cents(&self) -> i64 {
        self.0.refunded_cents
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// Where the applicant pays online (Stripe Checkout) while the payment is pending.
    async fn checkout_url(&self) -> Option<&str> {
        (self.0.state == PaymentState::Pending)
            .then_some(self.0.checkout_url.as_deref())
            .flatten()
    }
    /// When an open online checkout lapses.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    /// The provider's payment id (Stripe PaymentIntent) for reconciliation.
    async fn provider_payment_id(&self) -> Option<&str> {
        self.0.provider_payment_id.as_deref()
    }
}

/// The tenant's Stripe account as configured (the webhook secret is never shown).
pub struct PaymentAccount(pub payment_accounts::Model);

#[Object]
impl PaymentAccount {
    async fn provider(&self) -> Option<ProviderKind> {
        ProviderKind::parse(&self.0.provider)
    }
    async fn account_id(&self) -> &str {
        &self.0.account_id
    }
    async fn success_url(&self) -> &str {
        &self.0.success_url
    }
    async fn cancel_url(&self) -> &str {
        &self.0.cancel_url
    }
    /// Whether a webhook signing secret is stored.
    async fn webhook_secret_set(&self) -> bool {
        self.0.webhook_secret.is_some()
    }
    /// The path Stripe must send this tenant's events to.
    async fn webhook_path(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let tctx = tenant_ctx(ctx)?;
        Ok(format!(
            "/webhooks/{}/{}",
            self.0.provider, tctx.tenant.slug
        ))
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One money movement in the treasury report.
pub struct LedgerEntry(pub LedgerLine);

#[Object]
impl LedgerEntry {
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// `payment` or `refund`.
    async fn kind(&self) -> &str {
        self.0.kind
    }
    /// The application's reference (Aktenzeichen).
    async fn reference(&self) -> &str {
        &self.0.reference
    }
    /// Positive for money received, negative for refunds.
    async fn amount_cents(&self) -> i64 {
        self.0.amount_cents
    }
    async fn currency(&self) -> &str {
        &self.0.payment.currency
    }
    async fn payment(&self) -> Payment {
        Payment(self.0.payment.clone())
    }
    async fn fees(&self) -> Vec<crate::applications::graphql::fee::Fee> {
        self.0.fees.iter().cloned().map(Into::into).collect()
    }
    async fn provider_refund_id(&self) -> Option<&str> {
        self.0.provider_refund_id.as_deref()
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
}

#[derive(SimpleObject)]
pub struct PaymentsReport {
    pub entries: Vec<LedgerEntry>,
    /// Money received in the period.
    pub received_cents: i64,
    /// Money given back in the period.
    pub refunded_cents: i64,
    /// Received minus refunded.
    pub net_cents: i64,
}

#[derive(Default)]
pub struct PaymentsQuery;

#[Object]
impl PaymentsQuery {
    /// How citizens can pay here: `ON_SITE` (at the counter) always, `STRIPE` when the
    /// municipality has its account configured. Public.
    async fn payment_options(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProviderKind>> {
        let tctx = tenant_ctx(ctx)?;
        Ok(account::options(&app_state(ctx)?.db, payments_of(ctx)?, tctx.tenant_id).await?)
    }
    /// The tenant's payment provider accounts. Tenant administrators.
    async fn payment_accounts(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<PaymentAccount>> {
        let tctx = tenant_ctx(ctx)?;
        Ok(account::accounts(&app_state(ctx)?.db, &tctx)
            .await?
            .into_iter()
            .map(PaymentAccount)
            .collect())
    }

    /// Payments received and refunds made in `[from, to)` (at most 366 days), oldest first,
    /// for the treasury (Kasse). The same as CSV: `GET /payments/report.csv?from=…&to=…`.
    /// Cashiers and tenant administrators.
    async fn payments_report(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> async_graphql::Result<PaymentsReport> {
        let tctx = tenant_ctx(ctx)?;
        let lines = report::report(&app_state(ctx)?.db, &tctx, from, to).await?;
        let received_cents = lines
            .iter()
            .filter(|l| l.amount_cents > 0)
            .map(|l| l.amount_cents)
            .sum();
        let refunded_cents = -lines
            .iter()
            .filter(|l| l.amount_cents < 0)
            .map(|l| l.amount_cents)
            .sum::<i64>();
        Ok(PaymentsReport {
            entries: lines.into_iter().map(LedgerEntry).collect(),
            received_cents,
            refunded_cents,
            net_cents: received_cents - refunded_cents,
        })
    }
}

#[derive(InputObject)]
pub struct ConfigureStripePaymentsInput {
    /// The municipality's connected account (`acct_…`).
    pub account_id: String,
    /// The webhook endpoint's signing secret (`whsec_…`); omit to keep the stored one.
    pub webhook_secret: Option<String>,
    /// Where Checkout sends the citizen after paying (https). `{APPLICATION_ID}`,
    /// `{REFERENCE}`, `{PAYMENT_ID}` are filled in.
    pub success_url: String,
    /// Where Checkout sends the citizen who gives up.
    pub cancel_url: String,
}

#[derive(SimpleObject)]
pub struct PaymentAccountPayload {
    pub account: PaymentAccount,
}

#[derive(InputObject)]
pub struct StartPaymentInput {
    pub application_id: ID,
    pub provider: ProviderKind,
    /// The access token from submission, for applicants who are not signed in.
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct StartPaymentPayload {
    pub payment_id: ID,
    /// Where to send the applicant (online providers); null for payment at the counter.
    pub checkout_url: Option<String>,
    pub payment: Payment,
}

#[derive(InputObject)]
pub struct MarkPaymentPaidInput {
    pub payment_id: ID,
}

#[derive(SimpleObject)]
pub struct PaymentPayload {
    pub payment: Payment,
}

#[derive(InputObject)]
pub struct RefundPaymentInput {
    pub payment_id: ID,
    /// At most what is paid and not yet refunded.
    pub amount_cents: i64,
    /// Why (shown to the applicant in the refund mail; 1 to 500 characters).
    pub reason: String,
}

#[derive(SimpleObject)]
pub struct RefundPaymentPayload {
    pub payment: Payment,
    pub refund_id: ID,
    pub provider_refund_id: Option<String>,
}

#[derive(Default)]
pub struct PaymentsMutation;

#[Object]
impl PaymentsMutation {
    /// Sets the tenant's Stripe Connect account, webhook signing secret (stored sealed, never
    /// shown again) and return URLs. Tenant administrators.
    async fn configure_stripe_payments(
        &self,
        ctx: &Context<'_>,
        input: ConfigureStripePaymentsInput,
    ) -> async_graphql::Result<PaymentAccountPayload> {
        let tctx = tenant_ctx(ctx)?;
        let account = account::configure_stripe(
            &app_state(ctx)?.db,
            payments_of(ctx)?,
            &tctx,
            AccountInput {
                account_id: input.account_id,
                webhook_secret: input.webhook_secret.map(SecretString::from),
                success_url: input.success_url,
                cancel_url: input.cancel_url,
            },
        )
        .await?;
        Ok(PaymentAccountPayload {
            account: PaymentAccount(account),
        })
    }

    /// Starts paying an application's fees (the amount is the server's). Online: returns the
    /// checkout URL; the payment turns `PAID` when the provider confirms. At the counter: the
    /// treasury confirms with `markPaymentPaid`. Provider problems are `PAYMENT_FAILED`.
    async fn start_payment(
        &self,
        ctx: &Context<'_>,
        input: StartPaymentInput,
    ) -> async_graphql::Result<StartPaymentPayload> {
        let tctx = tenant_ctx(ctx)?;
        crate::graphql::rate_limit_write(ctx).await?;
        let p = checkout::start(
            deps(ctx)?,
            payments_of(ctx)?,
            &app_state(ctx)?.settings.payments,
            &tctx,
            StartInput {
                application_id: parse_id("input.applicationId", &input.application_id)?,
                provider: input.provider,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(StartPaymentPayload {
            payment_id: ID(p.id.to_string()),
            checkout_url: p.checkout_url.clone(),
            payment: Payment(p),
        })
    }

    /// Confirms a payment at the counter or by invoice. Cashiers and tenant administrators.
    async fn mark_payment_paid(
        &self,
        ctx: &Context<'_>,
        input: MarkPaymentPaidInput,
    ) -> async_graphql::Result<PaymentPayload> {
        let tctx = tenant_ctx(ctx)?;
        let p = counter::mark_paid(
            deps(ctx)?,
            &tctx,
            parse_id("input.paymentId", &input.payment_id)?,
        )
        .await?;
        Ok(PaymentPayload {
            payment: Payment(p),
        })
    }

    /// Gives money back on a paid payment, never more than is left. Cashiers and tenant
    /// administrators.
    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        input: RefundPaymentInput,
    ) -> async_graphql::Result<RefundPaymentPayload> {
        let tctx = tenant_ctx(ctx)?;
        let (p, refund) = refund::refund(
            deps(ctx)?,
            payments_of(ctx)?,
            &tctx,
            RefundInput {
                payment_id: parse_id("input.paymentId", &input.payment_id)?,
                amount_cents: input.amount_cents,
                reason: input.reason,
            },
        )
        .await?;
        Ok(RefundPaymentPayload {
            payment: Payment(p),
            refund_id: ID(refund.id.to_string()),
            provider_refund_id: refund.provider_refund_id,
        })
    }
}
