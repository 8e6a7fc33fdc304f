//! Authenticity of a webhook request: a signature over the body, a shared
//! secret in a header, or both.
//!
//! Input: the request's headers, its raw body bytes (never a re-serialised
//! JSON), the IdP's current signing keys and `now`. Output: `Ok(())`, or an
//! [`AuthError`] naming the check that failed. The caller answers every
//! error with the same 401 and logs the error: a client learns nothing about
//! which check it failed.
//!
//! **Signature** (FusionAuth 1.48+, "Signing Webhooks",
//! fusionauth.io/docs/extend/events-and-webhooks/signing): the header
//! `X-FusionAuth-Signature-JWT` holds a JWT signed with a Key Master key
//! (HMAC, RSA, EC or EdDSA; the public ones are published in the JWKS at
//! `/.well-known/jwks.json`, found by the header's `kid`). Its payload is
//! exactly `{"request_body_sha256": "<base64 of the body's SHA-256>"}`: the
//! documented example value `KeV+/HGoIQrxuE5YPCRR6AuQOJveldYNNhbVi1i22qk=`
//! is standard base64 (`+`, `/`) with padding, which is what a Java
//! `Base64.getEncoder()` emits, so that one encoding is accepted and
//! compared exactly (the standard encoding of 32 bytes is unique). No `iss`,
//! `aud`, `exp` or `iat` is set, so none is required; an `exp`, `nbf` or
//! `iat` that is present is honoured. Without `exp` a captured request can be
//! replayed as is: it then carries the same `event.id`, which the caller
//! skips as a duplicate.
//!
//! HMAC-signed requests are checked with the webhook's own secret only, never
//! with the IdP's access-token secret; asymmetric ones with the IdP's
//! published keys only. Each side can be switched off, and the algorithm
//! allow-list applies to both ([`SignatureCheck`]).
//!
//! **Shared secret** (FusionAuth's "Securing Webhooks": HTTP Basic
//! authentication, or a custom header configured on the webhook):
//! `Authorization: Bearer <secret>`, `Authorization: Basic
//! <base64(user:password)>` (RFC 7617), or a named header carrying the
//! secret ([`SharedSecret`]). Compared in constant time over SHA-256 digests,
//! so neither the secret's bytes nor its length leak through timing.
//!
//! With both configured both are required; with neither, there is no
//! [`Authenticator`] and the caller keeps the endpoint off (404).

use aws_lc_rs::digest::{self, SHA256};
use base64::Engine;
use http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde_json::Value;

use crate::auth::verify::{self, Keys, VerifyError};
use crate::config::Secret;

/// The header FusionAuth puts the signature JWT in.
pub const SIGNATURE_HEADER: &str = "x-fusionauth-signature-jwt";

/// The signature claim holding the body's digest.
const DIGEST_CLAIM: &str = "request_body_sha256";

/// Longest signature header accepted: a JWT with one claim and an RSA-4096
/// signature is under 1 KiB.
const MAX_SIGNATURE: usize = 8 * 1024;

/// How webhook requests prove where they come from.
#[derive(Debug)]
pub struct Authenticator {
    signature: Option<SignatureCheck>,
    secret: Option<SharedSecret>,
}

impl Authenticator {
    /// An authenticator requiring every check given; `None` when given none:
    /// the endpoint must then stay off.
    pub fn new(
        signature: Option<SignatureCheck>,
        secret: Option<SharedSecret>,
    ) -> Option<Authenticator> {
        (signature.is_some() || secret.is_some()).then_some(Authenticator { signature, secret })
    }

    /// Whether a check uses the IdP's published keys (the caller then passes
    /// them, and may refetch them once on [`VerifyError::UnknownKid`]).
    pub fn uses_idp_keys(&self) -> bool {
        self.signature.as_ref().is_some_and(|s| s.idp_keys)
    }

    /// Checks a request: its `headers`, its raw `body`, against the IdP's
    /// current `idp_keys` at `now` (seconds since the epoch).
    pub fn check(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        idp_keys: &Keys,
        now: u64,
    ) -> Result<(), AuthError> {
        if let Some(secret) = &self.secret {
            secret.check(headers)?;
        }
        if let Some(signature) = &self.signature {
            signature.check(headers, body, idp_keys, now)?;
        }
        Ok(())
    }
}

