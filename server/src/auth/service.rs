//! Sessions: login, refresh (rotation with reuse detection), logout, and turning a bearer token
//! into a [`Principal`].
//!
//! A refresh token is `<scope>.<id>.<secret>`; `scope` is the tenant ID or `platform`, so the
//! server can open the right tenant transaction before it may even read the token's row.
//! Each refresh marks its token used and issues the next one in the same family. Presenting a
//! used token again means it was stolen or replayed: the whole family is revoked.

use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use uuid::Uuid;

use entity::{platform_admins, refresh_tokens, staff_users, tenants};

use super::password;
use super::tokens::{self, JwtKeys};
use crate::audit;
use crate::context::{Citizen, Principal, RequestCtx, Role};
use crate::db::{
    TenantOrPlatformTx, TenantTx, begin_platform, begin_platform_write, begin_tenant,
    begin_tenant_or_platform_write, begin_tenant_write,
};
use crate::error::{AppError, AppResult};
use crate::ids::{PlatformAdminId, StaffUserId, TenantId};
use crate::state::AppState;
use crate::tenancy::service as tenancy;
use crate::tenancy::types::{Email, TenantSettings};

/// What a successful login or refresh returns.
#[derive(Debug)]
pub struct Session {
    pub access_token: String,
    pub access_expires_at: chrono::DateTime<chrono::Utc>,
    pub refresh_token: String,
    pub principal: Principal,
}

const PLATFORM_SCOPE: &str = "platform";

/// Logs a staff user into the request's tenant, or a platform administrator when no tenant is
/// selected. Wrong email and wrong password answer the same `UNAUTHENTICATED`.
pub async fn login(
    state: &AppState,
    req: &RequestCtx,
    client_ip: Option<std::net::IpAddr>,
    email: &str,
    pw: String,
) -> AppResult<Session> {
    let email = Email::parse("input.email", email).map_err(|_| AppError::Unauthenticated)?;
    let scope = req
        .tenant
        .as_ref()
        .map_or_else(|| PLATFORM_SCOPE.to_owned(), |t| t.id.to_string());
    state
        .login_limiter
        .check(state.db.orm(), client_ip, &format!("{scope}:{email}"))
        .await?;
    if pw.len() > password::MAX_LEN * 4 {
        return Err(AppError::Unauthenticated);
    }
    match &req.tenant {
        Some(tenant) => login_staff(state, tenant, &email, pw).await,
        None => login_platform(state, &email, pw).await,
    }
}

