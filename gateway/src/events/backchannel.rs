//! OpenID Connect Back-Channel Logout 1.0: a logout token, turned into a
//! revocation action.
//!
//! Input: the body of the OP's POST to the app's back-channel logout URI
//! (`application/x-www-form-urlencoded`, `logout_token=<JWT>`, capped by
//! the caller), the app's signing keys and [`Policy`] (its issuer, its
//! client id, its algorithms and leeway), the [`Limits`], and `now`. Output:
//! a [`Logout`]: the token's `jti`, for the caller's replay check (§2.6 step
//! 7), and the [`Action`]. Failure: a [`LogoutError`]; the caller answers
//! 400 (§2.8) with `Cache-Control: no-store`, and revokes nothing.
//!
//! The rules, from the specification
//! (openid.net/specs/openid-connect-backchannel-1_0.html, final, with
//! errata set 1 of December 2023), §2.4 "Logout Token" and §2.6 "Logout
//! Token Validation":
//!
//! - the token is a JWS signed like the ID token: the algorithm allow-list
//!   and keys are the app's, checked by [`verify::verify_signature`]
//!   (an encrypted logout token is not supported and is refused);
//! - `iss` equals the IdP's issuer, which must therefore be known;
//! - `aud` contains the app's client id (and `azp`, if present, is it);
//! - `iat` is present; here it must also be recent: no older than
//!   [`Limits::max_age`] and not in the future beyond the leeway;
//! - `exp`: REQUIRED since errata set 1, absent from the 2022 final text and
//!   from tokens of IdPs that predate it (Keycloak added it after the errata), so an
//!   absent `exp` is accepted (the `iat` age bounds the token instead) and a
//!   present one is enforced;
//! - `jti` is present (a string);
//! - `events` is a JSON object with the member
//!   `http://schemas.openid.net/event/backchannel-logout`, whose value is a
//!   JSON object;
//! - `sid`, `sub` or both are present;
//! - `nonce` is absent (§2.4: so that a logout token can never pass as an
//!   ID token, and the reverse);
//! - §4.1 "Cross-JWT Confusion": a `typ` header, if present, says
//!   `logout+jwt` (or the generic `JWT`): a token explicitly typed as
//!   something else is refused.
//!
//! The action: with `sid`, that session ([`Action::Session`]); with only
//! `sub`, every token of that user for this app issued at or before the
//! logout token's `iat` ([`Action::User`]). Either lasts until `iat` plus
//! [`Limits::access_ttl`], when every access token it covers has expired.

use serde_json::{Map, Value};

use super::action::{identifier, Action};
use crate::auth::verify::{self, Claims, Keys, Policy, VerifyError};

/// The `events` member that makes a JWT a logout token (§2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Longest `logout_token` accepted: a signed token with a handful of claims
/// is well under 4 KiB.
const MAX_TOKEN: usize = 16 * 1024;

/// The caller's bounds on logout tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Oldest `iat` accepted, in seconds before now (§4 recommends tokens
    /// live at most two minutes; a few minutes allows for clock skew and
    /// delivery delay). Bounds replay, and the caller's `jti` memory.
    pub max_age: u64,
    /// The app's longest access-token lifetime, in seconds: how long after
    /// the logout a token issued before it can still be valid.
    pub access_ttl: u64,
}

/// A valid logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    /// The token's `jti`: refuse a second token with the same one (from the
    /// same issuer) for [`Limits::max_age`].
    pub jti: String,
    /// What to revoke.
    pub action: Action,
}

