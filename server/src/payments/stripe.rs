//! Stripe: a Checkout Session per payment on the tenant's connected account (Stripe Connect:
//! the platform's secret key plus the `Stripe-Account` header), refunds on its PaymentIntent,
//! and signed webhooks read into [`WebhookEvent`]s.
//!
//! Webhook bodies are read with small structs of the few fields we act on rather than
//! async-stripe's full `Event` type: a new event type or field from Stripe must never make a
//! delivery fail (Stripe would retry it for days), and events about things we did not create
//! (the municipality may use its account for more than Amtsplatz) are acknowledged and ignored.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::signature;
use super::{
    Account, Charge, Outcome, PaymentProvider, PaymentRef, ProviderError, ProviderKind, Started,
    WebhookError, WebhookEvent,
};
use crate::ids::PaymentId;
use crate::settings::PaymentSettings;

/// Metadata key carrying our payment id on sessions and PaymentIntents.
pub const PAYMENT_ID_KEY: &str = "amtsplatz_payment_id";

pub struct Stripe {
    client: ::stripe::Client,
    timeout: Duration,
    tolerance_secs: i64,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Stripe").finish_non_exhaustive()
    }
}

impl Stripe {
    /// `None` when no platform key is configured (online payment is then off).
    pub fn from_settings(settings: &PaymentSettings) -> anyhow::Result<Option<Self>> {
        let Some(key) = &settings.stripe_secret_key else {
            return Ok(None);
        };
        // Settings validation checked the URL; `from_url` would panic on a bad one.
        reqwest::Url::parse(&settings.stripe_api_base)?;
        Ok(Some(Self {
            client: ::stripe::Client::from_url(
                settings.stripe_api_base.as_str(),
                key.expose_secret(),
            ),
            timeout: Duration::from_secs(settings.provider_timeout_secs),
            tolerance_secs: i64::try_from(settings.webhook_tolerance_secs).unwrap_or(300),
        }))
    }

    /// A client acting on the tenant's connected account, sending `idempotency_key`.
    fn client_for(
        &self,
        account: Option<&Account>,
        idempotency_key: String,
    ) -> Result<::stripe::Client, ProviderError> {
        let account = account.ok_or(ProviderError::NotConfigured)?;
        let id = ::stripe::AccountId::from_str(&account.account_id)
            .map_err(|_| ProviderError::NotConfigured)?;
        Ok(self
            .client
            .clone()
            .with_stripe_account(id)
            .with_strategy(::stripe::RequestStrategy::Idempotent(idempotency_key)))
    }

    async fn call<T>(
        &self,
        what: &str,
        request: impl std::future::Future<Output = Result<T, ::stripe::StripeError>>,
    ) -> Result<T, ProviderError> {
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(ProviderError::Unavailable(format!("{what}: timed out"))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(what, e)),
        }
    }
}

