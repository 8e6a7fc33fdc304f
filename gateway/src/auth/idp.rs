//! The identity provider client: password grant, refresh, revocation, JWKS.
//!
//! Input: the IdP's endpoints and kind, an app's client credentials, and the
//! user's credentials or refresh token. Output: [`Tokens`]. Failure: the IdP
//! said no ([`IdpError::Rejected`], any 4xx: wrong password, expired or
//! revoked refresh token; the caller shows the form again or sends the user
//! to log in) or the IdP could not be asked ([`IdpError::Unavailable`]:
//! refused, timed out, 5xx, unreadable answer; the caller answers 503 and
//! changes nothing, so an IdP outage never logs anyone out).
//!
//! Two dialects:
//! - `oauth2`: RFC 6749 token endpoint for both grants, RFC 7009 revocation.
//! - `fusionauth`: password grant on `/oauth2/token`; refresh with
//!   `POST /api/jwt/refresh` `{refreshToken, token}`, which returns a rotated
//!   refresh token explicitly; revocation with
//!   `DELETE /api/jwt/refresh?token=…` and an API key.
//!
//! Error bodies differ (FusionAuth: `invalid_grant` JSON; Glewlwyd: 403 with
//! an empty body), so only the status decides.
//!
//! No redirect is ever followed: a 307 or 308 from the token endpoint would
//! have the client post the user's password, a refresh token or the client
//! secret again to wherever `Location` points. Any 3xx is "unavailable".

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use url::Url;

use crate::config::{Client, ClientAuth, Kind, Secret};

/// Where the IdP is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Dialect.
    pub kind: Kind,
    /// Token endpoint (both grants for `oauth2`, the password grant for `fusionauth`).
    pub token: Url,
    /// FusionAuth's `/api/jwt/refresh`.
    pub jwt_refresh: Option<Url>,
    /// RFC 7009 revocation endpoint (`oauth2`).
    pub revocation: Option<Url>,
    /// JWKS, if tokens are signed with published keys.
    pub jwks: Option<Url>,
    /// FusionAuth API key, for revocation.
    pub api_key: Option<Secret>,
    /// `scope` sent with the password grant (FusionAuth returns a refresh
    /// token only for `offline_access`).
    pub scope: String,
}

/// What a successful grant returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The JWT.
    pub access_token: String,
    /// The refresh token, when issued (or rotated).
    pub refresh_token: Option<String>,
}

/// Why the IdP gave no tokens.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// The IdP answered with a 4xx (but 408 and 429): credentials or token
    /// refused.
    #[error("the identity provider refused: HTTP {status}")]
    Rejected {
        /// The status it answered with.
        status: u16,
    },
    /// The IdP could not be reached, timed out, failed (5xx), was busy (408,
    /// 429), redirected (3xx, never followed) or answered something
    /// unreadable.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
}

/// The IdP client: one pooled HTTPS client for every call.
#[derive(Debug, Clone)]
pub struct Idp {
    http: reqwest::Client,
    endpoints: Endpoints,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JwtRefreshResponse {
    token: String,
    refresh_token: Option<String>,
}

impl Idp {
    /// A client with `timeout` for every call.
    pub fn new(endpoints: Endpoints, timeout: Duration) -> Result<Idp, IdpError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IdpError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(Idp { http, endpoints })
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Resource owner password credentials grant (RFC 6749 §4.3).
    pub async fn password_grant(
        &self,
        client: &Client,
        username: &str,
        password: &str,
    ) -> Result<Tokens, IdpError> {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("scope", self.endpoints.scope.as_str()),
        ];
        self.token_request(client, &form).await
    }

