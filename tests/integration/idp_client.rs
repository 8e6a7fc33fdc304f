//! The IdP client against the test IdP: both dialects, both client
//! authentication methods, rotation, revocation, and the line between "the
//! IdP said no" and "the IdP could not be asked".

use std::sync::atomic::Ordering;
use std::time::Duration;

use gateway::auth::idp::{Endpoints, Idp, IdpError};
use gateway::config::{Client, ClientAuth, Kind, Secret};

use crate::support::idp::{TestIdp, API_KEY};

async fn idp() -> TestIdp {
    TestIdp::new()
        .client("store", "store-secret")
        .user("richard", "password1", "user-richard", &["customer"])
        .rotate_refresh()
        .start()
        .await
}

fn endpoints(idp: &TestIdp, kind: Kind) -> Endpoints {
    Endpoints {
        kind,
        token: idp.url("/oauth2/token"),
        jwt_refresh: Some(idp.url("/api/jwt/refresh")),
        revocation: Some(idp.url("/oauth2/revoke")),
        jwks: Some(idp.url("/.well-known/jwks.json")),
        api_key: Some(Secret::new(API_KEY)),
        scope: "openid offline_access".into(),
    }
}

fn client(auth: ClientAuth) -> Client {
    Client {
        id: "store".into(),
        secret: Secret::new("store-secret"),
        auth,
    }
}

#[tokio::test]
async fn password_grant_refresh_rotation_and_revocation_oauth2() {
    let test_idp = idp().await;
    let idp = Idp::new(endpoints(&test_idp, Kind::Oauth2), Duration::from_secs(2)).expect("client");
    for auth in [ClientAuth::ClientSecretBasic, ClientAuth::ClientSecretPost] {
        let c = client(auth);
        let tokens = idp
            .password_grant(&c, "richard", "password1")
            .await
            .expect("login");
        let first = tokens.refresh_token.expect("a refresh token");
        assert_eq!(tokens.access_token.split('.').count(), 3, "a JWT");

        let refreshed = idp.refresh(&c, &first, None).await.expect("refresh");
        let second = refreshed.refresh_token.expect("rotated");
        assert_ne!(first, second);
        // The used one is spent: a replay is refused, and counted.
        let replay = idp.refresh(&c, &first, None).await;
        assert!(
            matches!(replay, Err(IdpError::Rejected { status: 400 })),
            "{replay:?}"
        );

        idp.revoke(&c, &second).await.expect("revoke");
        assert!(!test_idp.refresh_token_active(&second));
        assert!(matches!(
            idp.refresh(&c, &second, None).await,
            Err(IdpError::Rejected { .. })
        ));
    }
    assert_eq!(test_idp.counters().replays.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn fusionauth_dialect_refreshes_and_revokes_through_its_api() {
    let test_idp = idp().await;
    let idp = Idp::new(
        endpoints(&test_idp, Kind::Fusionauth),
        Duration::from_secs(2),
    )
    .expect("client");
    let c = client(ClientAuth::ClientSecretBasic);
    let tokens = idp
        .password_grant(&c, "richard", "password1")
        .await
        .expect("login");
    let first = tokens.refresh_token.expect("refresh token");
    let refreshed = idp
        .refresh(&c, &first, Some(&tokens.access_token))
        .await
        .expect("refresh");
    let second = refreshed.refresh_token.expect("rotated");
    assert_ne!(first, second);
    idp.revoke(&c, &second)
        .await
        .expect("revoke with the API key");
    assert!(!test_idp.refresh_token_active(&second));
}

#[tokio::test]
async fn refusals_and_outages_are_told_apart() {
    let test_idp = idp().await;
    let idp = Idp::new(
        endpoints(&test_idp, Kind::Oauth2),
        Duration::from_millis(300),
    )
    .expect("client");
    let c = client(ClientAuth::ClientSecretBasic);

    for (user, pass) in [("richard", "wrong"), ("nobody", "password1")] {
        let e = idp.password_grant(&c, user, pass).await;
        assert!(
            matches!(e, Err(IdpError::Rejected { status: 400 })),
            "{e:?}"
        );
    }
    let wrong_client = Client {
        secret: Secret::new("not-the-secret"),
        ..client(ClientAuth::ClientSecretPost)
    };
    assert!(matches!(
        idp.password_grant(&wrong_client, "richard", "password1")
            .await,
        Err(IdpError::Rejected { status: 401 })
    ));

    test_idp.set_down(true);
    assert!(matches!(
        idp.password_grant(&c, "richard", "password1").await,
        Err(IdpError::Unavailable(_))
    ));
    test_idp.set_down(false);

    test_idp.set_delay(Duration::from_secs(2));
    assert!(matches!(
        idp.password_grant(&c, "richard", "password1").await,
        Err(IdpError::Unavailable(_))
    ));
    test_idp.set_delay(Duration::ZERO);

    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut nowhere = endpoints(&test_idp, Kind::Oauth2);
    nowhere.token = url::Url::parse(&format!("http://{gone}/oauth2/token")).expect("url");
    let idp = Idp::new(nowhere, Duration::from_millis(300)).expect("client");
    assert!(matches!(
        idp.password_grant(&c, "richard", "password1").await,
        Err(IdpError::Unavailable(_))
    ));
}

#[tokio::test]
async fn jwks_verify_the_tokens_the_idp_signs() {
    let test_idp = idp().await;
    let idp = Idp::new(endpoints(&test_idp, Kind::Oauth2), Duration::from_secs(2)).expect("client");
    let c = client(ClientAuth::ClientSecretBasic);
    let tokens = idp
        .password_grant(&c, "richard", "password1")
        .await
        .expect("login");
    let jwks = idp.fetch_jwks().await.expect("jwks");
    let keys = gateway::auth::verify::Keys::new(Some(&jwks), None);
    let policy = gateway::auth::verify::Policy {
        algorithms: vec![jsonwebtoken::Algorithm::RS256],
        issuer: Some(crate::support::idp::ISSUER.into()),
        audience: Some("store".into()),
        client_claim: "aud".into(),
        client_id: "store".into(),
        leeway: 5,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let verified =
        gateway::auth::verify::verify(&tokens.access_token, &keys, &policy, now).expect("verifies");
    let gateway::auth::verify::Verified::Valid(claims) = verified else {
        panic!("expected a valid token");
    };
    assert_eq!(claims.sub(), Some("user-richard"));
    assert_eq!(claims.list("roles"), ["customer"]);

    // After a key rotation, new tokens carry a kid the old key set lacks.
    test_idp.rotate_key();
    let tokens = idp
        .password_grant(&c, "richard", "password1")
        .await
        .expect("login");
    assert!(matches!(
        gateway::auth::verify::verify(&tokens.access_token, &keys, &policy, now),
        Err(gateway::auth::verify::VerifyError::UnknownKid(_))
    ));
    let keys = gateway::auth::verify::Keys::new(Some(&idp.fetch_jwks().await.expect("jwks")), None);
    assert!(gateway::auth::verify::verify(&tokens.access_token, &keys, &policy, now).is_ok());
    assert_eq!(test_idp.counters().jwks_fetches.load(Ordering::SeqCst), 2);
}
