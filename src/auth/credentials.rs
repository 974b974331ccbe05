//! The credentials a request carries: an API key (Bearer), or a login with a password (or an
//! API key in its place), from the `Authorization` header or the request's parameters. Parsed
//! tolerantly, as routers send them; never printed with their secrets.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use crate::model::AuthMethod;

/// The credentials a request carries, by the first method present.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer <key>`.
    Bearer(String),
    /// A login (username or email) and a password or API key, from Basic or the parameters.
    Password {
        /// Where they came from.
        method: AuthMethod,
        /// Username or email.
        login: String,
        /// Account password or API key.
        password: String,
    },
    /// An authorization that is present but unusable (bad base64, no colon, a username without
    /// a password...). Always `badauth`.
    Malformed,
}

impl std::fmt::Debug for Credentials {
    /// Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Password { method, login, .. } => {
                write!(
                    f,
                    "Password {{ method: {method}, login: {login:?}, password: <redacted> }}"
                )
            }
            Self::Malformed => f.write_str("Malformed"),
        }
    }
}

/// Base64 as browsers and routers send it: standard alphabet, padding optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Credentials from the `Authorization` header, if it holds a scheme taken here: Basic, and
/// Bearer where `bearer` allows it (an endpoint that does not take Bearer ignores it, as
/// any other scheme).
pub fn header_credentials(authorization: Option<&[u8]>, bearer: bool) -> Option<Credentials> {
    let header = std::str::from_utf8(authorization?).ok()?.trim();
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if bearer && scheme.eq_ignore_ascii_case("bearer") {
        return Some(if value.is_empty() {
            Credentials::Malformed
        } else {
            Credentials::Bearer(value.to_string())
        });
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = LENIENT_BASE64
        .decode(value)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    // Split at the first colon only: passwords may contain colons, usernames may not.
    Some(
        match decoded.as_deref().and_then(|text| text.split_once(':')) {
            Some((login, password)) if !login.is_empty() => Credentials::Password {
                method: AuthMethod::Basic,
                login: login.to_string(),
                password: password.to_string(),
            },
            _ => Credentials::Malformed,
        },
    )
}