async fn login_staff(
    state: &AppState,
    tenant: &tenants::Model,
    email: &Email,
    pw: String,
) -> AppResult<Session> {
    let tenant_id = TenantId(tenant.id);
    if tenant.status != "active" {
        return Err(AppError::Forbidden("this tenant is suspended"));
    }
    // The slow password check runs between two transactions: on SQLite the write transaction
    // holds the database's write lock, which must not wait for Argon2.
    let txn = begin_tenant(&state.db, tenant_id).await?;
    let user = tenancy::find_staff_by_email(&txn, email.as_str()).await?;
    txn.commit().await?;
    let hash = user
        .as_ref()
        .filter(|u| u.status == "active")
        .and_then(|u| u.password_hash.clone());
    if !password::verify(pw, hash.clone()).await? {
        return Err(AppError::Unauthenticated);
    }
    let txn = begin_tenant_write(&state.db, tenant_id).await?;
    // Still the same active account with the same password?
    let user = tenancy::find_staff_by_email(&txn, email.as_str())
        .await?
        .filter(|u| u.status == "active" && u.password_hash == hash)
        .ok_or(AppError::Unauthenticated)?;
    let session = issue_staff(&txn, &state.keys, state, &user, Uuid::now_v7()).await?;
    audit::record(
        &txn,
        &format!("staff:{}", user.id),
        "session.login",
        format!("staff:{}", user.id),
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(session)
}

async fn login_platform(state: &AppState, email: &Email, pw: String) -> AppResult<Session> {
    let find =
        platform_admins::Entity::find().filter(platform_admins::Column::Email.eq(email.as_str()));
    let txn = begin_platform(&state.db).await?;
    let admin = find.clone().one(&txn).await?;
    txn.commit().await?;
    let hash = admin.as_ref().map(|a| a.password_hash.clone());
    if !password::verify(pw, hash.clone()).await? {
        return Err(AppError::Unauthenticated);
    }
    let txn = begin_platform_write(&state.db).await?;
    let admin = find
        .one(&txn)
        .await?
        .filter(|a| Some(&a.password_hash) == hash.as_ref())
        .ok_or(AppError::Unauthenticated)?;
    let session = issue_platform(&txn, state, admin.id, Uuid::now_v7()).await?;
    txn.commit().await?;
    Ok(session)
}

async fn issue_staff(
    txn: &TenantTx,
    keys: &JwtKeys,
    state: &AppState,
    user: &staff_users::Model,
    family: Uuid,
) -> AppResult<Session> {
    let tenant = txn.tenant();
    let roles = tenancy::roles_of(txn, &[user.id])
        .await?
        .remove(&user.id)
        .unwrap_or_default();
    let (access_token, access_expires_at) = keys.issue(
        "staff",
        user.id.to_string(),
        Some(tenant.to_string()),
        roles.clone(),
        family,
    )?;
    let refresh_token = insert_refresh(txn, state, Some(tenant), "staff", user.id, family).await?;
    Ok(Session {
        access_token,
        access_expires_at,
        refresh_token,
        principal: Principal::Staff {
            user_id: StaffUserId(user.id),
            tenant_id: tenant,
            roles,
        },
    })
}

async fn issue_platform<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    admin: Uuid,
    family: Uuid,
) -> AppResult<Session> {
    let (access_token, access_expires_at) = state.keys.issue(
        "platform",
        admin.to_string(),
        None,
        vec![Role::PlatformAdmin],
        family,
    )?;
    let refresh_token = insert_refresh(conn, state, None, "platform", admin, family).await?;
    Ok(Session {
        access_token,
        access_expires_at,
        refresh_token,
        principal: Principal::PlatformAdmin {
            admin_id: PlatformAdminId(admin),
            break_glass: None,
        },
    })
}

async fn insert_refresh<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    tenant: Option<TenantId>,
    kind: &str,
    subject: Uuid,
    family: Uuid,
) -> AppResult<String> {
    let id = Uuid::now_v7();
    let secret = tokens::random_secret();
    let now = chrono::Utc::now();
    let ttl = chrono::Duration::seconds(
        i64::try_from(state.settings.auth.refresh_token_ttl_secs).unwrap_or(86_400),
    );
    refresh_tokens::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant.map(|t| t.0)),
        subject_kind: Set(kind.to_owned()),
        subject_id: Set(subject),
        family_id: Set(family),
        token_hash: Set(tokens::hash_secret(&secret)),
        expires_at: Set(now + ttl),
        used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
    }
    .insert(conn)
    .await?;
    let scope = tenant.map_or_else(|| PLATFORM_SCOPE.to_owned(), |t| t.to_string());
    Ok(format!("{scope}.{id}.{secret}"))
}

/// A refresh token split into its parts.
struct RefreshParts<'a> {
    tenant: Option<TenantId>,
    id: Uuid,
    secret: &'a str,
}

fn parse_refresh(token: &str) -> AppResult<RefreshParts<'_>> {
    let mut parts = token.splitn(3, '.');
    let (Some(scope), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AppError::Unauthenticated);
    };
    let tenant = if scope == PLATFORM_SCOPE {
        None
    } else {
        Some(TenantId(
            Uuid::parse_str(scope).map_err(|_| AppError::Unauthenticated)?,
        ))
    };
    let id = Uuid::parse_str(id).map_err(|_| AppError::Unauthenticated)?;
    Ok(RefreshParts { tenant, id, secret })
}