    /// Exchanges a refresh token for a new JWT (and possibly a rotated
    /// refresh token). `access_token` is the expired JWT, which FusionAuth
    /// passes to its JWT refresh webhook.
    pub async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        access_token: Option<&str>,
    ) -> Result<Tokens, IdpError> {
        match (self.endpoints.kind, &self.endpoints.jwt_refresh) {
            (Kind::Fusionauth, Some(url)) => {
                let mut body = serde_json::json!({ "refreshToken": refresh_token });
                if let Some(token) = access_token {
                    body["token"] = serde_json::Value::String(token.to_owned());
                }
                let response = self
                    .http
                    .post(url.clone())
                    .json(&body)
                    .send()
                    .await
                    .map_err(unavailable)?;
                let parsed: JwtRefreshResponse = read_json(response).await?;
                Ok(Tokens {
                    access_token: parsed.token,
                    refresh_token: parsed.refresh_token,
                })
            }
            _ => {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ];
                self.token_request(client, &form).await
            }
        }
    }

    /// Revokes a refresh token. Revocation is best effort for the caller:
    /// the cookies are cleared whatever this returns.
    pub async fn revoke(&self, client: &Client, refresh_token: &str) -> Result<(), IdpError> {
        let request = match self.endpoints.kind {
            Kind::Fusionauth => {
                let Some(base) = &self.endpoints.jwt_refresh else {
                    return Err(IdpError::Unavailable(
                        "no FusionAuth API address configured".into(),
                    ));
                };
                let mut request = self
                    .http
                    .delete(base.clone())
                    .form(&[("token", refresh_token)]);
                if let Some(key) = &self.endpoints.api_key {
                    request = request.header(http::header::AUTHORIZATION, key.expose());
                }
                request
            }
            Kind::Oauth2 => {
                let Some(url) = &self.endpoints.revocation else {
                    return Err(IdpError::Unavailable(
                        "no revocation endpoint configured".into(),
                    ));
                };
                let form = [
                    ("token", refresh_token),
                    ("token_type_hint", "refresh_token"),
                ];
                authenticate(self.http.post(url.clone()), client, &form)
            }
        };
        let response = request.send().await.map_err(unavailable)?;
        check_status(response.status())
    }

    /// Revokes every refresh token of the user `user_id` (for one client,
    /// FusionAuth's application id, or all): FusionAuth's
    /// `DELETE /api/jwt/refresh?userId=…[&applicationId=…]`. An RFC 6749 IdP
    /// has no such call (RFC 7009 revokes one token the caller holds):
    /// [`IdpError::Unavailable`] says so.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<(), IdpError> {
        if self.endpoints.kind != Kind::Fusionauth {
            return Err(IdpError::Unavailable(
                "the IdP has no call revoking a user's tokens".into(),
            ));
        }
        let Some(base) = &self.endpoints.jwt_refresh else {
            return Err(IdpError::Unavailable(
                "no FusionAuth API address configured".into(),
            ));
        };
        let Some(key) = &self.endpoints.api_key else {
            return Err(IdpError::Unavailable(
                "no FusionAuth API key configured".into(),
            ));
        };
        let mut url = base.clone();
        url.query_pairs_mut().append_pair("userId", user_id);
        if let Some(client) = client_id {
            url.query_pairs_mut().append_pair("applicationId", client);
        }
        let response = self
            .http
            .delete(url)
            .header(http::header::AUTHORIZATION, key.expose())
            .send()
            .await
            .map_err(unavailable)?;
        check_status(response.status())
    }

    /// The IdP's published keys.
    pub async fn fetch_jwks(&self) -> Result<JwkSet, IdpError> {
        let Some(url) = &self.endpoints.jwks else {
            return Err(IdpError::Unavailable("no JWKS address configured".into()));
        };
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(unavailable)?;
        read_json(response).await
    }

    async fn token_request(
        &self,
        client: &Client,
        form: &[(&str, &str)],
    ) -> Result<Tokens, IdpError> {
        let request = authenticate(self.http.post(self.endpoints.token.clone()), client, form);
        let response = request.send().await.map_err(unavailable)?;
        let parsed: TokenResponse = read_json(response).await?;
        Ok(Tokens {
            access_token: parsed.access_token,
            refresh_token: parsed.refresh_token,
        })
    }
}

/// The endpoints OIDC discovery publishes.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovered {
    /// `token_endpoint`.
    pub token_endpoint: Url,
    /// `jwks_uri`.
    pub jwks_uri: Option<Url>,
    /// `revocation_endpoint` (RFC 8414).
    pub revocation_endpoint: Option<Url>,
}

/// Reads `{issuer}/.well-known/openid-configuration`.
pub async fn discover(issuer: &str, timeout: Duration) -> Result<Discovered, IdpError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| IdpError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
    let response = http.get(url).send().await.map_err(unavailable)?;
    read_json(response).await
}

/// Adds client authentication and the form body.
fn authenticate(
    request: reqwest::RequestBuilder,
    client: &Client,
    form: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    match client.auth {
        ClientAuth::ClientSecretBasic => {
            // RFC 6749 §2.3.1: form-encode id and secret before Basic.
            let encode =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let mut body: Vec<(&str, &str)> = form.to_vec();
            body.push(("client_id", client.id.as_str()));
            request
                .basic_auth(encode(&client.id), Some(encode(client.secret.expose())))
                .form(&body)
        }
        ClientAuth::ClientSecretPost => {
            let mut body: Vec<(&str, &str)> = form.to_vec();
            body.push(("client_id", client.id.as_str()));
            body.push(("client_secret", client.secret.expose()));
            request.form(&body)
        }
    }
}

fn unavailable(e: reqwest::Error) -> IdpError {
    IdpError::Unavailable(if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        e.to_string()
    })
}

fn check_status(status: reqwest::StatusCode) -> Result<(), IdpError> {
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        // Never followed (see the module docs); not a refusal either.
        Err(IdpError::Unavailable(format!(
            "HTTP {status}: redirects are not followed"
        )))
    } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        // The IdP is busy, not saying no: nobody gets logged out for it.
        Err(IdpError::Unavailable(format!("HTTP {status}")))
    } else if status.is_client_error() {
        Err(IdpError::Rejected {
            status: status.as_u16(),
        })
    } else {
        Err(IdpError::Unavailable(format!("HTTP {status}")))
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, IdpError> {
    check_status(response.status())?;
    response
        .json::<T>()
        .await
        .map_err(|e| IdpError::Unavailable(format!("unreadable answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let client = Client {
            id: "store".into(),
            secret: Secret::new("hunter2"),
            auth: ClientAuth::ClientSecretBasic,
        };
        let text = format!("{client:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn statuses_split_into_refused_and_unavailable() {
        assert!(check_status(reqwest::StatusCode::OK).is_ok());
        for refused in [400, 401, 403, 404] {
            let status = reqwest::StatusCode::from_u16(refused).expect("status");
            assert!(
                matches!(check_status(status), Err(IdpError::Rejected { status: s }) if s == refused)
            );
        }
        for down in [
            300, 301, 302, 303, 304, 307, 308, 408, 429, 500, 502, 503, 504,
        ] {
            let status = reqwest::StatusCode::from_u16(down).expect("status");
            assert!(matches!(
                check_status(status),
                Err(IdpError::Unavailable(_))
            ));
        }
    }
}
