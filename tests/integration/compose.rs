//! The FusionAuth setup (`docker-compose.yml`, `examples/fusionauth/`) holds
//! together without a container engine: Compose accepts the file and finds
//! every service; FusionAuth's kickstart creates what the gateway's config
//! names (the applications are the clients, with their secrets, the password
//! and refresh-token grants, refresh tokens, the RS256 key, the issuer, the
//! API key allowed to revoke); and the gateway accepts its config.
//!
//! `docker-compose config` needs Compose (Debian's `docker-compose`, v1) but
//! no Docker engine; when it is missing the test fails and says what to install.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// The repository root, where `docker-compose.yml` lives.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

const COMPOSE_INSTALL_HINT: &str = "install with: sudo apt-get install -y docker-compose";

/// The services the setup is made of.
const SERVICES: [&str; 5] = ["db", "fusionauth", "store", "forums", "gateway"];

/// A cookie key for parsing `gateway.toml`, which leaves it to the
/// environment (`GATEWAY_SESSION__COOKIE_KEY`).
const TEST_COOKIE_KEY: &str = "compose test cookie key, not a secret, 32+ bytes";

/// Kickstart's own variables (`#{FUSIONAUTH_APPLICATION_ID}` and friends),
/// which a kickstart file uses without defining them.
const KICKSTART_BUILTINS: [&str; 4] = [
    "FUSIONAUTH_APPLICATION_ID",
    "FUSIONAUTH_TENANT_ID",
    "FUSIONAUTH_DEFAULT_SIGNING_KEY_ID",
    "TENANT_MANAGER_ID",
];

