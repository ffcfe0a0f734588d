//! Argon2id password hashing. Hashing is CPU-heavy, so it runs on the blocking pool.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::{AppError, AppResult};

/// Shortest and longest password we accept (the upper bound keeps hashing cost bounded).
pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 256;

/// Checks a new password against the policy; `field` names the input for the error.
pub fn check_policy(field: &str, password: &str) -> AppResult<()> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(AppError::invalid(
            field,
            format!("must have at least {MIN_LEN} characters"),
        ));
    }
    if len > MAX_LEN {
        return Err(AppError::invalid(
            field,
            format!("must have at most {MAX_LEN} characters"),
        ));
    }
    Ok(())
}

/// Hashes a password into a PHC string (Argon2id, random salt).
pub async fn hash(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal("hashing a password", anyhow::anyhow!("{e}")))
    })
    .await
    .map_err(|e| AppError::internal("hashing a password", e))?
}

/// Verifies a password. With `None` (unknown account) it still spends the time of one
/// verification, so response times do not reveal which accounts exist.
pub async fn verify(password: String, phc: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let target = phc.as_deref().unwrap_or(DUMMY_HASH);
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), target)
            .is_ok();
        ok && phc.is_some()
    })
    .await
    .map_err(|e| AppError::internal("verifying a password", e))
}

/// The Argon2id hash of a random string nobody knows, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$R6o3KNSM4Ty5K9hsK6tq1bxW0pnvSxSIJBzmu4cS6vE";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let h = hash("correct horse battery".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify("correct horse battery".into(), Some(h.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !verify("wrong horse battery".into(), Some(h))
                .await
                .expect("verify")
        );
        assert!(!verify("anything".into(), None).await.expect("verify"));
    }

    #[test]
    fn policy_bounds_length() {
        assert!(check_policy("p", "short").is_err());
        assert!(check_policy("p", &"x".repeat(MAX_LEN + 1)).is_err());
        assert!(check_policy("p", "long enough password").is_ok());
    }
}
