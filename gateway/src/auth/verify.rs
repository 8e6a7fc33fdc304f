//! JWT verification: signature, algorithm allow-list, issuer, audience, the
//! client the token was issued to, and time.
//!
//! Input: the compact JWT from the session cookie, the current key set, the
//! app's [`Policy`], and `now` (seconds since the epoch: time is an input, so
//! every decision here is pure and tested without sleeping). Output:
//! [`Verified::Valid`], or [`Verified::Expired`] with the claims of a token
//! whose signature and every other check passed and which failed on time
//! alone: the only kind of token the refresh stage may act on (the article's
//! stolen-refresh-token attack). Failure: a [`VerifyError`] naming the check
//! that failed, for the logs; the client only ever learns "log in again".
//! [`verify_signature`] is the first half alone (header, key, signature) for
//! tokens with other claim rules: logout tokens, webhook signatures.
//!
//! The JOSE header is read by hand before anything else: a `crit` member
//! (RFC 7515 §4.1.11: extensions the recipient must understand; the gateway
//! understands none) or a `kid` that is not a string refuses the token. The
//! time claims `exp`, `nbf` and `iat` must be numbers where present (a string
//! `nbf` must not pass as "no `nbf`"), and `iat` may not lie in the future
//! beyond the leeway.
//!
//! Key selection: HMAC algorithms use the configured shared secret (FusionAuth
//! and Glewlwyd do not publish HMAC keys); asymmetric ones use the JWKS key
//! named by `kid`. The algorithm must be in the allow-list *and* of the key's
//! family, so an HS256 token signed with an RSA public key as the secret is
//! refused, and `none` never verifies.

use std::collections::HashMap;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// What a verified token says.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// A string claim.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// A numeric date claim (`exp`, `nbf`, `iat`), in whole seconds.
    pub fn time(&self, name: &str) -> Option<u64> {
        match self.0.get(name)? {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
            _ => None,
        }
    }

    /// A numeric date claim that must be a number if present (RFC 7519 §2
    /// NumericDate): absent is `Ok(None)`, a number before the epoch counts
    /// as the epoch, anything else (a string, `null`, …) is an error.
    pub fn numeric_date(&self, name: &'static str) -> Result<Option<u64>, VerifyError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(
                n.as_u64()
                    .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .unwrap_or(0),
            )),
            Some(_) => Err(VerifyError::ClaimType(name)),
        }
    }

    /// A claim that is a string, an array of strings, or a space-separated
    /// string (Glewlwyd puts its scopes in `aud` that way), as a list.
    pub fn list(&self, name: &str) -> Vec<&str> {
        match self.0.get(name) {
            Some(Value::String(s)) => s.split(' ').filter(|p| !p.is_empty()).collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The subject.
    pub fn sub(&self) -> Option<&str> {
        self.str("sub")
    }

    /// The session id (FusionAuth: the refresh token's id), where present.
    pub fn sid(&self) -> Option<&str> {
        self.str("sid")
    }
}

/// The checks an app applies to its tokens.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Algorithms accepted; anything else (and `none`, always) is refused.
    pub algorithms: Vec<Algorithm>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required member of `aud`, if set.
    pub audience: Option<String>,
    /// The claim naming the client the token was issued to (`aud`,
    /// `client_id` or `azp`), which must contain the app's client id.
    pub client_claim: String,
    /// The app's own client id.
    pub client_id: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
}

/// The keys tokens may be signed with.
#[derive(Clone, Default)]
pub struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    hmac: Option<DecodingKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: the HMAC secret never reaches a log.
        f.debug_struct("Keys")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("hmac", &self.hmac.is_some())
            .finish()
    }
}

