//! Session and CSRF tokens of the account holder's pages, and their cookies.
//!
//! A session token is 256 random bits, base64url, in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure`, under the `__Host-` prefix, when `public-url` is https). The store keeps only its
//! SHA-256. Every form that changes something carries a CSRF token derived from the session
//! token (HMAC-SHA-256 keyed with it): a page of another site can neither read the cookie nor
//! compute the token. `SameSite=Strict` alone is not enough here: a DDNS host name under the
//! same registrable domain as the service (`alice.dyn.example.net` beside
//! `ddns.example.net`) is *same-site*, and its owner runs whatever server they like on it.
//!
//! Signing in is itself protected the same way: the sign-in page sets a short-lived random
//! cookie and its form carries the token derived from it (a "login CSRF" would sign a victim
//! in to the attacker's account).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Length of a token in base64url: 32 bytes.
const TOKEN_LEN: usize = 43;

/// A random token (session or sign-in form), as the cookie carries it.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A new token from 256 bits of OS randomness.
    pub(super) fn generate() -> Self {
        let random: [u8; 32] = rand::random();
        Self(URL_SAFE_NO_PAD.encode(random))
    }

    /// The token in a cookie value, if it has a token's shape (anything else is no token, and
    /// is never looked up).
    pub(super) fn parse(text: &str) -> Option<Self> {
        (text.len() == TOKEN_LEN
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'))
        .then(|| Self(text.to_string()))
    }

    /// The text of the cookie.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// What the store keeps: SHA-256, lower-case hex.
    pub(super) fn stored_hash(&self) -> String {
        crate::auth::hash_api_key(&self.0)
    }

    /// The CSRF token of forms under this token.
    pub(super) fn csrf(&self) -> String {
        let mut mac = <hmac::Hmac<Sha256>>::new_from_slice(self.0.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"certadns-ddns dashboard csrf");
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `submitted` is this token's CSRF token (compared in constant time).
    pub(super) fn accepts_csrf(&self, submitted: &str) -> bool {
        let expected = Sha256::digest(self.csrf().as_bytes());
        let submitted = Sha256::digest(submitted.as_bytes());
        expected.ct_eq(&submitted).into()
    }
}

/// The cookies of the pages, named for how they are sent.
#[derive(Debug, Clone)]
pub(super) struct Cookies {
    /// Whether cookies are `Secure` (public-url is https).
    secure: bool,
    /// The session cookie's name.
    session: &'static str,
    /// The sign-in form's cookie's name.
    sign_in: &'static str,
}

/// How long the sign-in form's cookie lives: the time to type a password.
const SIGN_IN_COOKIE_SECS: u64 = 3600;

impl Cookies {
    /// The cookies, `Secure` or not. Secure cookies take the `__Host-` prefix: the browser
    /// then refuses them from any other host, so a sibling host cannot plant one.
    pub(super) fn new(secure: bool) -> Self {
        if secure {
            Self {
                secure,
                session: "__Host-certadns-session",
                sign_in: "__Host-certadns-sign-in",
            }
        } else {
            Self {
                secure,
                session: "certadns-session",
                sign_in: "certadns-sign-in",
            }
        }
    }

    /// The session token in the request's `Cookie` headers.
    pub(super) fn session<'a>(
        &self,
        headers: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Option<Token>, DuplicateCookie> {
        Ok(find_cookie(headers, self.session)?.and_then(Token::parse))
    }

    /// The sign-in form's token in the request's `Cookie` headers.
    pub(super) fn sign_in<'a>(
        &self,
        headers: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Option<Token>, DuplicateCookie> {
        Ok(find_cookie(headers, self.sign_in)?.and_then(Token::parse))
    }

    /// `Set-Cookie` for a new session of `lifetime`.
    pub(super) fn set_session(&self, token: &Token, lifetime: std::time::Duration) -> String {
        self.cookie(self.session, token.as_str(), lifetime.as_secs())
    }

    /// `Set-Cookie` that removes the session cookie.
    pub(super) fn clear_session(&self) -> String {
        self.cookie(self.session, "", 0)
    }

    /// `Set-Cookie` for the sign-in form's token.
    pub(super) fn set_sign_in(&self, token: &Token) -> String {
        self.cookie(self.sign_in, token.as_str(), SIGN_IN_COOKIE_SECS)
    }

    /// `Set-Cookie` that removes the sign-in form's cookie.
    pub(super) fn clear_sign_in(&self) -> String {
        self.cookie(self.sign_in, "", 0)
    }

    /// One `Set-Cookie` value.
    fn cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
    }
}