/// Why a logout request was refused. Every variant is a 400 (§2.8); the
/// variant goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    /// The body is not a form with exactly one non-empty `logout_token`.
    #[error("no single logout_token in the form body")]
    Form,
    /// The signature, algorithm, key, issuer, audience, or a time claim's
    /// type failed (as for any JWT the gateway verifies).
    #[error("logout token refused: {0}")]
    Token(#[from] VerifyError),
    /// The app's IdP has no configured issuer to check `iss` against.
    #[error("no issuer configured to check the logout token against")]
    NoIssuer,
    /// The `typ` header names another kind of JWT.
    #[error("logout token typed as another kind of JWT")]
    Type,
    /// A required claim is absent, or has the wrong type.
    #[error("logout token claim {0} missing or invalid")]
    Claim(&'static str),
    /// `iat` is older than the allowed age.
    #[error("logout token too old")]
    TooOld,
    /// `exp` has passed.
    #[error("logout token expired")]
    Expired,
    /// `events` lacks the back-channel logout member, or its value is not an
    /// object: not a logout token.
    #[error("not a logout token (events)")]
    NotALogoutToken,
    /// A `nonce` claim is present (§2.4 prohibits it).
    #[error("logout token carries a nonce")]
    Nonce,
    /// Neither `sid` nor `sub`.
    #[error("logout token names no session and no subject")]
    NoSubject,
}

/// Validates a back-channel logout request's `body` for the app of `policy`
/// signed with `keys`, at `now` (seconds since the epoch).
///
/// On [`VerifyError::UnknownKid`] the caller may refetch the IdP's keys
/// (rate-limited, as for access tokens) and call again.
pub fn logout(
    body: &[u8],
    keys: &Keys,
    policy: &Policy,
    limits: &Limits,
    now: u64,
) -> Result<Logout, LogoutError> {
    let token = logout_token(body)?;
    validate(&token, keys, policy, limits, now)
}

/// The `logout_token` parameter of a form body (§2.5): exactly one,
/// non-empty, in the JWS compact alphabet.
pub fn logout_token(body: &[u8]) -> Result<String, LogoutError> {
    let mut tokens = url::form_urlencoded::parse(body).filter(|(name, _)| name == "logout_token");
    let token = match (tokens.next(), tokens.next()) {
        (Some((_, token)), None) => token,
        _ => return Err(LogoutError::Form),
    };
    let compact = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if token.is_empty() || token.len() > MAX_TOKEN || !token.bytes().all(compact) {
        return Err(LogoutError::Form);
    }
    Ok(token.into_owned())
}

/// Validates a logout token (§2.6) and says what to revoke.
pub fn validate(
    token: &str,
    keys: &Keys,
    policy: &Policy,
    limits: &Limits,
    now: u64,
) -> Result<Logout, LogoutError> {
    let signed = verify::verify_signature(token, keys, &policy.algorithms)?;
    check_type(&signed.header)?;
    let claims = signed.claims;

    let issuer = policy.issuer.as_deref().ok_or(LogoutError::NoIssuer)?;
    if claims.str("iss") != Some(issuer) {
        return Err(VerifyError::Issuer.into());
    }
    // The audience is the client itself (an ID token's rule), never an API
    // audience configured for access tokens.
    if !audience_contains(claims.0.get("aud"), &policy.client_id) {
        return Err(VerifyError::Audience.into());
    }
    match claims.0.get("azp") {
        None => {}
        Some(Value::String(azp)) if *azp == policy.client_id => {}
        Some(_) => return Err(VerifyError::Client.into()),
    }

    let leeway = policy.leeway;
    let iat = claims
        .numeric_date("iat")?
        .ok_or(LogoutError::Claim("iat"))?;
    if iat > now.saturating_add(leeway) {
        return Err(VerifyError::IssuedInFuture.into());
    }
    if iat.saturating_add(limits.max_age).saturating_add(leeway) < now {
        return Err(LogoutError::TooOld);
    }
    if let Some(exp) = claims.numeric_date("exp")? {
        if now >= exp.saturating_add(leeway) {
            return Err(LogoutError::Expired);
        }
    }
    if claims
        .numeric_date("nbf")?
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(VerifyError::NotYetValid.into());
    }

    let jti = identifier_claim(&claims, "jti")?.ok_or(LogoutError::Claim("jti"))?;
    match claims.0.get("events") {
        Some(Value::Object(events)) if is_logout_event(events) => {}
        Some(Value::Object(_)) => return Err(LogoutError::NotALogoutToken),
        _ => return Err(LogoutError::Claim("events")),
    }
    if claims.0.contains_key("nonce") {
        return Err(LogoutError::Nonce);
    }
    let sid = identifier_claim(&claims, "sid")?;
    let sub = identifier_claim(&claims, "sub")?;

    let until = iat.saturating_add(limits.access_ttl);
    let client_id = Some(policy.client_id.clone());
    let action = match (sid, sub) {
        (Some(sid), _) => Action::Session {
            sid,
            client_id,
            until,
        },
        (None, Some(sub)) => Action::User {
            sub,
            client_id,
            before: iat,
            until,
        },
        (None, None) => return Err(LogoutError::NoSubject),
    };
    Ok(Logout { jti, action })
}