impl Keys {
    /// Keys from a JWKS document, plus an optional HMAC shared secret.
    /// Keys without a `kid`, or of kinds jsonwebtoken cannot use, are skipped.
    pub fn new(jwks: Option<&JwkSet>, hmac_secret: Option<&[u8]>) -> Keys {
        let by_kid = jwks
            .map(|set| {
                set.keys
                    .iter()
                    .filter_map(|jwk| {
                        let kid = jwk.common.key_id.clone()?;
                        let key = DecodingKey::from_jwk(jwk).ok()?;
                        Some((kid, key))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Keys {
            by_kid,
            hmac: hmac_secret.map(DecodingKey::from_secret),
        }
    }

    /// Whether a key with this id is known.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Whether any key at all is loaded (readiness).
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty() && self.hmac.is_none()
    }
}

/// A token that passed every check but, possibly, time.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    /// Good now.
    Valid(Claims),
    /// Genuine, but past `exp` (beyond the leeway): a refresh candidate.
    Expired(Claims),
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT at all, or claims that are not a JSON object.
    #[error("malformed token")]
    Malformed,
    /// The header names extensions the recipient must understand (`crit`,
    /// RFC 7515 §4.1.11); the gateway understands none.
    #[error("critical header extensions the gateway does not understand")]
    Critical,
    /// A header member of the wrong type (a `kid` that is not a string).
    #[error("header member {0:?} has the wrong type")]
    HeaderType(&'static str),
    /// A time claim (`exp`, `nbf`, `iat`) that is not a number.
    #[error("claim {0:?} is not a number")]
    ClaimType(&'static str),
    /// The header's algorithm is not allowed, or does not fit the key.
    #[error("algorithm {0} not allowed")]
    Algorithm(String),
    /// No key with the token's `kid` (the caller may refetch the JWKS once).
    #[error("unknown key id {0:?}")]
    UnknownKid(String),
    /// An asymmetric token without `kid` while several keys are loaded, or an
    /// HMAC token with no secret configured.
    #[error("no key to verify with")]
    NoKey,
    /// The signature does not match.
    #[error("bad signature")]
    Signature,
    /// `iss` differs from the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` lacks the configured audience.
    #[error("wrong audience")]
    Audience,
    /// The token was issued to another client (another app).
    #[error("issued to another client")]
    Client,
    /// The token's session was ended (logout, or a revocation) before the
    /// token expired.
    #[error("session revoked")]
    Revoked,
    /// `nbf` is in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// `iat` is in the future beyond the leeway.
    #[error("issued in the future")]
    IssuedInFuture,
    /// No `exp`: such a token would never expire.
    #[error("no expiry")]
    NoExpiry,
}

/// A token whose JOSE header and signature passed, before any claim check.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    /// The JOSE header (never with `crit`).
    pub header: Map<String, Value>,
    /// The claims, unchecked.
    pub claims: Claims,
}

/// Verifies `token` at `now` (seconds since the epoch).
pub fn verify(
    token: &str,
    keys: &Keys,
    policy: &Policy,
    now: u64,
) -> Result<Verified, VerifyError> {
    let claims = verify_signature(token, keys, &policy.algorithms)?.claims;

    if let Some(issuer) = &policy.issuer {
        if claims.str("iss") != Some(issuer.as_str()) {
            return Err(VerifyError::Issuer);
        }
    }
    if let Some(audience) = &policy.audience {
        if !claims.list("aud").contains(&audience.as_str()) {
            return Err(VerifyError::Audience);
        }
    }
    if !claims
        .list(&policy.client_claim)
        .contains(&policy.client_id.as_str())
    {
        return Err(VerifyError::Client);
    }
    let exp = claims.numeric_date("exp")?;
    let nbf = claims.numeric_date("nbf")?;
    let iat = claims.numeric_date("iat")?;
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(policy.leeway)) {
        return Err(VerifyError::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > now.saturating_add(policy.leeway)) {
        return Err(VerifyError::IssuedInFuture);
    }
    let exp = exp.ok_or(VerifyError::NoExpiry)?;
    if now >= exp.saturating_add(policy.leeway) {
        Ok(Verified::Expired(claims))
    } else {
        Ok(Verified::Valid(claims))
    }
}

/// Checks `token`'s JOSE header, algorithm and signature, and nothing
/// else: the claims come back unchecked, for tokens whose claim rules differ
/// from an access token's (a logout token, a webhook signature). Key
/// selection and the algorithm rules are [`verify`]'s.
pub fn verify_signature(
    token: &str,
    keys: &Keys,
    algorithms: &[Algorithm],
) -> Result<Signed, VerifyError> {
    let header = jose_header(token)?;
    let alg = header
        .get("alg")
        .cloned()
        .and_then(|a| serde_json::from_value::<Algorithm>(a).ok())
        .ok_or(VerifyError::Malformed)?;
    if !algorithms.contains(&alg) {
        return Err(VerifyError::Algorithm(format!("{alg:?}")));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(VerifyError::HeaderType("kid")),
    };
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            keys.hmac.as_ref().ok_or(VerifyError::NoKey)?
        }
        _ => match kid {
            Some(kid) => keys
                .by_kid
                .get(kid)
                .ok_or_else(|| VerifyError::UnknownKid(kid.to_owned()))?,
            // Without `kid`, only an unambiguous key set will do.
            None if keys.by_kid.len() == 1 => {
                keys.by_kid.values().next().ok_or(VerifyError::NoKey)?
            }
            None => return Err(VerifyError::NoKey),
        },
    };
    if key.family() != alg.family() {
        return Err(VerifyError::Algorithm(format!("{alg:?}")));
    }

    // Signature only; every claim check is the caller's (`verify`'s for an
    // access token), so that an expired token is told apart from a forged one.
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName
            | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => {
                VerifyError::Algorithm(format!("{alg:?}"))
            }
            _ => VerifyError::Malformed,
        })?;
    Ok(Signed {
        header,
        claims: Claims(data.claims),
    })
}