/// The signature header check: which keys may sign, with which algorithms.
pub struct SignatureCheck {
    /// The webhook's own HMAC key (Key Master), if HMAC signatures are used.
    hmac: Option<Keys>,
    /// Whether keys the IdP publishes (RSA, EC, EdDSA) may sign.
    idp_keys: bool,
    algorithms: Vec<Algorithm>,
    leeway: u64,
}

impl std::fmt::Debug for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCheck")
            .field("hmac", &self.hmac.is_some())
            .field("idp_keys", &self.idp_keys)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl SignatureCheck {
    /// A check accepting HMAC signatures made with `hmac_secret` and/or
    /// asymmetric ones made with the IdP's published keys (`idp_keys`), by
    /// the `algorithms` listed, with `leeway` seconds on any time claim.
    /// `None` when no key could ever verify: no secret and no IdP keys, or no
    /// algorithm of a family that has keys.
    pub fn new(
        hmac_secret: Option<&[u8]>,
        idp_keys: bool,
        algorithms: Vec<Algorithm>,
        leeway: u64,
    ) -> Option<SignatureCheck> {
        let usable = algorithms.iter().any(|alg| {
            if is_hmac(*alg) {
                hmac_secret.is_some()
            } else {
                idp_keys
            }
        });
        usable.then(|| SignatureCheck {
            hmac: hmac_secret.map(|secret| Keys::new(None, Some(secret))),
            idp_keys,
            algorithms,
            leeway,
        })
    }

    fn check(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        idp_keys: &Keys,
        now: u64,
    ) -> Result<(), AuthError> {
        let token = single(headers, SIGNATURE_HEADER)
            .map_err(|n| match n {
                0 => AuthError::MissingSignature,
                _ => AuthError::RepeatedSignature,
            })?
            .to_str()
            .map_err(|_| AuthError::Signature(VerifyError::Malformed))?;
        if token.len() > MAX_SIGNATURE {
            return Err(AuthError::Signature(VerifyError::Malformed));
        }
        // The algorithm picks the key set, so that neither side's keys can
        // verify the other side's algorithms: an HMAC token is never checked
        // against the IdP's keys (its access-token secret included).
        let alg = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Signature(VerifyError::Malformed))?
            .alg;
        let keys = if is_hmac(alg) {
            self.hmac.as_ref()
        } else {
            self.idp_keys.then_some(idp_keys)
        };
        let keys = keys.ok_or(AuthError::Signature(VerifyError::NoKey))?;
        let allowed: Vec<Algorithm> = self
            .algorithms
            .iter()
            .copied()
            .filter(|a| is_hmac(*a) == is_hmac(alg))
            .collect();
        let claims = verify::verify_signature(token, keys, &allowed)?.claims;

        let leeway = self.leeway;
        if let Some(exp) = claims.numeric_date("exp")? {
            if now >= exp.saturating_add(leeway) {
                return Err(AuthError::Expired);
            }
        }
        if claims
            .numeric_date("nbf")?
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(AuthError::Signature(VerifyError::NotYetValid));
        }
        if claims
            .numeric_date("iat")?
            .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(AuthError::Signature(VerifyError::IssuedInFuture));
        }

        let claimed = match claims.0.get(DIGEST_CLAIM) {
            Some(Value::String(claimed)) => claimed,
            _ => return Err(AuthError::MissingDigest),
        };
        let actual = base64::engine::general_purpose::STANDARD
            .encode(digest::digest(&SHA256, body).as_ref());
        // Both sides are public (the body and its signed digest): a plain
        // comparison leaks nothing.
        if *claimed != actual {
            return Err(AuthError::DigestMismatch);
        }
        Ok(())
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    alg.family() == AlgorithmFamily::Hmac
}

