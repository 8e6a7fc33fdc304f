//! FusionAuth webhook events, turned into revocation actions.
//!
//! Input: the raw body of a webhook request, already authenticated
//! ([`super::signature`]) and capped by the caller (64 KiB), and a fallback
//! token lifetime for events that carry none. Output: an [`Event`] with its
//! id (for the caller's duplicate check), kind and [`Action`]s, or a
//! [`ParseError`] naming the field at fault. A well-formed event of a type the
//! gateway does not act on is not an error: it parses as [`Kind::Ignored`]
//! with no actions, so FusionAuth sees a success and does not retry it.
//!
//! The body is `{"event": {...}}`. The fields read, as FusionAuth documents
//! them ("Events & Webhooks → Events", fusionauth.io/docs/extend/events-and-webhooks/events/,
//! one page per event type, and the example bodies that go with them):
//!
//! | field | type | where |
//! |---|---|---|
//! | `event.type` | string | every event |
//! | `event.id` | UUID | every event; "may be used to identify a duplicate event" |
//! | `event.createInstant` | Long, ms since the epoch | every event |
//! | `event.tenantId` | UUID | every event, "may not be returned if not applicable" |
//! | `event.userId` | UUID | `jwt.refresh-token.revoke`, when a user's tokens were revoked |
//! | `event.user.id` | UUID | `jwt.refresh-token.revoke` (since 1.8), `user.deactivate`, `user.delete`, `user.registration.delete` |
//! | `event.applicationId` | UUID | `jwt.refresh-token.revoke` (one application), `user.registration.delete` |
//! | `event.registration.applicationId` | UUID | `user.registration.delete` (the deleted registration) |
//! | `event.applicationTimeToLiveInSeconds` | Map<UUID, Integer> | `jwt.refresh-token.revoke`: each application's access-token TTL |
//! | `event.refreshToken.id` | UUID | `jwt.refresh-token.revoke` (since 1.37), "only returned when a single refresh token is revoked" |
//!
//! The rule behind the actions is FusionAuth's own, from the
//! `applicationTimeToLiveInSeconds` description: take `createInstant`, add
//! the application's TTL, and every access token issued before that instant
//! is invalid. Since 1.37 an access token's `sid` is its refresh token's id,
//! so a single revoked refresh token becomes a [`Action::Session`] and
//! leaves the user's other sessions alone.
//!
//! | event | action |
//! |---|---|
//! | `jwt.refresh-token.revoke` with `refreshToken` | `Session { sid: refreshToken.id }` |
//! | `jwt.refresh-token.revoke` with a user | `User`, for `applicationId` or every app |
//! | `jwt.refresh-token.revoke` with only `applicationId` | `App` (all of the application's tokens) |
//! | `user.deactivate`, `user.delete` | `User`, every app |
//! | `user.registration.delete` | `User`, that application |
//! | `jwt.public-key.update` | `RefetchKeys` |
//! | anything else | none ([`Kind::Ignored`]) |
//!
//! Types are strict: an id that is not a string, a `createInstant` that is
//! not a non-negative integer, a TTL that is negative or fractional, a body
//! that is not a JSON object, all refuse the event rather than guess. Every
//! identifier must also pass [`identifier`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::action::{identifier, Action};

/// What kind of event it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `jwt.refresh-token.revoke`: one refresh token, a user's, a user's for
    /// one application, or a whole application's, were revoked.
    RefreshTokenRevoke,
    /// `user.deactivate`: the user was locked ("soft delete").
    UserDeactivate,
    /// `user.delete`: the user was deleted.
    UserDelete,
    /// `user.registration.delete`: the user lost access to one application.
    RegistrationDelete,
    /// `jwt.public-key.update`: a signing key changed.
    PublicKeyUpdate,
    /// Any other type: acknowledged, nothing to do.
    Ignored,
}

impl Kind {
    /// The kind for an `event.type` value.
    fn of(event_type: &str) -> Kind {
        match event_type {
            "jwt.refresh-token.revoke" => Kind::RefreshTokenRevoke,
            "user.deactivate" => Kind::UserDeactivate,
            "user.delete" => Kind::UserDelete,
            "user.registration.delete" => Kind::RegistrationDelete,
            "jwt.public-key.update" => Kind::PublicKeyUpdate,
            _ => Kind::Ignored,
        }
    }
}