/// A request carried two cookies of one name. Over http, any host under the same parent domain
/// can set a cookie for this one (`Domain=example.net`), and the browser then sends both: taking
/// the first would let a neighbour sign the user in as someone else (or fix a session). Over
/// https the `__Host-` prefix rules that out; two are refused either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DuplicateCookie;

/// The value of the cookie called `name` in `Cookie` headers (`a=1; b=2`), if there is one;
/// refused if there are more. Browsers send one header; HTTP/1.1 clients may send several.
fn find_cookie<'a>(
    headers: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Result<Option<&'a str>, DuplicateCookie> {
    let mut values = headers
        .filter_map(|header| std::str::from_utf8(header).ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"'));
    let first = values.next();
    if values.next().is_some() {
        return Err(DuplicateCookie);
    }
    Ok(first)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn tokens_are_random_and_parse_only_in_their_shape() {
        let token = Token::generate();
        assert_eq!(token.as_str().len(), TOKEN_LEN);
        assert_ne!(token, Token::generate());
        assert_eq!(Token::parse(token.as_str()), Some(token.clone()));
        assert_eq!(Token::parse(""), None);
        assert_eq!(Token::parse(&"a".repeat(44)), None);
        assert_eq!(Token::parse(&format!("{}=", &token.as_str()[..42])), None);
        assert_eq!(format!("{token:?}"), "Token(..)");
        assert_eq!(token.stored_hash().len(), 64);
    }

    #[test]
    fn csrf_tokens_belong_to_their_session_only() {
        let (one, two) = (Token::generate(), Token::generate());
        assert!(one.accepts_csrf(&one.csrf()));
        assert!(!one.accepts_csrf(&two.csrf()));
        assert!(!one.accepts_csrf(""));
        assert!(!one.accepts_csrf(one.as_str()));
        assert_ne!(one.csrf(), one.as_str());
    }

    #[test]
    fn cookies_are_found_among_others_and_secure_ones_are_host_only() {
        let token = Token::generate();
        let header = format!("a=1; certadns-session={}; b=2", token.as_str());
        let cookies = Cookies::new(false);
        assert_eq!(
            cookies.session([b"x=y".as_slice(), header.as_bytes()].into_iter()),
            Ok(Some(token.clone()))
        );
        assert_eq!(cookies.sign_in([header.as_bytes()].into_iter()), Ok(None));
        assert_eq!(
            cookies.session([b"certadns-session=../../etc".as_slice()].into_iter()),
            Ok(None)
        );
        // Two of one name, in one header or two: neither is taken.
        let planted = format!("certadns-session={}", Token::generate().as_str());
        assert_eq!(
            cookies.session([planted.as_bytes(), header.as_bytes()].into_iter()),
            Err(DuplicateCookie)
        );
        let both = format!("{planted}; {header}");
        assert_eq!(
            cookies.session([both.as_bytes()].into_iter()),
            Err(DuplicateCookie)
        );
        let set = cookies.set_session(&token, std::time::Duration::from_secs(60));
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("Secure"));
        let secure = Cookies::new(true).set_session(&token, std::time::Duration::from_secs(60));
        assert!(secure.starts_with("__Host-certadns-session=") && secure.ends_with("; Secure"));
        assert!(secure.contains("Path=/;"), "__Host- cookies need Path=/");
        assert!(Cookies::new(true).clear_session().contains("Max-Age=0"));
    }
}
