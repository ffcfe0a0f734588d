//! What every page shares: the site (tenant and the path prefix its pages live under), the
//! language, the CSRF token, the response headers (Content-Security-Policy without inline
//! script, no caching of personal pages, no referrer), cookies and error pages.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::gql::{ApiError, Gql};
use super::i18n::{Lang, Texts};
use crate::graphql::CheckedSchema;
use crate::state::AppState;

/// The policy every page is sent with: scripts and styles only from our own files, nothing
/// framed, forms only to us (and on to Stripe Checkout, where paying online redirects). Logos
/// may come from the municipality's own web server.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' https: data:; font-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self' https://checkout.stripe.com";

/// The CSRF cookie; forms echo it in `_csrf`.
const CSRF_COOKIE: &str = "ap_csrf";

/// A signed-in citizen's ID token, on the tenant's pages: what each page's GraphQL is run with,
/// as any API client's requests carry it (see `super::signin`).
pub const CITIZEN_COOKIE: &str = "ap_citizen";

/// The municipality as the header shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantHead {
    pub name: String,
    pub branding: Branding,
    /// Set when citizens can sign in here (the header then offers it).
    #[serde(default)]
    pub citizen_login_issuer: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Branding {
    pub primary_color: Option<String>,
    pub logo_url: Option<String>,
}

/// The GraphQL selection of [`TenantHead`], for every page's query.
pub const TENANT_HEAD: &str =
    "tenant { name branding { primaryColor logoUrl } citizenLoginIssuer }";

/// One page request: who, where, in which language.
pub struct Cx {
    pub lang: Lang,
    pub t: &'static Texts,
    /// Where this tenant's pages live: `/t/<slug>`, or empty on the tenant's own host.
    pub base: String,
    pub slug: String,
    /// The request's path, for the language switch.
    pub path: String,
    pub csrf: String,
    /// The signed-in citizen's name as their provider gives it (empty when it gives none).
    pub citizen: Option<String>,
    /// The sign-in ended (the ID token expired or was refused) while on a page that is read:
    /// where to sign in again and come back.
    sign_in_again: Option<String>,
    /// Set on the response: a new CSRF cookie, a language chosen by `?lang=`.
    cookies: Vec<Cookie<'static>>,
    secure: bool,
}

impl Cx {
    /// The page context of a tenant page. The tenant is the path's `{tenant}`, else the host's
    /// subdomain under the base domain.
    pub fn of(req: &HttpRequest, state: &AppState) -> Option<Self> {
        let (slug, base) = match req.match_info().get("tenant") {
            Some(slug) => (slug.to_owned(), format!("/t/{slug}")),
            None => (
                crate::http::tenant_hint(req, state.settings.base_domain.as_deref())?,
                String::new(),
            ),
        };
        Some(Self::with_site(req, slug, base))
    }

    /// A page outside any tenant (the platform's index).
    pub fn platform(req: &HttpRequest) -> Self {
        Self::with_site(req, String::new(), String::new())
    }

    fn with_site(req: &HttpRequest, slug: String, base: String) -> Self {
        let (lang, chosen) = Lang::of(req);
        let secure = crate::http::origin(req).starts_with("https://");
        let mut cookies = Vec::new();
        if chosen {
            cookies.push(cookie("lang", lang.code().to_owned(), "/", secure, false));
        }
        let csrf = match req.cookie(CSRF_COOKIE) {
            Some(c) if is_token(c.value()) => c.value().to_owned(),
            _ => {
                let token = new_token();
                cookies.push(cookie(CSRF_COOKIE, token.clone(), "/", secure, true));
                token
            }
        };
        Self {
            lang,
            t: lang.texts(),
            base,
            slug,
            path: req.path().to_owned(),
            csrf,
            citizen: None,
            sign_in_again: None,
            cookies,
            secure,
        }
    }

    /// The sign-in link that comes back to this page.
    pub fn sign_in_link(&self) -> String {
        format!(
            "{}?next={}",
            self.link("/login"),
            percent_encoding::utf8_percent_encode(&self.path, percent_encoding::NON_ALPHANUMERIC)
        )
    }

    /// A cookie for this site's responses (HttpOnly, SameSite=Lax, Secure behind TLS).
    pub fn set_cookie(&mut self, name: &'static str, value: String, path: String) {
        self.cookies
            .push(cookie(name, value, &path, self.secure, true));
    }

    /// Removes a cookie set with [`Self::set_cookie`].
    pub fn clear_cookie(&mut self, name: &'static str, path: String) {
        let mut c = cookie(name, String::new(), &path, self.secure, true);
        c.make_removal();
        self.cookies.push(c);
    }