fn read(relative: &str) -> String {
    let path = format!("{ROOT}/{relative}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Runs `docker-compose -f docker-compose.yml <args>` at the repository root
/// and returns its standard output; fails the test if Compose is missing or
/// refuses the file.
fn compose(args: &[&str]) -> String {
    let output = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml"])
        .args(args)
        .current_dir(ROOT)
        // Interpolation must not pick up anything from the developer's shell.
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("docker-compose is not installed; {COMPOSE_INSTALL_HINT}")
        }
        Err(e) => panic!("cannot run docker-compose ({e}); {COMPOSE_INSTALL_HINT}"),
    };
    assert!(
        output.status.success(),
        "docker-compose {} refused docker-compose.yml ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("docker-compose prints UTF-8")
}

/// `examples/fusionauth/gateway.toml`, parsed and validated as the gateway
/// does, with the cookie key the compose file supplies from the environment.
fn gateway_config() -> gateway::Config {
    let text = read("examples/fusionauth/gateway.toml");
    assert!(
        !text.contains("cookie_key ="),
        "gateway.toml must leave session.cookie_key to GATEWAY_SESSION__COOKIE_KEY"
    );
    let text = text.replacen(
        "[session]\n",
        &format!("[session]\ncookie_key = {TEST_COOKIE_KEY:?}\n"),
        1,
    );
    gateway::Config::from_toml(&text)
        .unwrap_or_else(|e| panic!("examples/fusionauth/gateway.toml is refused: {e}"))
}

/// Replaces every `#{name}` in `s` with the kickstart variable `name`;
/// environment variables, kickstart's built-in variables and `UUID()` stay.
/// An undefined variable fails the test (FusionAuth would fail the kickstart).
fn substitute(s: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("#{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("unterminated #{{…}} in {s:?}"));
        let name = &after[..end];
        match variables.get(name) {
            Some(value) => out.push_str(value),
            None if name.starts_with("ENV.")
                || name == "UUID()"
                || KICKSTART_BUILTINS.contains(&name)
                || (name.starts_with("FUSIONAUTH_") && name.ends_with("_ID")) =>
            {
                out.push_str(&rest[start..start + 2 + end + 1]);
            }
            None => panic!("kickstart.json uses #{{{name}}}, which no variable defines"),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn resolve(value: &Value, variables: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(substitute(s, variables)),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, variables)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve(v, variables)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `examples/fusionauth/kickstart.json` with its variables substituted.
fn kickstart() -> Value {
    let text = read("examples/fusionauth/kickstart.json");
    let raw: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("kickstart.json is not JSON (kickstart allows no comments): {e}")
    });
    let mut variables = BTreeMap::new();
    if let Some(vars) = raw["variables"].as_object() {
        for (name, value) in vars {
            let value = value
                .as_str()
                .unwrap_or_else(|| panic!("kickstart variable {name} is not a string"));
            // A variable may use the ones defined before it.
            let value = substitute(value, &variables);
            variables.insert(name.clone(), value);
        }
    }
    resolve(&raw, &variables)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

fn strings_at(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no array at {pointer} in {value}"))
        .iter()
        .map(|v| v.as_str().expect("array of strings").to_owned())
        .collect()
}

/// The kickstart requests, each as (method, url, body).
fn requests(kickstart: &Value) -> Vec<(&str, &str, &Value)> {
    kickstart["requests"]
        .as_array()
        .expect("kickstart.json has a requests array")
        .iter()
        .map(|r| (str_at(r, "/method"), str_at(r, "/url"), &r["body"]))
        .collect()
}

/// The application created with id `id`.
fn application<'a>(kickstart: &'a Value, id: &str) -> &'a Value {
    let url = format!("/api/application/{id}");
    let found: Vec<&Value> = requests(kickstart)
        .into_iter()
        .filter(|(method, u, _)| *method == "POST" && *u == url)
        .map(|(_, _, body)| &body["application"])
        .collect();
    assert_eq!(
        found.len(),
        1,
        "kickstart.json must create application {id} exactly once (POST {url})"
    );
    found[0]
}

/// Per user id: the user's e-mail (if the request creates the user) and the
/// (application id, roles) of every registration the kickstart makes.
type Registrations = BTreeMap<String, (Option<String>, Vec<(String, Vec<String>)>)>;

fn registrations(kickstart: &Value) -> Registrations {
    let mut users: Registrations = BTreeMap::new();
    for (method, url, body) in requests(kickstart) {
        let Some(user_id) = url.strip_prefix("/api/user/registration/") else {
            continue;
        };
        assert_eq!(method, "POST", "{url}: registrations are created with POST");
        let entry = users.entry(user_id.to_owned()).or_default();
        if let Some(email) = body.pointer("/user/email").and_then(Value::as_str) {
            assert!(entry.0.is_none(), "user {user_id} is created twice");
            assert!(
                body.pointer("/user/password")
                    .and_then(Value::as_str)
                    .is_some(),
                "user {email} has no password"
            );
            entry.0 = Some(email.to_owned());
        } else {
            assert!(
                entry.0.is_some(),
                "{url}: a registration without `user` must follow the request creating the user"
            );
        }
        let app = str_at(body, "/registration/applicationId").to_owned();
        let roles = body
            .pointer("/registration/roles")
            .map(|_| strings_at(body, "/registration/roles"))
            .unwrap_or_default();
        entry.1.push((app, roles));
    }
    users
}

#[test]
fn compose_file_is_valid_and_has_every_service() {
    let services = compose(&["config", "--services"]);
    let services: Vec<&str> = services.lines().map(str::trim).collect();
    for service in SERVICES {
        assert!(
            services.contains(&service),
            "docker-compose.yml has no service {service:?} (has {services:?})"
        );
    }

    let config = compose(&["config"]);
    for expected in [
        // Pinned images.
        "image: fusionauth/fusionauth-app:1.",
        "image: postgres:16",
        // The gateway and the demo apps come from the repository's Dockerfile.
        "dockerfile: examples/docker/Dockerfile",
        "target: gateway",
        "target: demo-apps",
        // FusionAuth is configured by the kickstart, on PostgreSQL, without a search engine.
        "FUSIONAUTH_APP_KICKSTART_FILE: /usr/local/fusionauth/kickstart/kickstart.json",
        "examples/fusionauth/kickstart.json:/usr/local/fusionauth/kickstart/kickstart.json:ro",
        "DATABASE_URL: jdbc:postgresql://db:5432/fusionauth",
        "SEARCH_TYPE: database",
        "FUSIONAUTH_APP_RUNTIME_MODE: development",
        // The gateway's config and cookie key.
        "examples/fusionauth/gateway.toml:/etc/gateway/config.toml:ro",
        "GATEWAY_SESSION__COOKIE_KEY:",
        // The gateway starts once FusionAuth (and so PostgreSQL) is healthy.
        "condition: service_healthy",
        // Published: the gateway, and FusionAuth's admin UI (the tokens' issuer).
        "published: 8080",
        "127.0.0.1:9011:9011",
        // The demo apps listen where gateway.toml sends requests.
        "0.0.0.0:3001",
        "0.0.0.0:3002",
    ] {
        assert!(
            config.contains(expected),
            "`docker-compose config` has no {expected:?}:\n{config}"
        );
    }
    for service in SERVICES {
        let block = service_block(&config, service);
        if ["db", "fusionauth", "gateway"].contains(&service) {
            assert!(
                block.contains("healthcheck:"),
                "{service} has no healthcheck"
            );
        }
    }
    assert!(
        service_block(&config, "gateway").contains("/readyz"),
        "the gateway's healthcheck asks the admin listener's /readyz"
    );

    // FusionAuth counts as healthy once the kickstart created the forums
    // application (its public key is published): the id must be the one the
    // kickstart and the gateway use.
    let forums_id = gateway_config()
        .apps
        .iter()
        .find(|app| app.name == "forums")
        .and_then(|app| app.auth.as_ref())
        .map(|auth| auth.client.id.clone())
        .expect("gateway.toml has the forums app with login");
    assert!(
        service_block(&config, "fusionauth").contains(&format!("applicationId={forums_id}")),
        "FusionAuth's healthcheck must ask for the forums application {forums_id}"
    );
}

/// The lines of `service` in `docker-compose config` output: its name at
/// two spaces under `services:`, its keys indented deeper.
fn service_block(config: &str, service: &str) -> String {
    let header = format!("  {service}:");
    let mut lines = config.lines().skip_while(|line| *line != header);
    assert!(lines.next().is_some(), "no service {service} in:\n{config}");
    lines
        .take_while(|line| line.starts_with("    "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kickstart_creates_what_the_gateway_config_names() {
    let kickstart = kickstart();
    let config = gateway_config();
    let requests = requests(&kickstart);
    for (method, url, _) in &requests {
        assert!(
            ["POST", "PUT", "PATCH"].contains(method),
            "{url}: kickstart can only POST, PUT or PATCH (not {method})"
        );
        assert!(url.starts_with("/api/"), "{url}: not an API path");
    }

    // API keys: the first one (which runs the kickstart) is unrestricted; the
    // gateway's may DELETE /api/jwt/refresh (revocation at logout).
    let keys = kickstart["apiKeys"].as_array().expect("apiKeys array");
    assert!(!keys.is_empty(), "kickstart needs an API key");
    assert!(
        keys[0].get("permissions").is_none() && keys[0].get("tenantId").is_none(),
        "the first API key runs the kickstart and must be unrestricted"
    );
    let mut issuers = Vec::new();
    for app in &config.apps {
        let auth = app.auth.as_ref().expect("both apps have login");
        let idp = &auth.idp;
        let api_key = idp
            .api_key
            .as_ref()
            .expect("idp.api_key (revocation)")
            .expose();
        let key = keys
            .iter()
            .find(|k| k["key"].as_str() == Some(api_key))
            .unwrap_or_else(|| {
                panic!("the gateway's api_key is not one of kickstart.json's apiKeys")
            });
        if let Some(endpoints) = key.pointer("/permissions/endpoints") {
            let methods = endpoints["/api/jwt/refresh"]
                .as_array()
                .map(|m| m.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default();
            assert!(
                methods.contains(&"DELETE"),
                "the gateway's API key must be allowed DELETE /api/jwt/refresh (has {endpoints})"
            );
        }
        issuers.push(idp.issuer.clone().expect("idp.issuer"));
    }

    // The RS256 signing key the applications use, published in the JWKS.
    let generated: Vec<(&str, &Value)> = requests
        .iter()
        .filter_map(|(method, url, body)| {
            let id = url.strip_prefix("/api/key/generate/")?;
            assert_eq!(*method, "POST");
            Some((id, *body))
        })
        .collect();
    assert_eq!(
        generated.len(),
        1,
        "kickstart.json generates one signing key"
    );
    let (key_id, key) = generated[0];
    assert_eq!(
        str_at(key, "/key/algorithm"),
        "RS256",
        "an RSA key (published in the JWKS)"
    );

    // The tenant's issuer is the tokens' `iss`, which the gateway checks.
    let issuer = requests
        .iter()
        .find_map(|(method, url, body)| {
            (*method == "PATCH" && url.starts_with("/api/tenant/"))
                .then(|| str_at(body, "/tenant/issuer"))
        })
        .expect("kickstart.json sets the tenant's issuer (PATCH /api/tenant/…)");
    for configured in &issuers {
        assert_eq!(
            configured, issuer,
            "gateway idp.issuer vs the tenant's issuer"
        );
    }

    let users = registrations(&kickstart);
    assert_eq!(
        config.apps.len(),
        2,
        "gateway.toml has the store and forums apps"
    );
    for app in &config.apps {
        let auth = app.auth.as_ref().expect("login");
        let client_id = &auth.client.id;
        let application = application(&kickstart, client_id);
        let name = &app.name;
        // The client id is the application id, the secret its OAuth secret.
        assert_eq!(
            str_at(application, "/oauthConfiguration/clientSecret"),
            auth.client.secret.expose(),
            "{name}: client_secret differs from the application's oauthConfiguration.clientSecret"
        );
        let grants = strings_at(application, "/oauthConfiguration/enabledGrants");
        for grant in ["password", "refresh_token"] {
            assert!(
                grants.iter().any(|g| g == grant),
                "{name}: grant {grant} not enabled"
            );
        }
        let oauth = &application["oauthConfiguration"];
        assert_eq!(
            oauth["generateRefreshTokens"], true,
            "{name}: no refresh tokens"
        );
        assert_eq!(oauth["requireClientAuthentication"], true, "{name}");
        assert_eq!(oauth["clientAuthenticationPolicy"], "Required", "{name}");
        // FusionAuth 1.50+ leaves `email` out of access tokens under "Strict".
        assert_eq!(
            oauth["scopeHandlingPolicy"], "Compatibility",
            "{name}: the gateway sends the email claim upstream"
        );
        // FusionAuth refuses POST /api/jwt/refresh unless allowTokenRefresh.
        assert_eq!(
            application.pointer("/loginConfiguration/allowTokenRefresh"),
            Some(&Value::Bool(true)),
            "{name}: kind = \"fusionauth\" refreshes with /api/jwt/refresh"
        );
        let jwt = &application["jwtConfiguration"];
        assert_eq!(jwt["enabled"], true, "{name}: jwtConfiguration.enabled");
        assert_eq!(
            jwt["accessTokenKeyId"], key_id,
            "{name}: signed with the RS256 key"
        );
        let ttl = jwt["timeToLiveInSeconds"]
            .as_u64()
            .expect("timeToLiveInSeconds");
        assert!(
            (1..=300).contains(&ttl),
            "{name}: keep JWTs short (is {ttl} s)"
        );
        let refresh_minutes = jwt["refreshTokenTimeToLiveInMinutes"]
            .as_u64()
            .expect("refreshTokenTimeToLiveInMinutes is required with enabled = true");
        // The cookies live as long as the refresh token they carry.
        assert_eq!(
            auth.refresh_cookie.max_age.as_secs(),
            refresh_minutes * 60,
            "{name}: cookies.max_age vs refreshTokenTimeToLiveInMinutes"
        );
        assert!(
            ["Reusable", "OneTimeUse"].contains(&str_at(jwt, "/refreshTokenUsagePolicy")),
            "{name}: refreshTokenUsagePolicy"
        );
        assert!(
            auth.idp
                .algorithms
                .contains(&jsonwebtoken::Algorithm::RS256),
            "{name}: the gateway must accept RS256"
        );
        // Roles the gateway requires exist in the application.
        let roles: Vec<&str> = application["roles"]
            .as_array()
            .expect("application roles")
            .iter()
            .map(|r| str_at(r, "/name"))
            .collect();
        for role in &auth.required_roles {
            assert!(
                roles.contains(&role.as_str()),
                "{name}: role {role} is not defined"
            );
        }
        // Someone can log in, and holds the required roles.
        let registered: Vec<&Vec<String>> = users
            .values()
            .flat_map(|(_, regs)| regs.iter())
            .filter(|(app_id, _)| app_id == client_id)
            .map(|(_, roles)| roles)
            .collect();
        assert!(!registered.is_empty(), "{name}: no user is registered");
        for roles in registered {
            for role in &auth.required_roles {
                assert!(
                    roles.contains(role),
                    "{name}: a registered user lacks role {role}"
                );
            }
        }
    }

    // The demo users of the README log in to both apps.
    for email in ["richard@example.com", "monica@example.com"] {
        let (_, regs) = users
            .values()
            .find(|(e, _)| e.as_deref() == Some(email))
            .unwrap_or_else(|| panic!("kickstart.json does not create {email}"));
        for app in &config.apps {
            let client_id = &app.auth.as_ref().expect("login").client.id;
            assert!(
                regs.iter().any(|(id, _)| id == client_id),
                "{email} is not registered to {}",
                app.name
            );
        }
    }
}

#[test]
fn gateway_config_logs_in_at_fusionauth() {
    let config = gateway_config();
    assert_eq!(config.server.listen.port(), 8080, "compose publishes 8080");
    assert_eq!(
        config.server.admin_listen.map(|a| a.port()),
        Some(9090),
        "compose's healthcheck asks 127.0.0.1:9090/readyz"
    );
    let mut names = Vec::new();
    for app in &config.apps {
        names.push(app.name.as_str());
        let auth = app
            .auth
            .as_ref()
            .unwrap_or_else(|| panic!("{}: login is on", app.name));
        let idp = &auth.idp;
        assert_eq!(idp.kind, gateway::config::Kind::Fusionauth, "{}", app.name);
        assert!(
            !idp.discovery,
            "{}: iss differs from the in-network address",
            app.name
        );
        for (what, url) in [
            ("token_endpoint", idp.token_endpoint.as_ref()),
            ("jwks_uri", idp.jwks_uri.as_ref()),
            ("api_url", idp.api_url.as_ref()),
        ] {
            let url = url.unwrap_or_else(|| panic!("{}: idp.{what} is set", app.name));
            assert_eq!(
                url.host_str(),
                Some("fusionauth"),
                "{}: idp.{what} reaches FusionAuth on the compose network",
                app.name
            );
        }
        assert!(
            idp.scope.split(' ').any(|s| s == "offline_access"),
            "{}",
            app.name
        );
        assert!(
            !auth.jwt_cookie.secure,
            "{}: plain HTTP on localhost",
            app.name
        );
        let upstream_host = format!("http://{}:", app.name);
        assert!(
            app.upstream.url.starts_with(&upstream_host),
            "{}: upstream {} is the compose service",
            app.name,
            app.upstream.url
        );
    }
    assert_eq!(names, ["store", "forums"]);
}
