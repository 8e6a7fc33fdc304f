//! Token builders for the tests of `events/`.
//!
//! Input: a key id, claims. Output: RSA keys with their JWKS, and compact
//! JWTs signed with them or with an HMAC secret.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// An RSA key pair, published under one key id.
pub struct Rsa {
    encoding: EncodingKey,
    /// The JWKS publishing the public key.
    pub jwks: JwkSet,
    /// The public key in PEM, for key-confusion tests.
    pub public_pem: String,
}

impl Rsa {
    /// A fresh 2048-bit key published as `kid`.
    pub fn new(kid: &str) -> Rsa {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let encoding =
            EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).expect("encoding key");
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        Rsa {
            encoding,
            jwks: JwkSet { keys: vec![jwk] },
            public_pem: pair.public_key_pem(),
        }
    }

    /// `claims` signed RS256 with this key, the header naming `kid`.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// `claims` signed RS256 under exactly the JOSE header `header`.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64url(header), b64url(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::RS256)
                .expect("sign");
        format!("{message}.{signature}")
    }
}

/// `claims` signed HS256 with `secret`.
pub fn sign_hs(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// A JSON value as a JWT segment.
pub fn b64url(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}