/// Checks that a refresh token's tenant matches the request's, when the request names one.
fn check_scope(req: &RequestCtx, parts: &RefreshParts<'_>) -> AppResult<()> {
    match (&req.tenant, parts.tenant) {
        (Some(t), Some(scope)) if t.id != scope.0 => {
            Err(AppError::Forbidden("the token belongs to another tenant"))
        }
        (Some(_), None) => Err(AppError::Forbidden(
            "a platform token cannot be used on a tenant",
        )),
        _ => Ok(()),
    }
}

/// Finds the row of a presented refresh token: parses it, checks its scope against the request,
/// opens the transaction of its tenant (or the platform) and compares the secret's hash.
/// Any mismatch is `UNAUTHENTICATED`. Revocation and expiry are the caller's to judge.
async fn presented(
    state: &AppState,
    req: &RequestCtx,
    token: &str,
) -> AppResult<(TenantOrPlatformTx, refresh_tokens::Model)> {
    let parts = parse_refresh(token)?;
    check_scope(req, &parts)?;
    let txn = begin_tenant_or_platform_write(&state.db, parts.tenant).await?;
    let row = refresh_tokens::Entity::find_by_id(parts.id)
        .one(&txn)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    if row.tenant_id != parts.tenant.map(|t| t.0)
        || !tokens::constant_time_eq(&row.token_hash, &tokens::hash_secret(parts.secret))
    {
        return Err(AppError::Unauthenticated);
    }
    Ok((txn, row))
}

/// Rotates a refresh token. A reused (already rotated) token revokes its whole family.
pub async fn refresh(state: &AppState, req: &RequestCtx, token: &str) -> AppResult<Session> {
    let (txn, row) = presented(state, req, token).await?;
    if row.revoked_at.is_some() || row.expires_at <= chrono::Utc::now() {
        return Err(AppError::Unauthenticated);
    }
    // Claim the token atomically: of two concurrent refreshes with it, exactly one wins.
    let now = chrono::Utc::now();
    let claimed = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
        .filter(refresh_tokens::Column::Id.eq(row.id))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        revoke_family(&txn, row.family_id).await?;
        if let Some(tenant_txn) = txn.tenant_tx() {
            audit::record(
                tenant_txn,
                "system:auth",
                "session.reuse_detected",
                format!("{}:{}", row.subject_kind, row.subject_id),
                serde_json::json!({ "family": row.family_id }),
            )
            .await?;
        }
        txn.commit().await?;
        state.sessions.forget_session(row.family_id);
        tracing::warn!(auth.family = %row.family_id, "refresh token reuse detected; family revoked");
        return Err(AppError::Unauthenticated);
    }
    let session = match (txn.tenant_tx(), row.subject_kind.as_str()) {
        (Some(tenant_txn), "staff") => {
            let user = tenancy::find_staff(tenant_txn, StaffUserId(row.subject_id))
                .await
                .map_err(|_| AppError::Unauthenticated)?;
            if user.status != "active" {
                return Err(AppError::Unauthenticated);
            }
            issue_staff(tenant_txn, &state.keys, state, &user, row.family_id).await?
        }
        (None, "platform") => {
            platform_admins::Entity::find_by_id(row.subject_id)
                .one(&txn)
                .await?
                .ok_or(AppError::Unauthenticated)?;
            issue_platform(&txn, state, row.subject_id, row.family_id).await?
        }
        _ => return Err(AppError::Unauthenticated),
    };
    txn.commit().await?;
    Ok(session)
}

/// Ends the session the refresh token belongs to (its whole family).
pub async fn logout(state: &AppState, req: &RequestCtx, token: &str) -> AppResult<()> {
    let (txn, row) = presented(state, req, token).await?;
    revoke_family(&txn, row.family_id).await?;
    txn.commit().await?;
    // The session's access tokens end with it.
    state.sessions.forget_session(row.family_id);
    Ok(())
}

async fn revoke_family<C: ConnectionTrait>(conn: &C, family: Uuid) -> AppResult<()> {
    refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::RevokedAt,
            Expr::value(chrono::Utc::now()),
        )
        .filter(refresh_tokens::Column::FamilyId.eq(family))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Turns a bearer token into a principal for a request to `tenant` (if any).