/// The token's JOSE header as a JSON object, refused if it carries `crit`.
///
/// Read here rather than through `jsonwebtoken::decode_header`, whose
/// `Header` has a `crit` field it never enforces; the signature check below
/// parses the header again, once per token (verified tokens are cached).
fn jose_header(token: &str) -> Result<Map<String, Value>, VerifyError> {
    use base64::Engine;
    let encoded = token.split('.').next().ok_or(VerifyError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| VerifyError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?;
    // RFC 7515 §4.1.11: a recipient that does not understand every listed
    // extension must refuse the JWS; an empty or malformed `crit` is an
    // error too. The gateway understands no extension, so any `crit` goes.
    if header.contains_key("crit") {
        return Err(VerifyError::Critical);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const SECRET: &[u8] = b"an hmac secret of at least thirty-two bytes!";

    struct Rsa {
        encoding: EncodingKey,
        jwks: JwkSet,
        public_pem: String,
    }

    fn rsa(kid: &str) -> Rsa {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let encoding =
            EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).expect("encoding key");
        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        Rsa {
            encoding,
            jwks: JwkSet { keys: vec![jwk] },
            public_pem: pair.public_key_pem(),
        }
    }

    fn policy() -> Policy {
        Policy {
            algorithms: vec![Algorithm::RS256, Algorithm::HS256],
            issuer: Some("https://idp.example.com".into()),
            audience: Some("store-client".into()),
            client_claim: "aud".into(),
            client_id: "store-client".into(),
            leeway: 5,
        }
    }

    fn claims() -> Value {
        json!({
            "iss": "https://idp.example.com",
            "aud": "store-client",
            "sub": "user-1",
            "sid": "session-1",
            "iat": NOW - 10,
            "exp": NOW + 60,
        })
    }

    fn sign_rs(key: &Rsa, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
    }

    fn sign_hs(secret: &[u8], claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .expect("sign")
    }

    #[test]
    fn valid_rs256_token_verifies_by_kid() {
        let key = rsa("k1");
        let keys = Keys::new(Some(&key.jwks), None);
        let token = sign_rs(&key, Some("k1"), &claims());
        let Ok(Verified::Valid(c)) = verify(&token, &keys, &policy(), NOW) else {
            panic!("expected valid");
        };
        assert_eq!(c.sub(), Some("user-1"));
        assert_eq!(c.sid(), Some("session-1"));
    }

    #[test]
    fn valid_hs256_token_verifies_with_the_secret() {
        let keys = Keys::new(None, Some(SECRET));
        let token = sign_hs(SECRET, &claims());
        assert!(matches!(
            verify(&token, &keys, &policy(), NOW),
            Ok(Verified::Valid(_))
        ));
    }

    #[test]
    fn expiry_is_reported_with_the_claims_and_respects_leeway() {
        let keys = Keys::new(None, Some(SECRET));
        let token = sign_hs(SECRET, &claims());
        let exp = NOW + 60;
        assert!(matches!(
            verify(&token, &keys, &policy(), exp + 4),
            Ok(Verified::Valid(_))
        ));
        let Ok(Verified::Expired(c)) = verify(&token, &keys, &policy(), exp + 5) else {
            panic!("expected expired");
        };
        assert_eq!(c.sub(), Some("user-1"));
    }

    #[test]
    fn hostile_tokens_are_refused() {
        let key = rsa("k1");
        let keys = Keys::new(Some(&key.jwks), Some(SECRET));
        let good = sign_rs(&key, Some("k1"), &claims());
        let p = policy();

        // alg none, hand-built.
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims())
        );
        assert!(verify(&none, &keys, &p, NOW).is_err(), "alg none");

        // HS256 signed with the RSA public key as the secret (key confusion).
        let confused = sign_hs(key.public_pem.as_bytes(), &claims());
        assert_eq!(
            verify(&confused, &keys, &p, NOW),
            Err(VerifyError::Signature)
        );

        // Tampered payload: same signature, other subject.
        let parts: Vec<&str> = good.split('.').collect();
        let mut evil = claims();
        evil["sub"] = json!("admin");
        let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
        assert_eq!(
            verify(&tampered, &keys, &p, NOW),
            Err(VerifyError::Signature)
        );

        // Wrong issuer, wrong audience, nbf in the future, no exp.
        let mut c = claims();
        c["iss"] = json!("https://evil.example.com");
        assert_eq!(
            verify(&sign_rs(&key, Some("k1"), &c), &keys, &p, NOW),
            Err(VerifyError::Issuer)
        );
        let mut c = claims();
        c["aud"] = json!("forums-client");
        assert_eq!(
            verify(&sign_rs(&key, Some("k1"), &c), &keys, &p, NOW),
            Err(VerifyError::Audience)
        );
        let mut c = claims();
        c["nbf"] = json!(NOW + 60);
        assert_eq!(
            verify(&sign_rs(&key, Some("k1"), &c), &keys, &p, NOW),
            Err(VerifyError::NotYetValid)
        );
        let mut c = claims();
        c.as_object_mut().expect("object").remove("exp");
        assert_eq!(
            verify(&sign_rs(&key, Some("k1"), &c), &keys, &p, NOW),
            Err(VerifyError::NoExpiry)
        );

        // Signed by a key nobody published.
        let other = rsa("k2");
        assert_eq!(
            verify(&sign_rs(&other, Some("k2"), &claims()), &keys, &p, NOW),
            Err(VerifyError::UnknownKid("k2".into()))
        );
        // Garbage.
        assert_eq!(
            verify("not.a.jwt", &keys, &p, NOW),
            Err(VerifyError::Malformed)
        );
        assert_eq!(verify("", &keys, &p, NOW), Err(VerifyError::Malformed));
    }

    /// Signs `claims` with `key` under exactly the JOSE header `header`.
    fn sign_raw(key: &Rsa, header: &Value, claims: &Value) -> String {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let message = format!("{}.{}", b64(header), b64(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::RS256)
                .expect("sign");
        format!("{message}.{signature}")
    }

    #[test]
    fn headers_and_time_claims_it_cannot_honour_are_refused() {
        let key = rsa("k1");
        let keys = Keys::new(Some(&key.jwks), None);
        let p = policy();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "k1"});
        // Control: the hand-built token verifies.
        assert!(matches!(
            verify(&sign_raw(&key, &header, &claims()), &keys, &p, NOW),
            Ok(Verified::Valid(_))
        ));

        let with_header = |field: &str, value: Value| {
            let mut h = header.clone();
            h[field] = value;
            sign_raw(&key, &h, &claims())
        };
        for crit in [json!(["exp"]), json!([]), json!("b64"), json!(null)] {
            assert_eq!(
                verify(&with_header("crit", crit.clone()), &keys, &p, NOW),
                Err(VerifyError::Critical),
                "crit {crit}"
            );
        }
        for kid in [json!(1), json!(["k1"]), json!(null), json!({"k": "k1"})] {
            assert_eq!(
                verify(&with_header("kid", kid.clone()), &keys, &p, NOW),
                Err(VerifyError::HeaderType("kid")),
                "kid {kid}"
            );
        }

        let with_claim = |name: &str, value: Value| {
            let mut c = claims();
            c[name] = value;
            sign_rs(&key, Some("k1"), &c)
        };
        for name in ["exp", "nbf", "iat"] {
            for value in [json!("1800000000"), json!(null), json!(true)] {
                assert_eq!(
                    verify(&with_claim(name, value.clone()), &keys, &p, NOW),
                    Err(VerifyError::ClaimType(name)),
                    "{name} = {value}"
                );
            }
            // jsonwebtoken itself already fails on some shapes: refused either way.
            assert!(verify(&with_claim(name, json!([1])), &keys, &p, NOW).is_err());
        }
        // iat in the future: beyond the leeway refused, within it accepted.
        assert_eq!(
            verify(&with_claim("iat", json!(NOW + 6)), &keys, &p, NOW),
            Err(VerifyError::IssuedInFuture)
        );
        assert!(matches!(
            verify(&with_claim("iat", json!(NOW + 5)), &keys, &p, NOW),
            Ok(Verified::Valid(_))
        ));
        // Fractional and pre-epoch dates are still numbers.
        assert!(matches!(
            verify(&with_claim("iat", json!(-5)), &keys, &p, NOW),
            Ok(Verified::Valid(_))
        ));
        assert!(matches!(
            verify(
                &with_claim("nbf", json!((NOW - 1) as f64 + 0.5)),
                &keys,
                &p,
                NOW
            ),
            Ok(Verified::Valid(_))
        ));
        // A header that is not JSON, or has no usable alg.
        let claims_part = claims().to_string();
        for bad in [
            "bm90IGpzb24.e30.c2ln".to_owned(),
            sign_raw(&key, &json!({"kid": "k1"}), &claims()),
            sign_raw(&key, &json!({"alg": 7, "kid": "k1"}), &claims()),
        ] {
            assert_eq!(
                verify(&bad, &keys, &p, NOW),
                Err(VerifyError::Malformed),
                "{bad} {claims_part}"
            );
        }
    }

    #[test]
    fn algorithms_outside_the_allow_list_are_refused() {
        let keys = Keys::new(None, Some(SECRET));
        let mut p = policy();
        p.algorithms = vec![Algorithm::RS256];
        let token = sign_hs(SECRET, &claims());
        assert_eq!(
            verify(&token, &keys, &p, NOW),
            Err(VerifyError::Algorithm("HS256".into()))
        );
    }

    #[test]
    fn another_apps_token_is_refused_through_the_client_claim() {
        // Glewlwyd style: `aud` holds scopes, the client is in `client_id`.
        let keys = Keys::new(None, Some(SECRET));
        let mut p = policy();
        p.audience = None;
        p.client_claim = "client_id".into();
        let mut c = claims();
        c["aud"] = json!("openid gateway");
        c["client_id"] = json!("store-client");
        assert!(matches!(
            verify(&sign_hs(SECRET, &c), &keys, &p, NOW),
            Ok(Verified::Valid(_))
        ));
        c["client_id"] = json!("forums-client");
        assert_eq!(
            verify(&sign_hs(SECRET, &c), &keys, &p, NOW),
            Err(VerifyError::Client)
        );
    }

    #[test]
    fn list_claims_accept_strings_arrays_and_spaces() {
        let c = Claims(
            json!({"a": "x y", "b": ["x", "y"], "c": "x", "d": 3})
                .as_object()
                .cloned()
                .expect("object"),
        );
        assert_eq!(c.list("a"), ["x", "y"]);
        assert_eq!(c.list("b"), ["x", "y"]);
        assert_eq!(c.list("c"), ["x"]);
        assert!(c.list("d").is_empty());
        assert!(c.list("missing").is_empty());
    }
}