/// A secret the sender presents in a header.
pub struct SharedSecret {
    header: HeaderName,
    scheme: Scheme,
    /// SHA-256 of the expected credentials (the secret, or `user:password`).
    expected: [u8; 32],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Basic,
    /// The whole header value is the secret.
    Raw,
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSecret")
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl SharedSecret {
    /// `Authorization: Bearer <secret>`.
    pub fn bearer(secret: &Secret) -> SharedSecret {
        SharedSecret {
            header: AUTHORIZATION,
            scheme: Scheme::Bearer,
            expected: sha256(secret.expose().as_bytes()),
        }
    }

    /// `Authorization: Basic <base64(username:password)>` (RFC 7617; the
    /// username cannot contain `:`, which the configuration refuses).
    pub fn basic(username: &str, password: &Secret) -> SharedSecret {
        let credentials = format!("{username}:{}", password.expose());
        SharedSecret {
            header: AUTHORIZATION,
            scheme: Scheme::Basic,
            expected: sha256(credentials.as_bytes()),
        }
    }

    /// `<header>: <secret>`: a custom header configured on the webhook.
    pub fn header(header: HeaderName, secret: &Secret) -> SharedSecret {
        SharedSecret {
            header,
            scheme: Scheme::Raw,
            expected: sha256(secret.expose().as_bytes()),
        }
    }

    /// Whether `headers` carry the secret (once, in constant time).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let value = single(headers, self.header.as_str()).map_err(|n| match n {
            0 => AuthError::MissingCredentials,
            _ => AuthError::RepeatedCredentials,
        })?;
        let presented = match self.scheme {
            Scheme::Raw => value.as_bytes().to_vec(),
            Scheme::Bearer => credentials(value.as_bytes(), "Bearer")?.to_vec(),
            Scheme::Basic => base64::engine::general_purpose::STANDARD
                .decode(credentials(value.as_bytes(), "Basic")?)
                .map_err(|_| AuthError::MalformedCredentials)?,
        };
        // Digests of equal length: the comparison time says nothing about
        // the secret's bytes or length.
        aws_lc_rs::constant_time::verify_slices_are_equal(&sha256(&presented), &self.expected)
            .map_err(|_| AuthError::WrongCredentials)
    }
}

/// The credentials of an `Authorization` value with the given scheme (RFC
/// 9110 §11.4: `auth-scheme 1*SP token68`, the scheme case-insensitive).
fn credentials<'v>(value: &'v [u8], scheme: &str) -> Result<&'v [u8], AuthError> {
    let space = value
        .iter()
        .position(|b| *b == b' ')
        .ok_or(AuthError::MalformedCredentials)?;
    let (name, rest) = value.split_at(space);
    if !name.eq_ignore_ascii_case(scheme.as_bytes()) {
        return Err(AuthError::MalformedCredentials);
    }
    let token = rest.trim_ascii_start();
    let visible = |b: &u8| b.is_ascii_graphic();
    if token.is_empty() || !token.iter().all(visible) {
        return Err(AuthError::MalformedCredentials);
    }
    Ok(token)
}

/// The one value of header `name`; `Err(count)` when there are none or
/// several (two signatures or two secrets make the request ambiguous).
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h http::HeaderValue, usize> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value),
        (None, _) => Err(0),
        (Some(_), Some(_)) => Err(2),
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest::digest(&SHA256, bytes).as_ref());
    out
}