/// §4.1: an explicitly typed token must be typed as a logout token. Media
/// types compare case-insensitively, with or without `application/`
/// (RFC 7515 §4.1.9); the generic `JWT` of IdPs predating the
/// recommendation passes.
fn check_type(header: &Map<String, Value>) -> Result<(), LogoutError> {
    let typ = match header.get("typ") {
        None => return Ok(()),
        Some(Value::String(typ)) => typ.to_ascii_lowercase(),
        Some(_) => return Err(LogoutError::Type),
    };
    let typ = typ.strip_prefix("application/").unwrap_or(&typ);
    match typ {
        "logout+jwt" | "jwt" => Ok(()),
        _ => Err(LogoutError::Type),
    }
}

/// Whether `aud` (a string or an array of strings, RFC 7519 §4.1.3) names
/// `client_id`. A space-separated string is one audience, not several.
fn audience_contains(aud: Option<&Value>, client_id: &str) -> bool {
    match aud {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    }
}

/// Whether the `events` object declares a back-channel logout: the member is
/// there and is itself an object (§2.4: "SHOULD be the empty JSON object").
fn is_logout_event(events: &Map<String, Value>) -> bool {
    matches!(events.get(LOGOUT_EVENT), Some(Value::Object(_)))
}

/// A claim that must be a usable identifier if present.
fn identifier_claim(claims: &Claims, name: &'static str) -> Result<Option<String>, LogoutError> {
    match claims.0.get(name) {
        None => Ok(None),
        Some(Value::String(value)) if identifier(value) => Ok(Some(value.clone())),
        Some(_) => Err(LogoutError::Claim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::testing::{self, b64url, Rsa};
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const ISSUER: &str = "https://idp.example.com/realms/main";
    const CLIENT: &str = "store-client";
    const LIMITS: Limits = Limits {
        max_age: 300,
        access_ttl: 600,
    };

    fn policy() -> Policy {
        Policy {
            algorithms: vec![Algorithm::RS256],
            issuer: Some(ISSUER.into()),
            // An API audience for access tokens: not what a logout token's
            // `aud` is checked against.
            audience: Some("https://api.example.com".into()),
            client_claim: "azp".into(),
            client_id: CLIENT.into(),
            leeway: 5,
        }
    }

    /// The specification's example, aimed at this app, at `NOW - 10`.
    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "sub": "248289761001",
            "aud": CLIENT,
            "iat": NOW - 10,
            "exp": NOW + 110,
            "jti": "bWJq",
            "sid": "08a5019c-17e1-4977-8f42-65a12843ea02",
            "events": {LOGOUT_EVENT: {}}
        })
    }

    struct Idp {
        key: Rsa,
        keys: Keys,
    }

    fn idp() -> Idp {
        let key = Rsa::new("k1");
        let keys = Keys::new(Some(&key.jwks), None);
        Idp { key, keys }
    }

    impl Idp {
        fn token(&self, claims: &Value) -> String {
            let header = json!({"alg": "RS256", "typ": "logout+jwt", "kid": "k1"});
            self.key.sign_raw(&header, claims)
        }

        fn check(&self, claims: &Value) -> Result<Logout, LogoutError> {
            validate(&self.token(claims), &self.keys, &policy(), &LIMITS, NOW)
        }
    }

    fn without(name: &str) -> Value {
        let mut c = claims();
        c.as_object_mut().expect("object").remove(name);
        c
    }

    fn with(name: &str, value: Value) -> Value {
        let mut c = claims();
        c[name] = value;
        c
    }

    fn form(token: &str) -> Vec<u8> {
        format!("logout_token={token}").into_bytes()
    }

    #[test]
    fn a_valid_token_with_sid_revokes_the_session() {
        let idp = idp();
        let body = form(&idp.token(&claims()));
        assert_eq!(
            logout(&body, &idp.keys, &policy(), &LIMITS, NOW),
            Ok(Logout {
                jti: "bWJq".into(),
                action: Action::Session {
                    sid: "08a5019c-17e1-4977-8f42-65a12843ea02".into(),
                    client_id: Some(CLIENT.into()),
                    until: NOW - 10 + 600,
                },
            })
        );
    }

    #[test]
    fn a_valid_token_with_only_sub_revokes_the_users_earlier_tokens() {
        let logout = idp().check(&without("sid")).expect("valid");
        assert_eq!(
            logout.action,
            Action::User {
                sub: "248289761001".into(),
                client_id: Some(CLIENT.into()),
                before: NOW - 10,
                until: NOW - 10 + 600,
            }
        );
        // sid alone is enough too.
        assert!(matches!(
            idp().check(&without("sub")).expect("valid").action,
            Action::Session { .. }
        ));
    }

    #[test]
    fn tokens_without_exp_are_accepted_and_an_expired_exp_is_not() {
        let idp = idp();
        assert!(idp.check(&without("exp")).is_ok());
        assert_eq!(
            idp.check(&with("exp", json!(NOW - 5))),
            Err(LogoutError::Expired)
        );
        assert!(idp.check(&with("exp", json!(NOW - 4))).is_ok(), "leeway");
        assert_eq!(
            idp.check(&with("exp", json!("soon"))),
            Err(LogoutError::Token(VerifyError::ClaimType("exp")))
        );
    }

    #[test]
    fn a_nonce_is_refused() {
        for nonce in [json!("n-0S6_WzA2Mj"), json!(null), json!("")] {
            assert_eq!(
                idp().check(&with("nonce", nonce.clone())),
                Err(LogoutError::Nonce),
                "{nonce}"
            );
        }
    }

    #[test]
    fn the_audience_must_be_this_client() {
        let idp = idp();
        for aud in [
            json!("forums-client"),
            json!(["forums-client"]),
            json!("https://api.example.com"),
            json!("store-client forums-client"),
            json!([]),
            json!(7),
        ] {
            assert_eq!(
                idp.check(&with("aud", aud.clone())),
                Err(LogoutError::Token(VerifyError::Audience)),
                "{aud}"
            );
        }
        assert_eq!(
            idp.check(&without("aud")),
            Err(LogoutError::Token(VerifyError::Audience))
        );
        assert!(idp
            .check(&with("aud", json!(["forums-client", CLIENT])))
            .is_ok());
        assert_eq!(
            idp.check(&with("azp", json!("forums-client"))),
            Err(LogoutError::Token(VerifyError::Client))
        );
        assert!(idp.check(&with("azp", json!(CLIENT))).is_ok());
    }

    #[test]
    fn the_issuer_must_be_the_idps() {
        let idp = idp();
        assert_eq!(
            idp.check(&with("iss", json!("https://evil.example.com"))),
            Err(LogoutError::Token(VerifyError::Issuer))
        );
        assert_eq!(
            idp.check(&without("iss")),
            Err(LogoutError::Token(VerifyError::Issuer))
        );
        let mut p = policy();
        p.issuer = None;
        assert_eq!(
            validate(&idp.token(&claims()), &idp.keys, &p, &LIMITS, NOW),
            Err(LogoutError::NoIssuer)
        );
    }

    #[test]
    fn the_events_claim_must_declare_a_backchannel_logout() {
        let idp = idp();
        assert_eq!(
            idp.check(&without("events")),
            Err(LogoutError::Claim("events"))
        );
        for events in [json!([LOGOUT_EVENT]), json!(LOGOUT_EVENT), json!(null)] {
            assert_eq!(
                idp.check(&with("events", events.clone())),
                Err(LogoutError::Claim("events")),
                "{events}"
            );
        }
        for events in [
            json!({}),
            json!({"http://schemas.openid.net/event/backchannel-logout/": {}}),
            json!({"https://schemas.openid.net/event/backchannel-logout": {}}),
            json!({"http://schemas.openid.net/secevent/risc/event-type/sessions-revoked": {}}),
            json!({LOGOUT_EVENT: true}),
            json!({LOGOUT_EVENT: null}),
            json!({LOGOUT_EVENT: "yes"}),
            json!({LOGOUT_EVENT: []}),
        ] {
            assert_eq!(
                idp.check(&with("events", events.clone())),
                Err(LogoutError::NotALogoutToken),
                "{events}"
            );
        }
        // Other events next to it are fine.
        assert!(idp
            .check(&with(
                "events",
                json!({LOGOUT_EVENT: {}, "urn:example:other": {"x": 1}})
            ))
            .is_ok());
    }

    #[test]
    fn a_token_naming_no_session_and_no_subject_is_refused() {
        let mut c = without("sid");
        c.as_object_mut().expect("object").remove("sub");
        assert_eq!(idp().check(&c), Err(LogoutError::NoSubject));
        for (name, bad) in [
            ("sid", json!(42)),
            ("sid", json!("")),
            ("sub", json!("a\r\nb")),
            ("sub", json!("x".repeat(256))),
            ("jti", json!(1)),
            ("jti", json!("")),
        ] {
            assert_eq!(
                idp().check(&with(name, bad.clone())),
                Err(LogoutError::Claim(name)),
                "{name} = {bad}"
            );
        }
        assert_eq!(idp().check(&without("jti")), Err(LogoutError::Claim("jti")));
        // jsonwebtoken itself refuses a `sub` that is not a string: refused
        // either way.
        assert!(idp().check(&with("sub", json!(["a"]))).is_err());
    }

    #[test]
    fn iat_must_be_present_recent_and_not_in_the_future() {
        let idp = idp();
        assert_eq!(idp.check(&without("iat")), Err(LogoutError::Claim("iat")));
        assert_eq!(
            idp.check(&with("iat", json!("1800000000"))),
            Err(LogoutError::Token(VerifyError::ClaimType("iat")))
        );
        // max_age 300 + leeway 5.
        assert!(idp.check(&with("iat", json!(NOW - 305))).is_ok());
        assert_eq!(
            idp.check(&with("iat", json!(NOW - 306))),
            Err(LogoutError::TooOld)
        );
        assert!(idp.check(&with("iat", json!(NOW + 5))).is_ok());
        assert_eq!(
            idp.check(&with("iat", json!(NOW + 6))),
            Err(LogoutError::Token(VerifyError::IssuedInFuture))
        );
        assert_eq!(
            idp.check(&with("nbf", json!(NOW + 60))),
            Err(LogoutError::Token(VerifyError::NotYetValid))
        );
        // A huge iat does not overflow into "recent".
        assert_eq!(
            idp.check(&with("iat", json!(u64::MAX))),
            Err(LogoutError::Token(VerifyError::IssuedInFuture))
        );
        assert_eq!(idp.check(&with("iat", json!(0))), Err(LogoutError::TooOld));
    }

    #[test]
    fn forged_and_untrusted_signatures_are_refused() {
        let idp = idp();
        let token = idp.token(&claims());
        // Tampered payload, original signature.
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64url(&with("sub", json!("admin"))),
            parts[2]
        );
        assert_eq!(
            validate(&tampered, &idp.keys, &policy(), &LIMITS, NOW),
            Err(LogoutError::Token(VerifyError::Signature))
        );
        // Another key under the same kid; an unknown kid.
        let stranger = Rsa::new("k1");
        let forged = stranger.sign(Some("k1"), &claims());
        assert_eq!(
            validate(&forged, &idp.keys, &policy(), &LIMITS, NOW),
            Err(LogoutError::Token(VerifyError::Signature))
        );
        let unknown = stranger.sign(Some("k2"), &claims());
        assert_eq!(
            validate(&unknown, &idp.keys, &policy(), &LIMITS, NOW),
            Err(LogoutError::Token(VerifyError::UnknownKid("k2".into())))
        );
        // HS256 outside the allow-list, and alg none.
        let hs = testing::sign_hs(b"a client secret of at least 32 bytes!!", &claims());
        assert_eq!(
            validate(&hs, &idp.keys, &policy(), &LIMITS, NOW),
            Err(LogoutError::Token(VerifyError::Algorithm("HS256".into())))
        );
        let none = format!("{}.{}.", b64url(&json!({"alg": "none"})), b64url(&claims()));
        assert!(validate(&none, &idp.keys, &policy(), &LIMITS, NOW).is_err());
    }

    #[test]
    fn tokens_typed_as_something_else_are_refused() {
        let idp = idp();
        let typed = |typ: Value| {
            let header = json!({"alg": "RS256", "kid": "k1", "typ": typ});
            let token = idp.key.sign_raw(&header, &claims());
            validate(&token, &idp.keys, &policy(), &LIMITS, NOW)
        };
        for ok in ["logout+jwt", "application/logout+jwt", "LOGOUT+JWT", "JWT"] {
            assert!(typed(json!(ok)).is_ok(), "{ok}");
        }
        for bad in [
            json!("at+jwt"),
            json!("application/at+jwt"),
            json!("secevent+jwt"),
            json!("JOSE"),
            json!(null),
        ] {
            assert_eq!(typed(bad.clone()), Err(LogoutError::Type), "{bad}");
        }
        // jsonwebtoken refuses a non-string `typ` before we look.
        assert!(typed(json!(7)).is_err());
        // No typ at all (older IdPs): accepted.
        let token = idp
            .key
            .sign_raw(&json!({"alg": "RS256", "kid": "k1"}), &claims());
        assert!(validate(&token, &idp.keys, &policy(), &LIMITS, NOW).is_ok());
    }

    #[test]
    fn an_id_token_or_access_token_is_not_a_logout_token() {
        // Same issuer, audience and key: without `events` it is refused.
        let id_token = json!({
            "iss": ISSUER, "aud": CLIENT, "sub": "248289761001",
            "iat": NOW - 10, "exp": NOW + 300, "nonce": "abc", "sid": "s1"
        });
        let idp = idp();
        let header = json!({"alg": "RS256", "kid": "k1", "typ": "JWT"});
        let token = idp.key.sign_raw(&header, &id_token);
        assert!(validate(&token, &idp.keys, &policy(), &LIMITS, NOW).is_err());
    }

    #[test]
    fn the_form_must_hold_exactly_one_plausible_token() {
        let idp = idp();
        let token = idp.token(&claims());
        assert_eq!(
            logout_token(format!("other=1&logout_token={token}&x=").as_bytes()),
            Ok(token.clone())
        );
        for body in [
            Vec::new(),
            b"logout_token=".to_vec(),
            b"logout_token".to_vec(),
            b"token=abc".to_vec(),
            format!("logout_token={token}&logout_token={token}").into_bytes(),
            b"logout_token=a+b.c.d".to_vec(),
            b"logout_token=a%20b.c.d".to_vec(),
            b"logout_token=a%0Ab.c.d".to_vec(),
            b"logout_token=%FF%FE".to_vec(),
            format!("logout_token={}", "a".repeat(MAX_TOKEN + 1)).into_bytes(),
            format!("{{\"logout_token\": \"{token}\"}}").into_bytes(),
        ] {
            assert_eq!(
                logout_token(&body),
                Err(LogoutError::Form),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        // Well-formed, but not a JWS.
        assert_eq!(
            logout(b"logout_token=abc", &idp.keys, &policy(), &LIMITS, NOW),
            Err(LogoutError::Token(VerifyError::Malformed))
        );
        // A five-part (encrypted) token is not supported.
        assert!(logout(
            b"logout_token=a.b.c.d.e",
            &idp.keys,
            &policy(),
            &LIMITS,
            NOW
        )
        .is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
                let keys = Keys::new(None, Some(b"a client secret of at least 32 bytes!!"));
                let _ = logout(&body, &keys, &policy(), &LIMITS, NOW);
            }

            #[test]
            fn arbitrary_token_text_never_panics(token in "[A-Za-z0-9_.-]{0,300}") {
                let keys = Keys::new(None, Some(b"a client secret of at least 32 bytes!!"));
                let _ = validate(&token, &keys, &policy(), &LIMITS, NOW);
            }
        }
    }
}