/// Our tokens: a staff token of another tenant is `FORBIDDEN`. Otherwise the token must be an
/// ID token of the tenant's configured OIDC provider.
pub async fn authenticate(
    state: &AppState,
    tenant: Option<&Arc<tenants::Model>>,
    token: &str,
) -> AppResult<(Principal, Option<TenantId>)> {
    let issuer = tokens::peek_issuer(token).ok_or(AppError::Unauthenticated)?;
    if issuer == state.keys.issuer() {
        let claims = state.keys.verify(token)?;
        let sub = Uuid::parse_str(&claims.sub).map_err(|_| AppError::Unauthenticated)?;
        // Every token we issue names its session; one without is not ours to honour.
        let session = claims
            .sid
            .as_deref()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or(AppError::Unauthenticated)?;
        return match claims.kind.as_str() {
            "platform" => {
                state.sessions.platform(&state.db, sub, session).await?;
                let break_glass = match tenant {
                    Some(t) => {
                        super::break_glass::open_grant(&state.db, TenantId(t.id), sub).await?
                    }
                    None => None,
                };
                Ok((
                    Principal::PlatformAdmin {
                        admin_id: PlatformAdminId(sub),
                        break_glass,
                    },
                    None,
                ))
            }
            "staff" => {
                let token_tenant = claims
                    .tenant
                    .as_deref()
                    .and_then(|t| Uuid::parse_str(t).ok())
                    .ok_or(AppError::Unauthenticated)?;
                if let Some(t) = tenant
                    && t.id != token_tenant
                {
                    return Err(AppError::Forbidden("the token belongs to another tenant"));
                }
                let tenant_id = TenantId(token_tenant);
                // The roles of now (a revoked role ends at once), not those in the token.
                let roles = state
                    .sessions
                    .staff(&state.db, tenant_id, sub, session)
                    .await?;
                Ok((
                    Principal::Staff {
                        user_id: StaffUserId(sub),
                        tenant_id,
                        roles,
                    },
                    Some(tenant_id),
                ))
            }
            _ => Err(AppError::Unauthenticated),
        };
    }
    // A citizen's ID token: only meaningful for a tenant whose provider issued it.
    let Some(tenant) = tenant else {
        return Err(AppError::Unauthenticated);
    };
    let settings: TenantSettings =
        serde_json::from_value(tenant.settings.clone()).unwrap_or_default();
    let Some(oidc) = settings.oidc.filter(|o| o.issuer == issuer) else {
        return Err(AppError::Unauthenticated);
    };
    let claims = state.oidc.verify(token, &oidc).await?;
    let broker = super::assurance::BrokerClaims::read(&claims.other)?;
    let tenant_id = TenantId(tenant.id);
    let citizen = Citizen {
        tenant_id,
        issuer: claims.iss,
        // bPK2 where the broker sends it: it stays the same across sign-ins, `sub` need not.
        subject: broker.stable_subject.unwrap_or(claims.sub),
        email: claims.email,
        name: claims.name,
        assurance: broker.assurance,
        postbox: broker.postbox,
    };
    Ok((Principal::Citizen(citizen), Some(tenant_id)))
}

/// Creates the configured platform administrator if no account with that email exists.
pub async fn bootstrap_platform_admin(
    db: &DatabaseConnection,
    email: &str,
    display_name: &str,
    pw: String,
) -> AppResult<bool> {
    let email = Email::parse("platform_admin.email", email)?;
    let txn = begin_platform_write(db).await?;
    if platform_admins::Entity::find()
        .filter(platform_admins::Column::Email.eq(email.as_str()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let hash = password::hash(pw).await?;
    platform_admins::ActiveModel {
        id: Set(PlatformAdminId::new().0),
        email: Set(email.to_string()),
        display_name: Set(display_name.to_owned()),
        password_hash: Set(hash),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(true)
}