/// Why a webhook request was not accepted. Every variant is a 401 to the
/// client; the variant goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature header.
    #[error("no X-FusionAuth-Signature-JWT header")]
    MissingSignature,
    /// More than one signature header.
    #[error("more than one X-FusionAuth-Signature-JWT header")]
    RepeatedSignature,
    /// The signature JWT failed: malformed, algorithm, key, signature, time.
    #[error("signature JWT refused: {0}")]
    Signature(#[from] VerifyError),
    /// The signature JWT's `exp` has passed.
    #[error("signature JWT expired")]
    Expired,
    /// The signature JWT has no string `request_body_sha256` claim.
    #[error("signature JWT has no request_body_sha256 claim")]
    MissingDigest,
    /// The signed digest is not the body's: the body was changed.
    #[error("request_body_sha256 does not match the body")]
    DigestMismatch,
    /// No credentials header.
    #[error("no credentials")]
    MissingCredentials,
    /// More than one credentials header.
    #[error("more than one credentials header")]
    RepeatedCredentials,
    /// Credentials of another scheme, or not decodable.
    #[error("malformed credentials")]
    MalformedCredentials,
    /// Credentials that are not the configured ones.
    #[error("wrong credentials")]
    WrongCredentials,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::testing::{self, b64url, Rsa};
    use http::HeaderValue;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const HMAC: &[u8] = b"a webhook hmac key of at least 32 bytes!";
    const BODY: &[u8] = br#"{"event":{"type":"user.delete","id":"e1"}}"#;

    fn digest_of(body: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(digest::digest(&SHA256, body).as_ref())
    }

    fn signed_headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(token).expect("header value"),
        );
        headers
    }

    fn hmac_only() -> Authenticator {
        Authenticator::new(
            SignatureCheck::new(Some(HMAC), false, vec![Algorithm::HS256], 5),
            None,
        )
        .expect("configured")
    }

    fn idp_only() -> Authenticator {
        Authenticator::new(
            SignatureCheck::new(None, true, vec![Algorithm::RS256], 5),
            None,
        )
        .expect("configured")
    }

    #[test]
    fn fusionauths_documented_digest_is_standard_padded_base64() {
        // The documented claim decodes to 32 bytes under the standard
        // alphabet with padding, and re-encodes to itself.
        let documented = "KeV+/HGoIQrxuE5YPCRR6AuQOJveldYNNhbVi1i22qk=";
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(documented)
            .expect("standard base64");
        assert_eq!(bytes.len(), 32);
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            documented
        );
        assert!(base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(documented)
            .is_err());
    }

    #[test]
    fn a_body_signed_with_the_webhook_hmac_key_passes() {
        let token = testing::sign_hs(HMAC, &json!({DIGEST_CLAIM: digest_of(BODY)}));
        let auth = hmac_only();
        assert_eq!(
            auth.check(&signed_headers(&token), BODY, &Keys::default(), NOW),
            Ok(())
        );
        assert!(!auth.uses_idp_keys());
    }

    #[test]
    fn a_body_signed_with_a_published_idp_key_passes() {
        let key = Rsa::new("webhook-key");
        let idp = Keys::new(Some(&key.jwks), None);
        let token = key.sign(Some("webhook-key"), &json!({DIGEST_CLAIM: digest_of(BODY)}));
        let auth = idp_only();
        assert!(auth.uses_idp_keys());
        assert_eq!(auth.check(&signed_headers(&token), BODY, &idp, NOW), Ok(()));
    }

    #[test]
    fn a_body_changed_after_signing_is_refused() {
        let token = testing::sign_hs(HMAC, &json!({DIGEST_CLAIM: digest_of(BODY)}));
        let changed = br#"{"event":{"type":"user.delete","id":"e2"}}"#;
        assert_eq!(
            hmac_only().check(&signed_headers(&token), changed, &Keys::default(), NOW),
            Err(AuthError::DigestMismatch)
        );
        // Whitespace alone changes the digest: the raw bytes are what count.
        let reformatted = br#"{"event": {"type":"user.delete","id":"e1"}}"#;
        assert_eq!(
            hmac_only().check(&signed_headers(&token), reformatted, &Keys::default(), NOW),
            Err(AuthError::DigestMismatch)
        );
    }

    #[test]
    fn digests_in_other_encodings_are_refused() {
        let bytes = digest::digest(&SHA256, BODY);
        let variants = [
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes.as_ref()),
            bytes
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            format!(" {}", digest_of(BODY)),
        ];
        for variant in variants {
            if variant == digest_of(BODY) {
                continue; // a digest with no `+`, `/` or padding to differ in
            }
            let token = testing::sign_hs(HMAC, &json!({DIGEST_CLAIM: variant}));
            assert_eq!(
                hmac_only().check(&signed_headers(&token), BODY, &Keys::default(), NOW),
                Err(AuthError::DigestMismatch),
                "{variant}"
            );
        }
        for claims in [
            json!({}),
            json!({DIGEST_CLAIM: null}),
            json!({DIGEST_CLAIM: 1}),
            json!({DIGEST_CLAIM: [digest_of(BODY)]}),
            json!({"request_body_sha512": digest_of(BODY)}),
        ] {
            let token = testing::sign_hs(HMAC, &claims);
            assert_eq!(
                hmac_only().check(&signed_headers(&token), BODY, &Keys::default(), NOW),
                Err(AuthError::MissingDigest),
                "{claims}"
            );
        }
    }

    #[test]
    fn forged_and_untrusted_signatures_are_refused() {
        let claims = json!({DIGEST_CLAIM: digest_of(BODY)});
        // Signed with another HMAC secret.
        let forged = testing::sign_hs(b"not the webhook key, also 32 bytes long", &claims);
        assert_eq!(
            hmac_only().check(&signed_headers(&forged), BODY, &Keys::default(), NOW),
            Err(AuthError::Signature(VerifyError::Signature))
        );
        // A valid signature grafted onto another payload.
        let good = testing::sign_hs(HMAC, &claims);
        let parts: Vec<&str> = good.split('.').collect();
        let other = json!({DIGEST_CLAIM: digest_of(b"{}")});
        let grafted = format!("{}.{}.{}", parts[0], b64url(&other), parts[2]);
        assert_eq!(
            hmac_only().check(&signed_headers(&grafted), b"{}", &Keys::default(), NOW),
            Err(AuthError::Signature(VerifyError::Signature))
        );
        // Signed by an RSA key the IdP does not publish.
        let published = Rsa::new("k1");
        let idp = Keys::new(Some(&published.jwks), None);
        let stranger = Rsa::new("k1");
        let token = stranger.sign(Some("k1"), &claims);
        assert_eq!(
            idp_only().check(&signed_headers(&token), BODY, &idp, NOW),
            Err(AuthError::Signature(VerifyError::Signature))
        );
        let token = stranger.sign(Some("k9"), &claims);
        assert_eq!(
            idp_only().check(&signed_headers(&token), BODY, &idp, NOW),
            Err(AuthError::Signature(VerifyError::UnknownKid("k9".into())))
        );
        // alg none.
        let none = format!(
            "{}.{}.",
            b64url(&json!({"alg": "none", "typ": "JWT"})),
            b64url(&claims)
        );
        assert!(hmac_only()
            .check(&signed_headers(&none), BODY, &Keys::default(), NOW)
            .is_err());
    }

    #[test]
    fn hmac_tokens_never_verify_with_the_idps_keys() {
        // The IdP's key set holds its access-token HMAC secret; a webhook
        // signed with it is refused when only published keys are trusted.
        let idp_secret = b"the idp's access token secret, 32 bytes+";
        let idp = Keys::new(None, Some(idp_secret));
        let token = testing::sign_hs(idp_secret, &json!({DIGEST_CLAIM: digest_of(BODY)}));
        let auth = Authenticator::new(
            SignatureCheck::new(None, true, vec![Algorithm::RS256, Algorithm::HS256], 5),
            None,
        )
        .expect("configured");
        assert_eq!(
            auth.check(&signed_headers(&token), BODY, &idp, NOW),
            Err(AuthError::Signature(VerifyError::NoKey))
        );
        // And an RS256 token is never checked against the HMAC secret: with
        // IdP keys off, there is no key for it.
        let key = Rsa::new("k1");
        let token = key.sign(Some("k1"), &json!({DIGEST_CLAIM: digest_of(BODY)}));
        let with_hmac = Authenticator::new(
            SignatureCheck::new(
                Some(HMAC),
                false,
                vec![Algorithm::RS256, Algorithm::HS256],
                5,
            ),
            None,
        )
        .expect("configured");
        assert_eq!(
            with_hmac.check(
                &signed_headers(&token),
                BODY,
                &Keys::new(Some(&key.jwks), None),
                NOW
            ),
            Err(AuthError::Signature(VerifyError::NoKey))
        );
        // HMAC/RSA confusion: HS256 keyed with the RSA public key.
        let confused = testing::sign_hs(
            key.public_pem.as_bytes(),
            &json!({DIGEST_CLAIM: digest_of(BODY)}),
        );
        assert_eq!(
            with_hmac.check(&signed_headers(&confused), BODY, &Keys::default(), NOW),
            Err(AuthError::Signature(VerifyError::Signature))
        );
    }

    #[test]
    fn algorithms_outside_the_allow_list_are_refused() {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS512),
            &json!({DIGEST_CLAIM: digest_of(BODY)}),
            &jsonwebtoken::EncodingKey::from_secret(HMAC),
        )
        .expect("sign");
        assert_eq!(
            hmac_only().check(&signed_headers(&token), BODY, &Keys::default(), NOW),
            Err(AuthError::Signature(VerifyError::Algorithm("HS512".into())))
        );
    }

    #[test]
    fn time_claims_are_honoured_when_present() {
        let token = |claims: Value| {
            let mut c = claims;
            c[DIGEST_CLAIM] = json!(digest_of(BODY));
            signed_headers(&testing::sign_hs(HMAC, &c))
        };
        let check = |headers: HeaderMap| hmac_only().check(&headers, BODY, &Keys::default(), NOW);
        assert_eq!(check(token(json!({"exp": NOW + 60}))), Ok(()));
        assert_eq!(
            check(token(json!({"exp": NOW - 5}))),
            Err(AuthError::Expired)
        );
        assert_eq!(
            check(token(json!({"nbf": NOW + 60}))),
            Err(AuthError::Signature(VerifyError::NotYetValid))
        );
        assert_eq!(
            check(token(json!({"iat": NOW + 60}))),
            Err(AuthError::Signature(VerifyError::IssuedInFuture))
        );
        assert_eq!(
            check(token(json!({"exp": "tomorrow"}))),
            Err(AuthError::Signature(VerifyError::ClaimType("exp")))
        );
    }

    #[test]
    fn missing_repeated_and_garbage_signature_headers_are_refused() {
        let auth = hmac_only();
        let keys = Keys::default();
        assert_eq!(
            auth.check(&HeaderMap::new(), BODY, &keys, NOW),
            Err(AuthError::MissingSignature)
        );
        let token = testing::sign_hs(HMAC, &json!({DIGEST_CLAIM: digest_of(BODY)}));
        let mut twice = signed_headers(&token);
        twice.append(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&token).expect("value"),
        );
        assert_eq!(
            auth.check(&twice, BODY, &keys, NOW),
            Err(AuthError::RepeatedSignature)
        );
        let mut headers = HeaderMap::new();
        for garbage in [
            &b""[..],
            b"x",
            b"..",
            b"a.b.c",
            b"\xff\xfe.e30.",
            b"eyJhbGciOiJIUzI1NiJ9",
        ] {
            headers.insert(
                SIGNATURE_HEADER,
                HeaderValue::from_bytes(garbage).expect("value"),
            );
            assert!(
                matches!(
                    auth.check(&headers, BODY, &keys, NOW),
                    Err(AuthError::Signature(_))
                ),
                "{garbage:?}"
            );
        }
        let huge = "a".repeat(MAX_SIGNATURE + 1);
        assert_eq!(
            auth.check(&signed_headers(&huge), BODY, &keys, NOW),
            Err(AuthError::Signature(VerifyError::Malformed))
        );
    }

    fn with_header(name: &HeaderName, value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_bytes(value).expect("value"));
        headers
    }

    #[test]
    fn bearer_secrets_are_checked() {
        let auth = Authenticator::new(
            None,
            Some(SharedSecret::bearer(&Secret::new("s3cret-token"))),
        )
        .expect("configured");
        let check = |value: &[u8]| {
            auth.check(
                &with_header(&AUTHORIZATION, value),
                BODY,
                &Keys::default(),
                NOW,
            )
        };
        assert_eq!(check(b"Bearer s3cret-token"), Ok(()));
        assert_eq!(check(b"bearer s3cret-token"), Ok(()));
        assert_eq!(check(b"Bearer   s3cret-token"), Ok(()));
        assert_eq!(
            check(b"Bearer s3cret-tokeN"),
            Err(AuthError::WrongCredentials)
        );
        assert_eq!(check(b"Bearer s3cret"), Err(AuthError::WrongCredentials));
        assert_eq!(
            check(b"Bearer s3cret-token-and-more"),
            Err(AuthError::WrongCredentials)
        );
        for malformed in [
            &b"s3cret-token"[..],
            b"Bearer",
            b"Bearer ",
            b"Basic s3cret-token",
            b"Bearers3cret-token",
            b"Bearer s3cret token",
            b"Bearer s3cret-token\xff",
        ] {
            assert_eq!(
                check(malformed),
                Err(AuthError::MalformedCredentials),
                "{malformed:?}"
            );
        }
        assert_eq!(
            auth.check(&HeaderMap::new(), BODY, &Keys::default(), NOW),
            Err(AuthError::MissingCredentials)
        );
        let mut twice = with_header(&AUTHORIZATION, b"Bearer s3cret-token");
        twice.append(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-token"),
        );
        assert_eq!(
            auth.check(&twice, BODY, &Keys::default(), NOW),
            Err(AuthError::RepeatedCredentials)
        );
    }

    #[test]
    fn basic_credentials_are_checked() {
        let auth = Authenticator::new(
            None,
            Some(SharedSecret::basic(
                "fusionauth",
                &Secret::new("pa:ss word"),
            )),
        )
        .expect("configured");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let check = |value: String| {
            auth.check(
                &with_header(&AUTHORIZATION, value.as_bytes()),
                BODY,
                &Keys::default(),
                NOW,
            )
        };
        assert_eq!(
            check(format!("Basic {}", b64("fusionauth:pa:ss word"))),
            Ok(())
        );
        assert_eq!(
            check(format!("BASIC {}", b64("fusionauth:pa:ss word"))),
            Ok(())
        );
        assert_eq!(
            check(format!("Basic {}", b64("fusionauth:pa:ss wordx"))),
            Err(AuthError::WrongCredentials)
        );
        assert_eq!(
            check(format!("Basic {}", b64("other:pa:ss word"))),
            Err(AuthError::WrongCredentials)
        );
        assert_eq!(
            check(format!("Basic {}", b64("fusionauth"))),
            Err(AuthError::WrongCredentials)
        );
        for malformed in [
            "Basic".to_owned(),
            "Basic !!!".to_owned(),
            format!("Bearer {}", b64("fusionauth:pa:ss word")),
            // Unpadded or URL-safe base64: not RFC 7617's encoding.
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD_NO_PAD.encode("fusionauth:xy")
            ),
        ] {
            assert_eq!(
                check(malformed.clone()),
                Err(AuthError::MalformedCredentials),
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_custom_secret_header_is_checked() {
        let name = HeaderName::from_static("x-webhook-secret");
        let auth = Authenticator::new(
            None,
            Some(SharedSecret::header(name.clone(), &Secret::new("abc"))),
        )
        .expect("configured");
        let keys = Keys::default();
        assert_eq!(
            auth.check(&with_header(&name, b"abc"), BODY, &keys, NOW),
            Ok(())
        );
        assert_eq!(
            auth.check(&with_header(&name, b"abd"), BODY, &keys, NOW),
            Err(AuthError::WrongCredentials)
        );
        assert_eq!(
            auth.check(&with_header(&AUTHORIZATION, b"abc"), BODY, &keys, NOW),
            Err(AuthError::MissingCredentials)
        );
    }

    #[test]
    fn with_both_configured_both_are_required() {
        let auth = Authenticator::new(
            SignatureCheck::new(Some(HMAC), false, vec![Algorithm::HS256], 5),
            Some(SharedSecret::bearer(&Secret::new("s3cret"))),
        )
        .expect("configured");
        let token = testing::sign_hs(HMAC, &json!({DIGEST_CLAIM: digest_of(BODY)}));
        let mut both = signed_headers(&token);
        both.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        let keys = Keys::default();
        assert_eq!(auth.check(&both, BODY, &keys, NOW), Ok(()));
        assert_eq!(
            auth.check(&signed_headers(&token), BODY, &keys, NOW),
            Err(AuthError::MissingCredentials)
        );
        let secret_only = with_header(&AUTHORIZATION, b"Bearer s3cret");
        assert_eq!(
            auth.check(&secret_only, BODY, &keys, NOW),
            Err(AuthError::MissingSignature)
        );
    }

    #[test]
    fn nothing_configured_means_no_authenticator() {
        assert!(Authenticator::new(None, None).is_none());
        // A signature check no key could ever satisfy is no check.
        assert!(SignatureCheck::new(None, false, vec![Algorithm::HS256], 5).is_none());
        assert!(SignatureCheck::new(Some(HMAC), false, vec![Algorithm::RS256], 5).is_none());
        assert!(SignatureCheck::new(None, true, vec![Algorithm::HS256], 5).is_none());
        assert!(SignatureCheck::new(Some(HMAC), true, vec![], 5).is_none());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let auth = Authenticator::new(
            SignatureCheck::new(Some(HMAC), false, vec![Algorithm::HS256], 5),
            Some(SharedSecret::basic("user", &Secret::new("hunter2"))),
        )
        .expect("configured");
        let debug = format!("{auth:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("webhook hmac key"), "{debug}");
    }
}