fn map_error(what: &str, e: ::stripe::StripeError) -> ProviderError {
    match e {
        // Stripe's own message for a request it refused (a card declined, a refund over the
        // charge); authentication errors are ours to fix, not the caller's.
        ::stripe::StripeError::Stripe(r)
            if (400..500).contains(&r.http_status)
                && r.http_status != 401
                && r.http_status != 403 =>
        {
            tracing::warn!(what, status = r.http_status, "Stripe refused a request");
            ProviderError::Refused(
                r.message
                    .unwrap_or_else(|| "the payment provider refused the request".into()),
            )
        }
        other => {
            tracing::error!(what, error = %other, "Stripe request failed");
            ProviderError::Unavailable(other.to_string())
        }
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Stripe {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Stripe
    }

    fn confirmed_by_staff(&self) -> bool {
        false
    }

    async fn start(
        &self,
        account: Option<&Account>,
        charge: &Charge<'_>,
    ) -> Result<Started, ProviderError> {
        let client = self.client_for(account, format!("checkout-{}", charge.payment_id))?;
        let account = account.ok_or(ProviderError::NotConfigured)?;
        let currency =
            ::stripe::Currency::from_str(&charge.currency.to_lowercase()).map_err(|_| {
                ProviderError::Refused(format!("currency {} is not supported", charge.currency))
            })?;
        let metadata: HashMap<String, String> = [
            (PAYMENT_ID_KEY.to_owned(), charge.payment_id.to_string()),
            (
                "amtsplatz_application_id".to_owned(),
                charge.application_id.to_string(),
            ),
            ("amtsplatz_tenant".to_owned(), charge.tenant_slug.to_owned()),
        ]
        .into();
        let line_items = charge
            .lines
            .iter()
            .filter(|l| l.amount_cents > 0)
            .map(|l| ::stripe::CreateCheckoutSessionLineItems {
                quantity: Some(1),
                price_data: Some(::stripe::CreateCheckoutSessionLineItemsPriceData {
                    currency,
                    unit_amount: Some(l.amount_cents),
                    product_data: Some(
                        ::stripe::CreateCheckoutSessionLineItemsPriceDataProductData {
                            name: format!("{} – {}", charge.title, l.label),
                            ..Default::default()
                        },
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let success = fill(&account.success_url, charge);
        let cancel = fill(&account.cancel_url, charge);
        let mut params = ::stripe::CreateCheckoutSession::new();
        params.mode = Some(::stripe::CheckoutSessionMode::Payment);
        params.line_items = Some(line_items);
        params.success_url = Some(&success);
        params.cancel_url = Some(&cancel);
        params.client_reference_id = Some(charge.reference);
        params.customer_email = charge.customer_email;
        params.expires_at = Some(charge.expires_at.timestamp());
        params.metadata = Some(metadata.clone());
        params.payment_intent_data = Some(::stripe::CreateCheckoutSessionPaymentIntentData {
            description: Some(format!("{} {}", charge.reference, charge.title)),
            metadata: Some(metadata),
            ..Default::default()
        });
        let session = self
            .call(
                "create checkout session",
                ::stripe::CheckoutSession::create(&client, params),
            )
            .await?;
        let url = session
            .url
            .ok_or_else(|| ProviderError::Unavailable("checkout session without url".into()))?;
        let expires_at =
            DateTime::from_timestamp(session.expires_at, 0).unwrap_or(charge.expires_at);
        Ok(Started::Redirect {
            session_id: session.id.to_string(),
            url,
            expires_at,
        })
    }

    async fn refund(
        &self,
        account: Option<&Account>,
        payment: &entity::payments::Model,
        refund_id: Uuid,
        amount_cents: i64,
    ) -> Result<Option<String>, ProviderError> {
        let client = self.client_for(account, format!("refund-{refund_id}"))?;
        let intent = payment
            .provider_payment_id
            .as_deref()
            .and_then(|id| ::stripe::PaymentIntentId::from_str(id).ok())
            .ok_or_else(|| {
                ProviderError::Refused("the payment has no Stripe payment to refund".into())
            })?;
        let mut params = ::stripe::CreateRefund::new();
        params.payment_intent = Some(intent);
        params.amount = Some(amount_cents);
        params.metadata = Some(
            [
                (PAYMENT_ID_KEY.to_owned(), payment.id.to_string()),
                ("amtsplatz_refund_id".to_owned(), refund_id.to_string()),
            ]
            .into(),
        );
        let refund = self
            .call("create refund", ::stripe::Refund::create(&client, params))
            .await?;
        Ok(Some(refund.id.to_string()))
    }

    fn read_webhook(
        &self,
        account: &Account,
        signature_header: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        let secret = account
            .webhook_secret
            .as_ref()
            .ok_or(WebhookError::Signature(signature::SignatureError::Mismatch))?;
        signature::verify(
            signature_header.ok_or(signature::SignatureError::Malformed)?,
            body,
            secret.expose_secret().as_bytes(),
            now.timestamp(),
            self.tolerance_secs,
        )?;
        read_event(account, body)
    }
}

/// `{APPLICATION_ID}`, `{REFERENCE}` and `{PAYMENT_ID}` in a tenant's return URL; Stripe's own
/// `{CHECKOUT_SESSION_ID}` is left for Stripe to fill.
fn fill(template: &str, charge: &Charge<'_>) -> String {
    template
        .replace("{APPLICATION_ID}", &charge.application_id.to_string())
        .replace("{REFERENCE}", charge.reference)
        .replace("{PAYMENT_ID}", &charge.payment_id.to_string())
}

#[derive(Deserialize)]
struct EventJson {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    /// The connected account the event happened on.
    #[serde(default)]
    account: Option<String>,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: ObjectJson,
}

#[derive(Deserialize)]
struct ObjectJson {
    id: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    payment_status: Option<String>,
    /// An id, or the expanded object.
    #[serde(default)]
    payment_intent: Option<serde_json::Value>,
    #[serde(default)]
    amount_refunded: Option<i64>,
}

fn id_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("id").and_then(|i| i.as_str()).map(str::to_owned),
        _ => None,
    }
}

/// Reads a verified event body.
pub fn read_event(account: &Account, body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let event: EventJson = serde_json::from_slice(body).map_err(|_| WebhookError::Shape)?;
    let object = &event.data.object;
    let ours = object
        .metadata
        .get(PAYMENT_ID_KEY)
        .and_then(|id| Uuid::parse_str(id).ok())
        .map(|id| PaymentRef::Ours {
            id: PaymentId(id),
            session: object.id.starts_with("cs_").then(|| object.id.clone()),
        });
    let intent = object.payment_intent.as_ref().and_then(id_of);
    let effect = match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded"
            if matches!(
                object.payment_status.as_deref(),
                Some("paid" | "no_payment_required")
            ) =>
        {
            ours.map(|r| {
                (
                    r,
                    Outcome::Paid {
                        provider_payment_id: intent,
                    },
                )
            })
        }
        "checkout.session.async_payment_failed" => ours.map(|r| (r, Outcome::Failed)),
        "checkout.session.expired" => ours.map(|r| (r, Outcome::Expired)),
        "charge.refunded" => intent.zip(object.amount_refunded).map(|(pi, cents)| {
            (
                PaymentRef::ProviderPayment(pi),
                Outcome::RefundedTotal { cents },
            )
        }),
        _ => None,
    };
    // An event of another account signed with this tenant's secret: a misconfiguration, never
    // an effect on this tenant's payments.
    let effect = match &event.account {
        Some(acct) if *acct != account.account_id => {
            tracing::warn!(event = %event.id, "webhook event of another Stripe account ignored");
            None
        }
        _ => effect,
    };
    Ok(WebhookEvent {
        id: event.id,
        kind: event.kind,
        effect,
    })
}

/// Whether `s` looks like a Stripe connected account id.
pub fn valid_account_id(s: &str) -> bool {
    ::stripe::AccountId::from_str(s).is_ok()
        && s.len() <= 64
        && s[5..].chars().all(|c| c.is_ascii_alphanumeric())
}

/// Whether `s` looks like a webhook signing secret.
pub fn valid_webhook_secret(s: &SecretString) -> bool {
    let s = s.expose_secret();
    s.starts_with("whsec_") && (16..=256).contains(&s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn account() -> Account {
        Account {
            account_id: "acct_1Muster".into(),
            webhook_secret: None,
            success_url: "https://a.example/".into(),
            cancel_url: "https://a.example/".into(),
        }
    }

    fn event(kind: &str, object: serde_json::Value) -> Vec<u8> {
        serde_json::json!({ "id": "evt_1", "type": kind, "account": "acct_1Muster", "data": { "object": object } })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn events_map_to_outcomes_only_for_our_payments() {
        let id = Uuid::new_v4();
        let ours = serde_json::json!({ "id": "cs_1", "payment_status": "paid", "payment_intent": "pi_1", "metadata": { PAYMENT_ID_KEY: id.to_string() } });
        let e = read_event(
            &account(),
            &event("checkout.session.completed", ours.clone()),
        )
        .expect("reads");
        assert_eq!(
            e.effect,
            Some((
                PaymentRef::Ours {
                    id: PaymentId(id),
                    session: Some("cs_1".into())
                },
                Outcome::Paid {
                    provider_payment_id: Some("pi_1".into())
                }
            ))
        );
        // Not paid yet (a bank transfer on its way): nothing to do.
        let mut unpaid = ours.clone();
        unpaid["payment_status"] = "unpaid".into();
        assert_eq!(
            read_event(&account(), &event("checkout.session.completed", unpaid))
                .expect("reads")
                .effect,
            None
        );
        // Someone else's session on the same account, an unknown type, another account.
        let mut foreign = ours.clone();
        foreign["metadata"] = serde_json::json!({});
        assert_eq!(
            read_event(&account(), &event("checkout.session.expired", foreign))
                .expect("reads")
                .effect,
            None
        );
        assert_eq!(
            read_event(&account(), &event("invoice.paid", ours.clone()))
                .expect("reads")
                .effect,
            None
        );
        let mut other = account();
        other.account_id = "acct_other".into();
        assert_eq!(
            read_event(&other, &event("checkout.session.completed", ours))
                .expect("reads")
                .effect,
            None
        );
        // Expanded PaymentIntent objects are read too.
        let refunded = serde_json::json!({ "id": "ch_1", "amount_refunded": 500, "payment_intent": { "id": "pi_1" } });
        assert_eq!(
            read_event(&account(), &event("charge.refunded", refunded))
                .expect("reads")
                .effect,
            Some((
                PaymentRef::ProviderPayment("pi_1".into()),
                Outcome::RefundedTotal { cents: 500 }
            ))
        );
    }

    proptest! {
        /// Whatever bytes pass the signature check, reading them never panics.
        #[test]
        fn any_body_reads_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read_event(&account(), &body);
        }

        /// Well-formed events with arbitrary field values never panic either.
        #[test]
        fn any_event_fields_read(kind in "[a-z._]{0,40}", id in ".{0,40}", status in ".{0,12}", refunded in any::<i64>(), meta in ".{0,40}") {
            let object = serde_json::json!({ "id": id, "payment_status": status, "amount_refunded": refunded, "payment_intent": id, "metadata": { PAYMENT_ID_KEY: meta } });
            let _ = read_event(&account(), &event(&kind, object));
        }
    }
}