/// A parsed webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event.id`: the same for every delivery of one event, so a retried
    /// delivery can be recognised and skipped.
    pub id: String,
    /// `event.type`, as sent (for the logs).
    pub event_type: String,
    /// What the type means to the gateway.
    pub kind: Kind,
    /// `event.tenantId`, where present (a multi-tenant FusionAuth sends every
    /// tenant's events to a global webhook).
    pub tenant_id: Option<String>,
    /// What to do; empty for [`Kind::Ignored`].
    pub actions: Vec<Action>,
}

/// Why a body was refused. The caller answers 400 and logs it: FusionAuth
/// may retry, and a body that fails once fails again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all.
    #[error("body is not JSON")]
    Json,
    /// JSON, but not an object with an `event` object inside.
    #[error("body is not a FusionAuth event ({{\"event\": {{...}}}})")]
    NotAnEvent,
    /// A required field is absent.
    #[error("event field {0} is missing")]
    Missing(&'static str),
    /// A field has the wrong JSON type, or is not a usable identifier.
    #[error("event field {0} has the wrong type or value")]
    Invalid(&'static str),
    /// A revocation event that names no user, refresh token or application.
    #[error("revocation event names nothing to revoke")]
    NothingToRevoke,
}

/// Parses a webhook body. `fallback_ttl` (seconds) stands in for an
/// application's access-token lifetime where the event gives none: it should
/// be the longest access-token lifetime of any app behind the gateway.
pub fn parse(body: &[u8], fallback_ttl: u64) -> Result<Event, ParseError> {
    let root: Value = serde_json::from_slice(body).map_err(|_| ParseError::Json)?;
    let event = root
        .as_object()
        .and_then(|root| root.get("event"))
        .and_then(Value::as_object)
        .ok_or(ParseError::NotAnEvent)?;
    let fields = Fields(event);
    let event_type = fields.id("type")?.ok_or(ParseError::Missing("type"))?;
    let id = fields.id("id")?.ok_or(ParseError::Missing("id"))?;
    let tenant_id = fields.id("tenantId")?;
    let created = fields.integer("createInstant")?;
    let kind = Kind::of(&event_type);
    let at = || {
        created
            .map(Instant)
            .ok_or(ParseError::Missing("createInstant"))
    };
    let actions = match kind {
        Kind::RefreshTokenRevoke => vec![refresh_token_revoke(&fields, at()?, fallback_ttl)?],
        Kind::UserDeactivate | Kind::UserDelete => {
            let sub = user_id(&fields)?.ok_or(ParseError::Missing("user.id"))?;
            vec![at()?.user(sub, None, fallback_ttl)]
        }
        Kind::RegistrationDelete => {
            let sub = user_id(&fields)?.ok_or(ParseError::Missing("user.id"))?;
            // The top-level `applicationId` is the documented field; the
            // deleted registration carries the same id. A delete naming no
            // application at all (not seen from FusionAuth) revokes the user
            // everywhere: refusing too much is the safe side.
            let app = match fields.id("applicationId")? {
                Some(app) => Some(app),
                None => match fields.object("registration")? {
                    Some(registration) => Fields(registration)
                        .id("applicationId")
                        .map_err(|_| ParseError::Invalid("registration.applicationId"))?,
                    None => None,
                },
            };
            vec![at()?.user(sub, app, fallback_ttl)]
        }
        Kind::PublicKeyUpdate => vec![Action::RefetchKeys],
        Kind::Ignored => Vec::new(),
    };
    Ok(Event {
        id,
        event_type,
        kind,
        tenant_id,
        actions,
    })
}

/// `jwt.refresh-token.revoke`: a session, a user (for one app or all), or a
/// whole application.
fn refresh_token_revoke(
    fields: &Fields<'_>,
    at: Instant,
    fallback_ttl: u64,
) -> Result<Action, ParseError> {
    let ttls = ttl_map(fields)?;
    let refresh_token = match fields.object("refreshToken")? {
        Some(token) => {
            let token = Fields(token);
            let sid = token
                .id("id")
                .map_err(|_| ParseError::Invalid("refreshToken.id"))?
                .ok_or(ParseError::Missing("refreshToken.id"))?;
            let app = token
                .id("applicationId")
                .map_err(|_| ParseError::Invalid("refreshToken.applicationId"))?;
            Some((sid, app))
        }
        None => None,
    };
    let app = fields.id("applicationId")?;
    let user = user_id(fields)?;
    let ttl = |app: Option<&str>| ttl_for(ttls.as_ref(), app, fallback_ttl);
    if let Some((sid, token_app)) = refresh_token {
        let client_id = app.or(token_app);
        let until = at.until(ttl(client_id.as_deref()));
        return Ok(Action::Session {
            sid,
            client_id,
            until,
        });
    }
    match (user, app) {
        (Some(sub), app) => {
            let ttl = ttl(app.as_deref());
            Ok(at.user(sub, app, ttl))
        }
        (None, Some(client_id)) => Ok(Action::App {
            before: at.before(),
            until: at.until(ttl(Some(&client_id))),
            client_id,
        }),
        (None, None) => Err(ParseError::NothingToRevoke),
    }
}

/// The user an event is about: `event.userId` (the revoke event's own
/// field), else `event.user.id`.
fn user_id(fields: &Fields<'_>) -> Result<Option<String>, ParseError> {
    // Both are read, so that a mistyped one refuses the event whichever is
    // used.
    let user_id = fields.id("userId")?;
    let user = match fields.object("user")? {
        Some(user) => Fields(user)
            .id("id")
            .map_err(|_| ParseError::Invalid("user.id"))?,
        None => None,
    };
    Ok(user_id.or(user))
}

/// `applicationTimeToLiveInSeconds`, where present: application id → TTL.
fn ttl_map(fields: &Fields<'_>) -> Result<Option<BTreeMap<String, u64>>, ParseError> {
    const FIELD: &str = "applicationTimeToLiveInSeconds";
    let Some(map) = fields.object(FIELD)? else {
        return Ok(None);
    };
    map.iter()
        .map(|(app, ttl)| match ttl.as_u64() {
            Some(ttl) if identifier(app) => Ok((app.clone(), ttl)),
            _ => Err(ParseError::Invalid(FIELD)),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The access-token lifetime that bounds a revocation: the named
/// application's TTL from the event, or for every application the longest
/// TTL the event lists; never less than `fallback` when the event names no
/// application, since the map lists only applications FusionAuth revoked
/// refresh tokens of, and a user may hold an app's JWT without one.
fn ttl_for(ttls: Option<&BTreeMap<String, u64>>, app: Option<&str>, fallback: u64) -> u64 {
    match (ttls, app) {
        (Some(ttls), Some(app)) => ttls.get(app).copied().unwrap_or(fallback),
        (Some(ttls), None) => ttls.values().copied().fold(fallback, u64::max),
        (None, _) => fallback,
    }
}

/// `createInstant`, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy)]
struct Instant(u64);

impl Instant {
    /// The `before` bound: tokens whose `iat` (whole seconds, truncated) is
    /// at or before the event's second. A token issued later in that same
    /// second is refused too: the safe side of second granularity.
    fn before(self) -> u64 {
        self.0 / 1000
    }

    /// The event's time, rounded up to the second, plus `ttl`.
    fn until(self, ttl: u64) -> u64 {
        self.0.div_ceil(1000).saturating_add(ttl)
    }

    /// A [`Action::User`] at this instant.
    fn user(self, sub: String, client_id: Option<String>, ttl: u64) -> Action {
        Action::User {
            sub,
            client_id,
            before: self.before(),
            until: self.until(ttl),
        }
    }
}

/// Typed, named access to an event object's members.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    /// An identifier member: absent (or `null`) is `None`; anything but a
    /// string passing [`identifier`] is an error.
    fn id(&self, name: &'static str) -> Result<Option<String>, ParseError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if identifier(s) => Ok(Some(s.clone())),
            Some(_) => Err(ParseError::Invalid(name)),
        }
    }

    /// A non-negative integer member.
    fn integer(&self, name: &'static str) -> Result<Option<u64>, ParseError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or(ParseError::Invalid(name)),
        }
    }

    /// An object member.
    fn object(&self, name: &'static str) -> Result<Option<&Map<String, Value>>, ParseError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(_) => Err(ParseError::Invalid(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FALLBACK: u64 = 900;
    const USER: &str = "dfdbae16-4e65-42c2-9773-23dfd6f5671d";
    const APP: &str = "21a8893c-51b3-4964-8a50-6afb66ee8acd";
    const OTHER_APP: &str = "3c219e58-ed0e-4b18-ad48-f4f92793ae32";
    const EVENT_ID: &str = "e502168a-b469-45d9-a079-fd45f83e0406";
    /// `createInstant` of FusionAuth's example bodies, in ms.
    const CREATED_MS: u64 = 1_505_762_615_056;
    const CREATED: u64 = 1_505_762_615;

    fn parse_json(body: &Value) -> Result<Event, ParseError> {
        parse(body.to_string().as_bytes(), FALLBACK)
    }

    fn actions(body: &Value) -> Vec<Action> {
        parse_json(body).expect("parses").actions
    }

    /// FusionAuth's documented example for a single revoked refresh token
    /// (`jwt-refresh-token-revoke-user.json`), with the 1.37+ `refreshToken`.
    fn single_token_revoke() -> Value {
        json!({"event": {
            "applicationId": APP,
            "applicationTimeToLiveInSeconds": {APP: 600},
            "createInstant": CREATED_MS,
            "id": EVENT_ID,
            "tenantId": "e872a880-b14f-6d62-c312-cb40f22af465",
            "type": "jwt.refresh-token.revoke",
            "userId": USER,
            "user": {"active": true, "id": USER, "verified": true},
            "refreshToken": {
                "applicationId": APP,
                "id": "d1ee2c02-a4a7-44b2-9b57-0d0f3b6ba9a6",
                "insertInstant": 1_505_762_000_000u64,
                "userId": USER
            }
        }})
    }

    fn remove(mut body: Value, field: &str) -> Value {
        body["event"]
            .as_object_mut()
            .expect("event object")
            .remove(field);
        body
    }

    fn set(mut body: Value, field: &str, value: Value) -> Value {
        body["event"][field] = value;
        body
    }

    #[test]
    fn a_single_revoked_refresh_token_revokes_its_session_only() {
        let event = parse_json(&single_token_revoke()).expect("parses");
        assert_eq!(event.id, EVENT_ID);
        assert_eq!(event.kind, Kind::RefreshTokenRevoke);
        assert_eq!(
            event.tenant_id.as_deref(),
            Some("e872a880-b14f-6d62-c312-cb40f22af465")
        );
        assert_eq!(
            event.actions,
            [Action::Session {
                sid: "d1ee2c02-a4a7-44b2-9b57-0d0f3b6ba9a6".into(),
                client_id: Some(APP.into()),
                // 1505762615.056 s rounded up, plus the app's 600 s.
                until: CREATED + 1 + 600,
            }]
        );
    }

    #[test]
    fn a_users_revoked_tokens_for_one_app_revoke_the_user_there() {
        let body = remove(single_token_revoke(), "refreshToken");
        assert_eq!(
            actions(&body),
            [Action::User {
                sub: USER.into(),
                client_id: Some(APP.into()),
                before: CREATED,
                until: CREATED + 1 + 600,
            }]
        );
        // The named app's TTL missing from the map: the fallback.
        let body = set(
            body,
            "applicationTimeToLiveInSeconds",
            json!({OTHER_APP: 60}),
        );
        assert!(matches!(
            actions(&body)[..],
            [Action::User { until, .. }] if until == CREATED + 1 + FALLBACK
        ));
    }

    #[test]
    fn all_of_a_users_tokens_revoked_covers_every_app_for_the_longest_ttl() {
        // FusionAuth's `jwt-refresh-token-revoke-all-user.json`: no
        // applicationId, no refreshToken.
        let body = json!({"event": {
            "applicationTimeToLiveInSeconds": {APP: 600, OTHER_APP: 3600},
            "createInstant": CREATED_MS,
            "id": EVENT_ID,
            "info": {"ipAddress": "42.42.42.42"},
            "type": "jwt.refresh-token.revoke",
            "userId": USER,
            "user": {"id": USER}
        }});
        assert_eq!(
            actions(&body),
            [Action::User {
                sub: USER.into(),
                client_id: None,
                before: CREATED,
                until: CREATED + 1 + 3600,
            }]
        );
        // Shorter TTLs than the fallback: the fallback bounds it.
        let body = set(body, "applicationTimeToLiveInSeconds", json!({APP: 60}));
        assert!(matches!(
            actions(&body)[..],
            [Action::User { until, .. }] if until == CREATED + 1 + FALLBACK
        ));
        // No map at all: the fallback.
        let body = remove(body, "applicationTimeToLiveInSeconds");
        assert!(matches!(
            actions(&body)[..],
            [Action::User { until, .. }] if until == CREATED + 1 + FALLBACK
        ));
    }

    #[test]
    fn the_user_comes_from_user_id_when_user_id_field_is_absent() {
        let body = remove(remove(single_token_revoke(), "refreshToken"), "userId");
        assert!(matches!(
            &actions(&body)[..],
            [Action::User { sub, .. }] if sub == USER
        ));
    }

    #[test]
    fn all_of_an_applications_tokens_revoked_revokes_the_app() {
        // FusionAuth's `jwt-refresh-token-revoke-application.json` shape.
        let body = json!({"event": {
            "applicationId": APP,
            "applicationTimeToLiveInSeconds": {APP: 600},
            "createInstant": CREATED_MS,
            "id": EVENT_ID,
            "type": "jwt.refresh-token.revoke"
        }});
        assert_eq!(
            actions(&body),
            [Action::App {
                client_id: APP.into(),
                before: CREATED,
                until: CREATED + 1 + 600,
            }]
        );
        // Neither a user, nor a token, nor an application: refused.
        assert_eq!(
            parse_json(&remove(body, "applicationId")),
            Err(ParseError::NothingToRevoke)
        );
    }

    #[test]
    fn user_deactivate_and_delete_revoke_the_user_everywhere() {
        for (event_type, kind) in [
            ("user.deactivate", Kind::UserDeactivate),
            ("user.delete", Kind::UserDelete),
        ] {
            // Abridged from FusionAuth's `user-deactivate.json`.
            let body = json!({"event": {
                "createInstant": 1_629_912_352_952u64,
                "id": "6c854b61-8e16-45db-b9ac-9465255b0fae",
                "tenantId": "a743e2cd-55bb-789c-b076-8846fdd3a51f",
                "type": event_type,
                "user": {
                    "active": false,
                    "id": "7b6c267c-4a31-47a4-8c19-11aa40dbd304",
                    "registrations": [{"applicationId": APP, "roles": ["USER"]}]
                }
            }});
            let event = parse_json(&body).expect("parses");
            assert_eq!(event.kind, kind);
            assert_eq!(
                event.actions,
                [Action::User {
                    sub: "7b6c267c-4a31-47a4-8c19-11aa40dbd304".into(),
                    client_id: None,
                    before: 1_629_912_352,
                    until: 1_629_912_353 + FALLBACK,
                }]
            );
            assert_eq!(
                parse_json(&remove(body, "user")),
                Err(ParseError::Missing("user.id"))
            );
        }
    }

    #[test]
    fn registration_delete_revokes_the_user_for_that_app() {
        let body = json!({"event": {
            "applicationId": APP,
            "createInstant": CREATED_MS,
            "id": EVENT_ID,
            "registration": {"applicationId": APP, "id": "reg-1", "roles": ["user"]},
            "type": "user.registration.delete",
            "user": {"id": USER}
        }});
        let expected = |client_id: Option<&str>| {
            vec![Action::User {
                sub: USER.into(),
                client_id: client_id.map(str::to_owned),
                before: CREATED,
                until: CREATED + 1 + FALLBACK,
            }]
        };
        assert_eq!(actions(&body), expected(Some(APP)));
        // Only the registration names the app.
        let body = remove(body, "applicationId");
        assert_eq!(actions(&body), expected(Some(APP)));
        // No app anywhere: the user, everywhere.
        let body = remove(body, "registration");
        assert_eq!(actions(&body), expected(None));
        // A registration with a non-string application id is refused.
        let body = set(body, "registration", json!({"applicationId": 7}));
        assert_eq!(
            parse_json(&body),
            Err(ParseError::Invalid("registration.applicationId"))
        );
    }

    #[test]
    fn a_key_update_refetches_keys_and_other_types_are_ignored() {
        let body = json!({"event": {
            "applicationIds": [APP],
            "createInstant": CREATED_MS,
            "id": EVENT_ID,
            "type": "jwt.public-key.update"
        }});
        let event = parse_json(&body).expect("parses");
        assert_eq!(event.kind, Kind::PublicKeyUpdate);
        assert_eq!(event.actions, [Action::RefetchKeys]);

        for other in [
            "user.login.success",
            "user.create",
            "jwt.refresh",
            "user.registration.create",
            "JWT.REFRESH-TOKEN.REVOKE",
            "jwt.refresh-token.revoke ",
            "test",
        ] {
            // Ignored events need no createInstant and no user.
            let body = json!({"event": {"id": EVENT_ID, "type": other}});
            let event = parse_json(&body).expect("parses");
            assert_eq!(event.kind, Kind::Ignored, "{other}");
            assert!(event.actions.is_empty(), "{other}");
            assert_eq!(event.event_type, other);
        }
    }

    #[test]
    fn bodies_that_are_not_events_are_refused() {
        for body in [&b""[..], b"{", b"{\"event\": {}", b"\xff\xfe", b"event=1"] {
            assert_eq!(parse(body, FALLBACK), Err(ParseError::Json), "{body:?}");
        }
        for body in [&b"null"[..], b"[]", b"\"event\"", b"42"] {
            assert_eq!(
                parse(body, FALLBACK),
                Err(ParseError::NotAnEvent),
                "{body:?}"
            );
        }
        for body in [
            json!({}),
            json!({"event": null}),
            json!({"event": []}),
            json!({"event": "jwt.refresh-token.revoke"}),
            json!({"type": "user.delete", "id": EVENT_ID}),
        ] {
            assert_eq!(parse_json(&body), Err(ParseError::NotAnEvent), "{body}");
        }
    }

    #[test]
    fn missing_or_mistyped_fields_are_refused() {
        let base = single_token_revoke();
        assert_eq!(
            parse_json(&remove(base.clone(), "type")),
            Err(ParseError::Missing("type"))
        );
        assert_eq!(
            parse_json(&remove(base.clone(), "id")),
            Err(ParseError::Missing("id"))
        );
        assert_eq!(
            parse_json(&remove(base.clone(), "createInstant")),
            Err(ParseError::Missing("createInstant"))
        );
        let cases: &[(&str, Value, &str)] = &[
            ("type", json!(7), "type"),
            ("type", json!(""), "type"),
            ("id", json!(12345), "id"),
            ("id", json!(["a"]), "id"),
            ("id", json!(""), "id"),
            ("id", json!("a\nb"), "id"),
            ("id", json!("x".repeat(256)), "id"),
            ("createInstant", json!("1505762615056"), "createInstant"),
            ("createInstant", json!(-1), "createInstant"),
            ("createInstant", json!(1.5e12), "createInstant"),
            ("createInstant", json!(true), "createInstant"),
            ("tenantId", json!(1), "tenantId"),
            ("userId", json!(42), "userId"),
            ("applicationId", json!({"id": APP}), "applicationId"),
            ("user", json!("someone"), "user"),
            ("refreshToken", json!("d1ee2c02"), "refreshToken"),
            ("refreshToken", json!({"id": 5}), "refreshToken.id"),
            (
                "refreshToken",
                json!({"id": "t", "applicationId": false}),
                "refreshToken.applicationId",
            ),
            (
                "applicationTimeToLiveInSeconds",
                json!([600]),
                "applicationTimeToLiveInSeconds",
            ),
            (
                "applicationTimeToLiveInSeconds",
                json!({APP: -600}),
                "applicationTimeToLiveInSeconds",
            ),
            (
                "applicationTimeToLiveInSeconds",
                json!({APP: 600.5}),
                "applicationTimeToLiveInSeconds",
            ),
            (
                "applicationTimeToLiveInSeconds",
                json!({APP: "600"}),
                "applicationTimeToLiveInSeconds",
            ),
            (
                "applicationTimeToLiveInSeconds",
                json!({"": 600}),
                "applicationTimeToLiveInSeconds",
            ),
        ];
        for (field, value, named) in cases {
            let body = set(base.clone(), field, value.clone());
            assert_eq!(
                parse_json(&body),
                Err(ParseError::Invalid(named)),
                "{field} = {value}"
            );
        }
        assert_eq!(
            parse_json(&set(base.clone(), "refreshToken", json!({}))),
            Err(ParseError::Missing("refreshToken.id"))
        );
        let body = set(remove(base, "userId"), "user", json!({"id": 1}));
        let body = remove(body, "refreshToken");
        assert_eq!(parse_json(&body), Err(ParseError::Invalid("user.id")));
    }

    #[test]
    fn explicit_nulls_count_as_absent() {
        let body = set(single_token_revoke(), "refreshToken", Value::Null);
        assert!(matches!(actions(&body)[..], [Action::User { .. }]));
        let body = set(single_token_revoke(), "tenantId", Value::Null);
        assert_eq!(parse_json(&body).expect("parses").tenant_id, None);
    }

    #[test]
    fn huge_times_and_ttls_saturate_instead_of_overflowing() {
        let body = set(
            set(
                remove(single_token_revoke(), "refreshToken"),
                "createInstant",
                json!(u64::MAX),
            ),
            "applicationTimeToLiveInSeconds",
            json!({APP: u64::MAX}),
        );
        assert!(matches!(
            actions(&body)[..],
            [Action::User { before, until, .. }]
                if before == u64::MAX / 1000 && until == u64::MAX
        ));
    }

    #[test]
    fn deeply_nested_bodies_are_refused_without_overflowing_the_stack() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse(deep.as_bytes(), FALLBACK), Err(ParseError::Json));
        let deep = format!(
            r#"{{"event": {{"id": "x", "type": "t", "info": {}{}}}}}"#,
            "{\"a\":".repeat(50_000),
            "}".repeat(50_000)
        );
        assert_eq!(parse(deep.as_bytes(), FALLBACK), Err(ParseError::Json));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A JSON value of bounded depth built from event-like pieces.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<u64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|f| json!(f)),
                "[a-zA-Z0-9.\\-\n ]{0,12}".prop_map(Value::String),
                Just(json!("jwt.refresh-token.revoke")),
                Just(json!("user.registration.delete")),
                Just(json!(APP)),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("type".to_owned()),
                            Just("id".to_owned()),
                            Just("userId".to_owned()),
                            Just("user".to_owned()),
                            Just("applicationId".to_owned()),
                            Just("createInstant".to_owned()),
                            Just("refreshToken".to_owned()),
                            Just("registration".to_owned()),
                            Just("applicationTimeToLiveInSeconds".to_owned()),
                            "[a-z]{1,6}",
                        ],
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse(&body, FALLBACK);
            }

            #[test]
            fn arbitrary_events_never_panic_and_actions_are_sound(
                inner in json_value(),
                ttl in any::<u64>(),
            ) {
                let body = json!({"event": inner});
                if let Ok(event) = parse(body.to_string().as_bytes(), ttl) {
                    prop_assert!(identifier(&event.id));
                    for action in &event.actions {
                        match action {
                            Action::User { sub, before, until, .. } => {
                                prop_assert!(identifier(sub));
                                prop_assert!(until >= before);
                            }
                            Action::Session { sid, .. } => prop_assert!(identifier(sid)),
                            Action::App { client_id, before, until } => {
                                prop_assert!(identifier(client_id));
                                prop_assert!(until >= before);
                            }
                            Action::RefetchKeys => {}
                        }
                    }
                }
            }
        }
    }
}
