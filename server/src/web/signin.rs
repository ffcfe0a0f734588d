//! Citizen sign-in with the municipality's identity provider (OpenID Connect, authorization
//! code with PKCE; see [`crate::auth::oidc_login`]): `/login` sends the browser there, the
//! provider sends it back to `/login/callback`, and the ID token it gives is kept in an
//! HttpOnly cookie on the tenant's pages. Each page then runs its GraphQL with that token as
//! any API client would, so what a signed-in citizen may see and do is the API's decision.
//! Signing out forgets the token here (the provider's own session is the provider's).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::page::{CITIZEN_COOKIE, Cx, Deps, ErrorKind};
use crate::auth::oidc_login::Pending;
use crate::graphql::CheckedSchema;
use crate::state::AppState;
use crate::tenancy::types::OidcSettings;

/// What a sign-in in progress keeps in the browser, on the sign-in path only.
const PENDING_COOKIE: &str = "ap_oidc";

#[derive(Serialize, Deserialize)]
struct PendingSignIn {
    #[serde(flatten)]
    pending: Pending,
    /// Where to go afterwards (a path of this site).
    next: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `next` if it is a path of this tenant's pages, else "My applications": never a foreign
/// address (no open redirect).
fn local_next(cx: &Cx, next: Option<&str>) -> String {
    let home = cx.link("/");
    match next {
        Some(n)
            if n.len() <= 512
                && n.starts_with(&home)
                && !n.starts_with("//")
                && !n.contains(['\\', '\r', '\n', '\0'])
                && !n.starts_with(&cx.link("/login")) =>
        {
            n.to_owned()
        }
        _ => cx.link("/my"),
    }
}

/// The tenant's provider as the API publishes it; `None` when citizens cannot sign in here.
async fn provider(gql: &super::gql::Gql<'_>) -> Result<Option<OidcSettings>, super::gql::ApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Login {
        citizen_login_issuer: Option<String>,
        citizen_login_client_id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Data {
        tenant: Login,
    }
    let data: Data = gql
        .run(
            "{ tenant { citizenLoginIssuer citizenLoginClientId } }",
            serde_json::json!({}),
        )
        .await?;
    Ok(
        match (
            data.tenant.citizen_login_issuer,
            data.tenant.citizen_login_client_id,
        ) {
            (Some(issuer), Some(client_id)) => Some(OidcSettings {
                issuer,
                client_id,
                jwks_url: String::new(),
            }),
            _ => None,
        },
    )
}

/// Our callback address, as registered at the provider.
fn callback_url(req: &HttpRequest, cx: &Cx) -> String {
    format!("{}{}", crate::http::origin(req), cx.link("/login/callback"))
}

/// `GET /t/{tenant}/login?next=…`: to the provider, with a fresh state, nonce and PKCE
/// challenge kept in a short-lived cookie of the sign-in path.
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (mut cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let settings = match provider(&gql).await {
        Ok(Some(s)) => s,
        Ok(None) => return cx.error_page(StatusCode::NOT_FOUND, ErrorKind::NotFound, None),
        Err(e) => return cx.error(&e),
    };
    let started = match state
        .oidc_login
        .start(&settings, &callback_url(&req, &cx))
        .await
    {
        Ok(s) => s,
        Err(_) => {
            return cx.error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::SignInUnavailable,
                None,
            );
        }
    };
    let keep = PendingSignIn {
        pending: started.pending,
        next: local_next(&cx, query.next.as_deref()),
    };
    let Ok(json) = serde_json::to_vec(&keep) else {
        return cx.error_page(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal, None);
    };
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    cx.set_cookie(PENDING_COOKIE, value, cx.link("/login"));
    cx.redirect(&started.authorize_url)
}

fn pending_of(req: &HttpRequest) -> Option<PendingSignIn> {
    let cookie = req.cookie(PENDING_COOKIE)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cookie.value())
        .ok()?;
    serde_json::from_slice(&json).ok()
}

/// `GET /t/{tenant}/login/callback?code=…&state=…`: back from the provider. The state must be
/// the one this browser was sent with; the code is exchanged and the ID token checked (nonce
/// included), and the API must accept it too, before the citizen counts as signed in.
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (mut cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    // One attempt per start: whatever happens now, the pending sign-in is used up.
    cx.clear_cookie(PENDING_COOKIE, cx.link("/login"));
    let failed = |cx: &Cx| cx.error_page(StatusCode::BAD_REQUEST, ErrorKind::SignInFailed, None);
    let (Some(pending), Some(code), Some(returned)) = (
        pending_of(&req),
        query.code.as_deref(),
        query.state.as_deref(),
    ) else {
        return failed(&cx);
    };
    if !crate::auth::tokens::constant_time_eq(&pending.pending.state, returned) {
        return failed(&cx);
    }
    let settings = match provider(&gql).await {
        Ok(Some(s)) => s,
        Ok(None) => return cx.error_page(StatusCode::NOT_FOUND, ErrorKind::NotFound, None),
        Err(e) => return cx.error(&e),
    };
    let id_token = match state
        .oidc_login
        .finish(&settings, &callback_url(&req, &cx), code, &pending.pending)
        .await
    {
        Ok((token, _expires)) => token,
        Err(crate::error::AppError::Unauthenticated) => return failed(&cx),
        Err(_) => {
            return cx.error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::SignInUnavailable,
                None,
            );
        }
    };
    // The API verifies the token on every request by the tenant's configured key set: if it
    // would not, signing in here would only lead to refusals.
    let bearer = format!("Bearer {id_token}");
    match crate::http::resolve(
        &state,
        Some(&cx.slug),
        Some(&bearer),
        uuid::Uuid::new_v4().to_string(),
    )
    .await
    {
        Ok(ctx) if matches!(ctx.principal, crate::context::Principal::Citizen(_)) => {}
        _ => return failed(&cx),
    }
    cx.set_cookie(CITIZEN_COOKIE, id_token, cx.link("/"));
    cx.redirect(&pending.next)
}

/// `POST /t/{tenant}/logout`: forgets the sign-in here.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let Some(mut cx) = Cx::of(&req, &state) else {
        return HttpResponse::NotFound().finish();
    };
    if let Err(page) = super::apply::posted(&req, &cx, payload).await {
        return page;
    }
    cx.clear_cookie(CITIZEN_COOKIE, cx.link("/"));
    cx.redirect(&cx.link("/"))
}