    /// A link within this tenant's pages.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The current page in the other language.
    pub fn switch_link(&self) -> String {
        format!("{}?lang={}", self.path, self.lang.other().code())
    }

    /// The page's HTML with the security headers; personal pages are never cached.
    pub fn html(&self, status: StatusCode, page: &impl Template) -> HttpResponse {
        match page.render() {
            Ok(body) => {
                let mut answer = HttpResponse::build(status);
                self.headers(&mut answer);
                answer.content_type("text/html; charset=utf-8").body(body)
            }
            Err(e) => {
                tracing::error!(error = %e, "a page template failed to render");
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body("internal error")
            }
        }
    }

    /// `303 See Other` to a path of this site (after every POST: reloading never posts twice).
    pub fn redirect(&self, location: &str) -> HttpResponse {
        let mut answer = HttpResponse::SeeOther();
        self.headers(&mut answer);
        answer.insert_header((header::LOCATION, location)).finish()
    }

    fn headers(&self, answer: &mut actix_web::HttpResponseBuilder) {
        answer
            .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::VARY, "Cookie, Accept-Language"));
        for c in &self.cookies {
            answer.cookie(c.clone());
        }
    }

    /// An error page for an API error, with the status HTTP would give it.
    pub fn error(&self, err: &ApiError) -> HttpResponse {
        // What the citizen had signed in for is theirs again after signing in once more.
        if err.is("UNAUTHENTICATED")
            && let Some(again) = &self.sign_in_again
        {
            return self.redirect(again);
        }
        let (status, kind) = match err.code.as_str() {
            "NOT_FOUND" => (StatusCode::NOT_FOUND, ErrorKind::NotFound),
            "FORBIDDEN" | "UNAUTHENTICATED" => (StatusCode::FORBIDDEN, ErrorKind::Forbidden),
            "RATE_LIMITED" => (StatusCode::TOO_MANY_REQUESTS, ErrorKind::RateLimited),
            "INSUFFICIENT_ASSURANCE" => (StatusCode::FORBIDDEN, ErrorKind::InsufficientAssurance),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal),
        };
        self.error_page(status, kind, None)
    }

    pub fn error_page(
        &self,
        status: StatusCode,
        kind: ErrorKind,
        tenant: Option<&TenantHead>,
    ) -> HttpResponse {
        let t = self.t;
        let (title, text) = match kind {
            ErrorKind::NotFound => (t.not_found_title, t.not_found_text),
            ErrorKind::Forbidden => (t.forbidden_title, t.forbidden_text),
            ErrorKind::Expired => (t.expired_title, t.expired_text),
            ErrorKind::RateLimited => (t.rate_limited_title, t.rate_limited_text),
            ErrorKind::InsufficientAssurance => (
                t.insufficient_assurance_title,
                t.insufficient_assurance_text,
            ),
            ErrorKind::Internal => (t.internal_title, t.internal_text),
            ErrorKind::SignInFailed => (t.sign_in_failed_title, t.sign_in_failed_text),
            ErrorKind::SignInUnavailable => {
                (t.sign_in_unavailable_title, t.sign_in_unavailable_text)
            }
        };
        self.html(
            status,
            &ErrorPage {
                cx: self,
                tenant,
                title,
                text,
            },
        )
    }

    /// Checks a posted form's CSRF token against the cookie, and that the browser says the
    /// form came from this site.
    pub fn csrf_ok(&self, req: &HttpRequest, posted: Option<&str>) -> bool {
        let from_cookie = req.cookie(CSRF_COOKIE);
        let same_token = match (from_cookie, posted) {
            (Some(c), Some(p)) if is_token(c.value()) => {
                // Comparing digests: the time taken says nothing about the token.
                Sha256::digest(c.value().as_bytes()) == Sha256::digest(p.as_bytes())
            }
            _ => false,
        };
        let headers = req.headers();
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let cross_site = fetch_site.is_some_and(|v| v == "cross-site");
        // Host and port only: behind a proxy that ends TLS the scheme seen here may differ.
        let host_of = |url: &str| url.split_once("://").map(|(_, h)| h.to_owned());
        let foreign_origin = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            None => false,
            // Our pages are sent with `Referrer-Policy: no-referrer`, under which browsers post
            // even our own forms with `Origin: null`: then Sec-Fetch-Site must say same-origin.
            Some("null") => fetch_site.is_some_and(|v| v != "same-origin"),
            Some(o) => host_of(o) != host_of(&crate::http::origin(req)),
        };
        same_token && !cross_site && !foreign_origin
    }
}

#[derive(Clone, Copy, Debug)]
pub enum ErrorKind {
    NotFound,
    Forbidden,
    Expired,
    RateLimited,
    /// The service requires a higher eID assurance level than the citizen's sign-in has.
    InsufficientAssurance,
    Internal,
    /// The citizen's sign-in came back unusable (cancelled, stale, refused).
    SignInFailed,
    /// The identity provider cannot be reached.
    SignInUnavailable,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    title: &'static str,
    text: &'static str,
}

