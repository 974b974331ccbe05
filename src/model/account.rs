//! Accounts and their API keys, as every part of the service reads them (the store writes
//! them; `auth`, the pages and the CLI read these values, never its rows).

use super::Plan;

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login name, lower case.
    pub username: String,
    /// Email, as given.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Plan.
    pub plan: Plan,
    /// Whether the account may log in.
    pub is_active: bool,
    /// Creation time.
    pub created_at: String,
}

/// An API key row (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Row id.
    pub id: i64,
    /// Owner's user id.
    pub user_id: i64,
    /// Non-secret prefix, `ak_` and 8 characters.
    pub prefix: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// False once revoked.
    pub is_active: bool,
    /// Creation time.
    pub created_at: String,
    /// Last successful authentication with it.
    pub last_used_at: Option<String>,
}

impl ApiKey {
    /// Whether the key was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }
}