fn cookie(
    name: &'static str,
    value: String,
    path: &str,
    secure: bool,
    http_only: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path.to_owned())
        .http_only(http_only)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish()
}

/// 32 random bytes, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn is_token(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The shared state every handler takes.
pub struct Deps<'a> {
    pub state: &'a AppState,
    pub schema: &'a CheckedSchema,
}

impl<'a> Deps<'a> {
    pub fn new(state: &'a web::Data<AppState>, schema: &'a web::Data<CheckedSchema>) -> Self {
        Self {
            state: state.get_ref(),
            schema: schema.get_ref(),
        }
    }

    /// What every tenant page starts with: its context and the caller's GraphQL; else the page
    /// that says why not (no tenant here, an unknown tenant).
    pub async fn open(&self, req: &'a HttpRequest) -> Result<(Cx, Gql<'a>), HttpResponse> {
        let Some(mut cx) = Cx::of(req, self.state) else {
            return Err(HttpResponse::NotFound().finish());
        };
        match self.gql(req, &mut cx).await {
            Ok(gql) => Ok((cx, gql)),
            Err(e) => Err(cx.error(&e)),
        }
    }

    /// Resolves the page's caller (tenant; the signed-in citizen, else anonymous) and opens
    /// its GraphQL. An ID token the API no longer accepts (expired, its provider changed) ends
    /// the sign-in: the cookie goes, the page goes on anonymously, and what needs the sign-in
    /// sends the citizen to sign in again.
    pub async fn gql(&self, req: &'a HttpRequest, cx: &mut Cx) -> Result<Gql<'a>, ApiError> {
        let slug = cx.slug.clone();
        let tenant = (!slug.is_empty()).then_some(slug.as_str());
        let id_token = req
            .cookie(CITIZEN_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|t| !t.is_empty() && tenant.is_some());
        if let Some(token) = id_token {
            let bearer = format!("Bearer {token}");
            match crate::http::resolve(self.state, tenant, Some(&bearer), request_id()).await {
                Ok(ctx) => {
                    if let crate::context::Principal::Citizen(c) = &ctx.principal {
                        cx.citizen = Some(c.name.clone().unwrap_or_default());
                    }
                    return Ok(Gql::new(self.state, self.schema, req, ctx));
                }
                Err(
                    crate::error::AppError::Unauthenticated | crate::error::AppError::Forbidden(_),
                ) => {
                    cx.clear_cookie(CITIZEN_COOKIE, cx.link("/"));
                    if req.method() == actix_web::http::Method::GET {
                        cx.sign_in_again = Some(cx.sign_in_link());
                    }
                }
                Err(e) => return Err(api_error(&e)),
            }
        }
        let ctx = crate::http::resolve(self.state, tenant, None, request_id())
            .await
            .map_err(|e| api_error(&e))?;
        Ok(Gql::new(self.state, self.schema, req, ctx))
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn api_error(e: &crate::error::AppError) -> ApiError {
    ApiError {
        code: e.code().to_owned(),
        message: e.to_string(),
        fields: Default::default(),
        limit_bytes: None,
    }
}

/// The query of an access link (`…?token=`).
#[derive(Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

/// Follows an access link (the resume, status and booking links): the token is checked by
/// `check` (a query with `$id` and `$t`) before anything is kept, then kept in `cookie` on
/// `path` only, and the browser continues there without it in the address. A wrong token is
/// "not found".
pub async fn follow_access_link(
    cx: &mut Cx,
    gql: &Gql<'_>,
    check: &str,
    id: &str,
    token: Option<String>,
    (cookie, path): (&'static str, String),
) -> HttpResponse {
    let token = token.unwrap_or_default();
    let answer: Result<serde_json::Value, _> = gql
        .run(check, serde_json::json!({ "id": id, "t": token }))
        .await;
    match answer {
        Ok(_) => {
            cx.set_cookie(cookie, token, path.clone());
            cx.redirect(&path)
        }
        Err(e)
            if matches!(
                e.code.as_str(),
                "NOT_FOUND" | "UNAUTHENTICATED" | "VALIDATION_FAILED"
            ) =>
        {
            cx.error_page(StatusCode::NOT_FOUND, ErrorKind::NotFound, None)
        }
        Err(e) => cx.error(&e),
    }
}

/// A posted form: its fields in order (repeated names kept), at most 64 KiB.
pub struct Posted(pub Vec<(String, String)>);

pub const MAX_FORM_BYTES: usize = 64 * 1024;

impl Posted {
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .map(Self)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
