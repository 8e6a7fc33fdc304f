//! The command line: `gateway check` accepts the shipped reference config and
//! refuses broken ones with exit code 2 and the offending key named;
//! `GATEWAY_…` environment variables override the file; `--version`, `--help`.

use std::path::Path;

use crate::support::process::{run, Finished, GatewayProcess};

/// The documented reference configuration at the workspace root.
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml");

/// A valid `[[apps]]` entry to complete configs that break something else.
const APP: &str = r#"
[[apps]]
name = "a"
hosts = ["a.test"]
upstream = "http://127.0.0.1:3001"
auth = false
"#;

/// An `[[apps]]` table without login; `hosts` is a TOML array as written.
fn app(name: &str, hosts: &str, upstream: &str) -> String {
    format!("[[apps]]\nname = {name:?}\nhosts = {hosts}\nupstream = {upstream:?}\nauth = false\n")
}

/// A minimal valid `[idp]` and `[session]` for apps with login.
const IDP: &str = r#"
[idp]
token_endpoint = "http://127.0.0.1:9011/oauth2/token"
jwks_uri = "http://127.0.0.1:9011/.well-known/jwks.json"
[session]
cookie_key = "0123456789abcdef0123456789abcdef"
"#;

/// An app with login; `extra` is appended to its table.
fn login_app(extra: &str) -> String {
    format!(
        "[[apps]]\nname = \"s\"\nhosts = [\"s.test\"]\nupstream = \"http://127.0.0.1:3001\"\n\
         client_id = \"s\"\nclient_secret = \"x\"\n{extra}\n"
    )
}

/// An app with login named `name` on `s.test` under `prefix`; `extra` is
/// appended to its table.
fn login_app_at(name: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[[apps]]\nname = {name:?}\nhosts = [\"s.test\"]\npath_prefix = {prefix:?}\n\
         upstream = \"http://127.0.0.1:3001\"\nclient_id = {name:?}\nclient_secret = \"x\"\n{extra}\n"
    )
}

/// An app without login named `name` on `s.test` under `prefix`.
fn app_at(name: &str, prefix: &str) -> String {
    format!(
        "[[apps]]\nname = {name:?}\nhosts = [\"s.test\"]\npath_prefix = {prefix:?}\n\
         upstream = \"http://127.0.0.1:3002\"\nauth = false\n"
    )
}

/// Writes `toml` to `gateway.toml` in a fresh temp dir (kept alive by the guard).
fn write_config(toml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).expect("write config");
    let path = path.to_str().expect("utf-8 temp path").to_owned();
    (dir, path)
}

/// `gateway check --config FILE` with `toml` as FILE and exactly `env`.
fn check(toml: &str, env: &[(&str, &str)]) -> Finished {
    let (_dir, path) = write_config(toml);
    run(&["check", "--config", &path], env)
}

#[test]
fn reference_config_passes_check() {
    let out = run(&["check", "--config", REFERENCE], &[]);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("config.toml: ok"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("app store: store.localhost / -> http://127.0.0.1:3001"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("app forums: forums.localhost / -> http://127.0.0.1:3002"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("listen 127.0.0.1:8080 (http), admin 127.0.0.1:9090"),
        "{}",
        out.stdout
    );
}

#[test]
fn reference_config_loads_in_process() {
    let config = gateway::Config::load(Path::new(REFERENCE)).expect("config.toml loads");
    let names: Vec<&str> = config.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["store", "forums"]);
    assert_eq!(config.apps[1].path_prefix, "/", "defaulted prefix");
    assert!(config.apps[1].preserve_host, "defaulted preserve_host");
}

/// config.toml says it lists "every key with its default": the values it
/// spells out must be the built-in defaults.
#[test]
fn reference_config_documents_the_defaults() {
    let text = std::fs::read_to_string(REFERENCE).expect("read config.toml");
    let file = gateway::Config::from_toml(&text).expect("config.toml is valid");
    let defaults = gateway::Config::from_toml(APP).expect("minimal config is valid");
    let (f, d) = (&file.server, &defaults.server);
    assert_eq!(f.listen, d.listen, "server.listen");
    assert_eq!(f.admin_listen, d.admin_listen, "server.admin_listen");
    assert_eq!(f.tls.is_some(), d.tls.is_some(), "server.tls");
    assert_eq!(f.worker_threads, d.worker_threads, "server.worker_threads");
    assert_eq!(
        f.header_read_timeout, d.header_read_timeout,
        "server.header_read_timeout"
    );
    assert_eq!(f.idle_timeout, d.idle_timeout, "server.idle_timeout");
    assert_eq!(
        f.idle_release_after, d.idle_release_after,
        "server.idle_release_after"
    );
    assert_eq!(
        f.max_header_bytes, d.max_header_bytes,
        "server.max_header_bytes"
    );
    assert_eq!(f.shutdown_grace, d.shutdown_grace, "server.shutdown_grace");
    assert_eq!(
        f.trusted_proxies, d.trusted_proxies,
        "server.trusted_proxies"
    );
    assert_eq!(
        f.trusted_only_headers, d.trusted_only_headers,
        "server.trusted_only_headers"
    );
    assert_eq!(
        f.underscores_in_headers, d.underscores_in_headers,
        "server.underscores_in_headers"
    );
    assert_eq!(f.http2, d.http2, "server.http2");
    assert_eq!(
        f.max_connections, d.max_connections,
        "server.max_connections"
    );
    assert_eq!(
        f.max_connections_per_ip, d.max_connections_per_ip,
        "server.max_connections_per_ip"
    );
    assert_eq!(
        f.http2_max_concurrent_streams, d.http2_max_concurrent_streams,
        "server.http2_max_concurrent_streams"
    );
    assert_eq!(
        f.http2_max_send_buf_size, d.http2_max_send_buf_size,
        "server.http2_max_send_buf_size"
    );
    assert_eq!(
        f.tunnel_idle_timeout, d.tunnel_idle_timeout,
        "server.tunnel_idle_timeout"
    );
    assert_eq!(
        f.tunnel_max_lifetime, d.tunnel_max_lifetime,
        "server.tunnel_max_lifetime"
    );
    let (f, d) = (&file.log, &defaults.log);
    assert_eq!(f.level, d.level, "log.level");
    assert_eq!(f.format, d.format, "log.format");
    assert_eq!(f.access, d.access, "log.access");
    let (f, d) = (&file.upstream, &defaults.upstream);
    assert_eq!(
        f.connect_timeout, d.connect_timeout,
        "upstream.connect_timeout"
    );
    assert_eq!(
        f.response_timeout, d.response_timeout,
        "upstream.response_timeout"
    );
    assert_eq!(
        f.pool_idle_timeout, d.pool_idle_timeout,
        "upstream.pool_idle_timeout"
    );
    assert_eq!(
        f.pool_max_idle_per_host, d.pool_max_idle_per_host,
        "upstream.pool_max_idle_per_host"
    );
    let (f, d) = (&file.store, &defaults.store);
    assert_eq!(f.kind, d.kind, "store.kind");
    assert_eq!(f.key_prefix, d.key_prefix, "store.key_prefix");
    assert_eq!(f.timeout, d.timeout, "store.timeout");
    // The Redis-only keys, with kind = "redis" in both.
    let redis = "kind = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"";
    let file_redis = gateway::Config::from_toml(&text.replace("kind = \"memory\"", redis))
        .expect("config.toml with a Redis store is valid");
    let defaults_redis = gateway::Config::from_toml(&format!("[store]\n{redis}\n{APP}"))
        .expect("minimal Redis config is valid");
    assert_eq!(
        file_redis.store.kind, defaults_redis.store.kind,
        "store.pool_size"
    );
    // [events]: every endpoint off, and the documented paths and times are
    // the defaults once an endpoint is on.
    assert!(file.events.webhook.is_none() && file.events.backchannel.is_none());
    assert!(file.events.admin_token.is_none());
    let on = "webhook_signing_idp_keys = true\nbackchannel = true";
    let file_on = gateway::Config::from_toml(
        &text
            .replace(
                "webhook_signing_idp_keys = false\n",
                "webhook_signing_idp_keys = true\n",
            )
            .replace("backchannel = false\n", "backchannel = true\n"),
    )
    .expect("config.toml with events on is valid");
    let defaults_on = gateway::Config::from_toml(&format!("[events]\n{on}\n{APP}"))
        .expect("minimal events config is valid");
    let (f, d) = (
        file_on.events.webhook.as_ref().expect("webhook on"),
        defaults_on.events.webhook.as_ref().expect("webhook on"),
    );
    assert_eq!(f.path, d.path, "events.webhook_path");
    assert_eq!(f.ttl, d.ttl, "events.webhook_ttl");
    let (f, d) = (
        file_on
            .events
            .backchannel
            .as_ref()
            .expect("back-channel on"),
        defaults_on
            .events
            .backchannel
            .as_ref()
            .expect("back-channel on"),
    );
    assert_eq!(f.path, d.path, "events.backchannel_path");
    assert_eq!(f.max_age, d.max_age, "events.backchannel_max_age");
    let (f, d) = (&file.apps[0], &defaults.apps[0]);
    assert_eq!(f.path_prefix, d.path_prefix, "apps[].path_prefix");
    assert_eq!(f.preserve_host, d.preserve_host, "apps[].preserve_host");

    // The login keys, against an app with login and nothing else set.
    let login = gateway::Config::from_toml(&format!("{IDP}{}", login_app("")))
        .expect("minimal login config is valid");
    let (f, d) = (&file.session, &login.session);
    assert_eq!(f.refresh_before, d.refresh_before, "session.refresh_before");
    assert_eq!(f.refresh_grace, d.refresh_grace, "session.refresh_grace");
    assert_eq!(f.strict_binding, d.strict_binding, "session.binding");
    assert_eq!(f.refresh_mode, d.refresh_mode, "session.refresh_mode");
    assert_eq!(f.cache_capacity, d.cache_capacity, "session.cache_capacity");
    let (f, d) = (&file.login, &login.login);
    assert_eq!(f.per_ip_burst, d.per_ip_burst, "login.per_ip_burst");
    assert_eq!(
        f.per_ip_per_minute, d.per_ip_per_minute,
        "login.per_ip_per_minute"
    );
    assert_eq!(f.per_user_burst, d.per_user_burst, "login.per_user_burst");
    assert_eq!(
        f.per_user_per_minute, d.per_user_per_minute,
        "login.per_user_per_minute"
    );
    assert_eq!(
        f.throttle_max_keys, d.throttle_max_keys,
        "login.throttle_max_keys"
    );
    assert_eq!(
        f.min_failure_time, d.min_failure_time,
        "login.min_failure_time"
    );
    assert_eq!(f.form_timeout, d.form_timeout, "login.form_timeout");
    let f = file.apps[0].auth.as_ref().expect("store has login");
    let d = login.apps[0].auth.as_ref().expect("login app");
    let (fi, di) = (&f.idp, &d.idp);
    assert_eq!(fi.scope, di.scope, "idp.scope");
    assert_eq!(fi.algorithms, di.algorithms, "idp.algorithms");
    assert_eq!(fi.audience, di.audience, "idp.audience");
    assert_eq!(fi.client_claim, di.client_claim, "idp.client_claim");
    assert_eq!(fi.identity_claim, di.identity_claim, "idp.identity_claim");
    assert_eq!(fi.email_claim, di.email_claim, "idp.email_claim");
    assert_eq!(fi.roles_claim, di.roles_claim, "idp.roles_claim");
    assert_eq!(fi.leeway, di.leeway, "idp.leeway");
    assert_eq!(fi.timeout, di.timeout, "idp.timeout");
    assert_eq!(
        fi.jwks_refetch_interval, di.jwks_refetch_interval,
        "idp.jwks_refetch_interval"
    );
    assert_eq!(f.client.auth, d.client.auth, "apps[].client_auth");
    assert_eq!(f.gateway_path, d.gateway_path, "apps[].gateway_path");
    assert_eq!(f.landing_path, d.landing_path, "apps[].landing_path");
    assert_eq!(f.required_roles, d.required_roles, "apps[].required_roles");
    assert_eq!(f.jwt_cookie.name, d.jwt_cookie.name, "apps[].cookies.jwt");
    assert_eq!(
        f.refresh_cookie.name, d.refresh_cookie.name,
        "apps[].cookies.refresh"
    );
    assert_eq!(
        f.jwt_cookie.domain, d.jwt_cookie.domain,
        "apps[].cookies.domain"
    );
    assert_eq!(
        f.jwt_cookie.max_age, d.jwt_cookie.max_age,
        "apps[].cookies.max_age"
    );
    let names = |h: &gateway::config::IdentityHeaders| {
        h.names().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&f.headers), names(&d.headers), "apps[].headers");
}

#[test]
fn version_and_help() {
    let out = run(&["--version"], &[]);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("gateway {}", env!("CARGO_PKG_VERSION"))
    );

    let out = run(&["--help"], &[]);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("check"), "{}", out.stdout);
    assert!(out.stdout.contains("--config"), "{}", out.stdout);
}

#[test]
fn broken_configs_exit_2_naming_the_key() {
    let tls_dir = tempfile::tempdir().expect("temp dir");
    let missing_cert = tls_dir.path().join("no-such-cert.pem");
    let missing_key = tls_dir.path().join("no-such-key.pem");
    let missing_cert = missing_cert.to_str().expect("utf-8 temp path");
    let missing_key = missing_key.to_str().expect("utf-8 temp path");
    let tls_message = format!("server.tls.cert: cannot read {missing_cert}");
    // APP plus a second app, so that indices other than 0 show.
    let and_b = |hosts: &str, upstream: &str| format!("{APP}\n{}", app("b", hosts, upstream));
    let up = "http://127.0.0.1:3001";

    // (what is broken, the whole file, substrings stderr must contain)
    let rows: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "upstream is not a URL (second app)",
            and_b(r#"["b.test"]"#, "htp:/x"),
            vec![r#"apps[1].upstream: "htp:/x" is not an http(s) URL"#],
        ),
        (
            "upstream scheme is not http(s)",
            and_b(r#"["b.test"]"#, "ftp://files.internal"),
            vec!["apps[1].upstream: ", "is not an http(s) URL"],
        ),
        (
            "two apps claim the same host",
            and_b(r#"["A.test"]"#, up),
            vec!["apps[1].hosts: duplicate host"],
        ),
        (
            "same host, prefixes equal after normalisation",
            format!(
                "{APP}path_prefix = \"/api\"\n\n{}path_prefix = \"/api/\"\n",
                app("b", r#"["a.test"]"#, up)
            ),
            vec!["apps[1].hosts: duplicate host"],
        ),
        (
            "path prefix that no normal request path can match",
            format!("{APP}path_prefix = \"/café\"\n"),
            vec!["apps[0].path_prefix: \"/café\" must be an absolute path"],
        ),
        (
            "public path that no normal request path can match",
            format!("{IDP}{}", login_app("public_paths = [\"/a[b/*\"]")),
            vec!["apps[0].public_paths[0]"],
        ),
        (
            "host pattern in brackets that is not an IPv6 address",
            app("b", r#"["[ a/b ]"]"#, up),
            vec!["apps[0].hosts[0]", "is not a host name"],
        ),
        (
            "unknown key in [server]",
            format!("[server]\nlisen = \"127.0.0.1:8080\"\n{APP}"),
            vec!["server.lisen: unknown key"],
        ),
        (
            "unknown key in [[apps]]",
            format!("{APP}bogus = 1\n"),
            vec!["apps[0].bogus: unknown key"],
        ),
        (
            "unknown top-level section",
            format!("[servr]\nlisten = \"127.0.0.1:8080\"\n{APP}"),
            vec!["servr: unknown key"],
        ),
        (
            "TOML syntax error on line 3",
            format!("[server]\nlisten = \"127.0.0.1:8080\"\nadmin_listen = = \"x\"\n{APP}"),
            vec!["gateway.toml", "line 3", "column"],
        ),
        (
            "listen is not an address",
            format!("[server]\nlisten = \"nonsense\"\n{APP}"),
            vec![r#"server.listen: "nonsense" is not an address"#],
        ),
        (
            "listen has the wrong type",
            format!("[server]\nlisten = 8080\n{APP}"),
            vec!["server.listen: invalid type"],
        ),
        (
            "admin_listen equals listen",
            format!(
                "[server]\nlisten = \"127.0.0.1:7000\"\nadmin_listen = \"127.0.0.1:7000\"\n{APP}"
            ),
            vec!["server.admin_listen: must differ"],
        ),
        (
            "idle_timeout is not a duration",
            format!("[server]\nidle_timeout = \"soon\"\n{APP}"),
            vec![r#"server.idle_timeout: "soon" is not a duration"#],
        ),
        (
            "header_read_timeout is zero",
            format!("[server]\nheader_read_timeout = \"0s\"\n{APP}"),
            vec!["server.header_read_timeout: must be greater than zero"],
        ),
        (
            "shutdown_grace is not a duration",
            format!("[server]\nshutdown_grace = \"forever\"\n{APP}"),
            vec!["server.shutdown_grace: ", "is not a duration"],
        ),
        (
            "upstream.connect_timeout is zero",
            format!("[upstream]\nconnect_timeout = \"0ms\"\n{APP}"),
            vec!["upstream.connect_timeout: must be greater than zero"],
        ),
        (
            "max_header_bytes is tiny",
            format!("[server]\nmax_header_bytes = 10\n{APP}"),
            vec!["server.max_header_bytes: 10 is out of range"],
        ),
        (
            "worker_threads is zero",
            format!("[server]\nworker_threads = 0\n{APP}"),
            vec!["server.worker_threads: must be at least 1"],
        ),
        (
            "trusted proxy is not a CIDR block",
            format!("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n{APP}"),
            vec![r#"server.trusted_proxies[0]: "10.0.0.0/33" is not an IP address"#],
        ),
        (
            "second trusted proxy is bad",
            format!("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"nope\"]\n{APP}"),
            vec![r#"server.trusted_proxies[1]: "nope""#],
        ),
        (
            "wildcard host with nothing after *.",
            app("a", r#"["a.test", "*."]"#, up),
            vec![r#"apps[0].hosts[1]: "*.""#],
        ),
        (
            "host carries a port",
            app("a", r#"["a.test:8080"]"#, up),
            vec![r#"apps[0].hosts[0]: "a.test:8080""#, "port"],
        ),
        (
            "app without hosts",
            app("a", "[]", up),
            vec!["apps[0].hosts: at least one host name is required"],
        ),
        (
            "app name with spaces",
            app("my app", r#"["a.test"]"#, up),
            vec![r#"apps[0].name: "my app""#],
        ),
        (
            "no apps at all",
            "[server]\nlisten = \"127.0.0.1:8080\"\n".to_owned(),
            vec!["apps: at least one [[apps]] entry is required"],
        ),
        (
            "two apps with the same name",
            format!("{APP}\n{}", app("a", r#"["b.test"]"#, up)),
            vec![r#"apps[1].name: duplicate app name "a""#],
        ),
        (
            "path_prefix is not absolute",
            format!("{APP}path_prefix = \"api\"\n"),
            vec![r#"apps[0].path_prefix: "api" must be an absolute path"#],
        ),
        (
            "log.level is not a filter",
            format!("[log]\nlevel = \"[[[\"\n{APP}"),
            vec![r#"log.level: "[[[" is not a valid filter"#],
        ),
        (
            "log.format is unknown",
            format!("[log]\nformat = \"xml\"\n{APP}"),
            vec!["log.format: ", "xml"],
        ),
        (
            "upstream carries a path",
            app("a", r#"["a.test"]"#, "http://127.0.0.1:1/x"),
            vec![r#"apps[0].upstream: "http://127.0.0.1:1/x" must be scheme://host[:port] only"#],
        ),
        (
            "upstream carries credentials",
            app("a", r#"["a.test"]"#, "http://user:pw@127.0.0.1:1"),
            vec!["apps[0].upstream: ", "must not carry credentials"],
        ),
        (
            "upstream is missing",
            "[[apps]]\nname = \"a\"\nhosts = [\"a.test\"]\n".to_owned(),
            vec!["apps[0].upstream: missing required key"],
        ),
        (
            "an app with login but no [idp]",
            format!("[session]\ncookie_key = \"0123456789abcdef0123456789abcdef\"\n{}", login_app("")),
            vec!["idp: missing: apps[0] (s) has login"],
        ),
        (
            "an app with login but no cookie key",
            format!("[idp]\ntoken_endpoint = \"http://127.0.0.1:1/t\"\njwks_uri = \"http://127.0.0.1:1/j\"\n{}", login_app("")),
            vec!["session.cookie_key: missing", "openssl rand"],
        ),
        (
            "a short cookie key",
            format!("{}{}", IDP.replace("0123456789abcdef0123456789abcdef", "short"), login_app("")),
            vec!["session.cookie_key: is 5 bytes; at least 32"],
        ),
        (
            "no client secret",
            format!("{IDP}[[apps]]\nname = \"s\"\nhosts = [\"s.test\"]\nupstream = \"http://127.0.0.1:3001\"\nclient_id = \"s\"\n"),
            vec!["apps[0].client_secret: missing"],
        ),
        (
            "algorithm none",
            format!("{}{}", IDP.replace("[idp]\n", "[idp]\nalgorithms = [\"RS256\", \"none\"]\n"), login_app("")),
            vec![r#"idp.algorithms[1]: "none" is not an accepted algorithm"#],
        ),
        (
            "HS256 without a secret",
            format!("{}{}", IDP.replace("[idp]\n", "[idp]\nalgorithms = [\"HS256\"]\n"), login_app("")),
            vec!["apps[0].idp.hmac_secret: missing"],
        ),
        (
            "token endpoint is not a URL",
            format!("{}{}", IDP.replace("http://127.0.0.1:9011/oauth2/token", "nope"), login_app("")),
            vec![r#"idp.token_endpoint: "nope" is not an http(s) URL"#],
        ),
        (
            "an app's IdP override is not a URL",
            format!("{IDP}{}", login_app("[apps.idp]\njwks_uri = \"ftp://x\"")),
            vec![r#"apps[0].idp.jwks_uri: "ftp://x" is not an http(s) URL"#],
        ),
        (
            "neither token endpoint nor issuer",
            format!("[idp]\njwks_uri = \"http://127.0.0.1:1/j\"\n[session]\ncookie_key = \"0123456789abcdef0123456789abcdef\"\n{}", login_app("")),
            vec!["apps[0].idp.token_endpoint: missing"],
        ),
        (
            "public path with a dot segment",
            format!("{IDP}{}", login_app("public_paths = [\"/static/../x\"]")),
            vec![r#"apps[0].public_paths[0]: "/static/../x""#],
        ),
        (
            "login template that does not exist",
            format!("{IDP}{}", login_app("login_template = \"/nonexistent/login.html\"")),
            vec!["apps[0].login_template: /nonexistent/login.html"],
        ),
        (
            "both cookies with one name",
            format!("{IDP}{}", login_app("[apps.cookies]\njwt = \"c\"\nrefresh = \"c\"")),
            vec!["apps[0].cookies.refresh: must differ"],
        ),
        (
            "identity header that is not a header name",
            format!("{IDP}{}", login_app("[apps.headers]\nuser = \"X User\"")),
            vec![r#"apps[0].headers.user: "X User" is not a header name"#],
        ),
        (
            "unknown key in [session]",
            format!("{IDP}bogus = 1\n{}", login_app("")),
            vec!["session.bogus: unknown key"],
        ),
        (
            "a zero login form timeout",
            format!("[login]\nform_timeout = \"0s\"\n{APP}"),
            vec!["login.form_timeout: must be greater than zero"],
        ),
        (
            "a login form timeout that is not a duration",
            format!("[login]\nform_timeout = \"soon\"\n{APP}"),
            vec![r#"login.form_timeout: "soon" is not a duration"#],
        ),
        (
            "TLS certificate file does not exist",
            format!("[server.tls]\ncert = {missing_cert:?}\nkey = {missing_key:?}\n{APP}"),
            vec![tls_message.as_str()],
        ),
        (
            "two apps with login on one host with the same cookie names",
            format!(
                "{IDP}{}{}",
                login_app_at("s", "/", ""),
                login_app_at("t", "/api", "")
            ),
            vec![
                "apps[1].cookies.jwt: ",
                "apps[0] (s)",
                "apps[1] (t)",
                r#""s.test""#,
                r#""gw_jwt""#,
            ],
        ),
        (
            "a cookies.domain covering another app's host, same wire names",
            format!(
                "{IDP}{}{}",
                "[[apps]]\nname = \"shop\"\nhosts = [\"shop.example.com\"]\n\
                 upstream = \"http://127.0.0.1:3001\"\nclient_id = \"shop\"\n\
                 client_secret = \"x\"\n[apps.cookies]\ndomain = \"example.com\"\n",
                "[[apps]]\nname = \"forum\"\nhosts = [\"*.forum.example.com\"]\n\
                 upstream = \"http://127.0.0.1:3001\"\nclient_id = \"forum\"\n\
                 client_secret = \"x\"\n[apps.cookies]\nsecure = false\n"
            ),
            vec![
                "apps[1].cookies.jwt: ",
                "apps[0] (shop)",
                "apps[1] (forum)",
                r#""*.forum.example.com""#,
            ],
        ),
        (
            "one app's JWT cookie is another's refresh cookie on the same host",
            format!(
                "{IDP}{}{}",
                login_app_at("s", "/", ""),
                login_app_at("t", "/api", "[apps.cookies]\njwt = \"gw_refresh\"\nrefresh = \"t_refresh\"")
            ),
            vec!["apps[1].cookies.jwt: ", "apps[0] (s)", "apps[1] (t)", r#""gw_refresh""#],
        ),
        (
            "a login app's gateway_path outside its path_prefix, served by another app",
            format!(
                "{IDP}{}{}",
                login_app_at("s", "/", ""),
                login_app_at(
                    "t",
                    "/api",
                    "gateway_path = \"/.gateway\"\n[apps.cookies]\njwt = \"t_jwt\"\nrefresh = \"t_refresh\""
                )
            ),
            vec![
                r#"apps[1].gateway_path: "/.gateway""#,
                "apps[0] (s)",
                "apps[1] (t)",
                r#"path_prefix "/api""#,
            ],
        ),
        (
            "a login app's gateway_path under another app's longer path_prefix",
            format!(
                "{IDP}{}{}",
                login_app_at("s", "/", "gateway_path = \"/api/.gateway\""),
                app_at("t", "/api")
            ),
            vec![
                r#"apps[0].gateway_path: "/api/.gateway""#,
                "apps[0] (s)",
                "apps[1] (t)",
                r#"path_prefix "/api""#,
            ],
        ),
        (
            "a login app's gateway_path that no app serves",
            format!(
                "{IDP}{}",
                login_app_at("s", "/api", "gateway_path = \"/.gateway\"")
            ),
            vec![
                r#"apps[0].gateway_path: "/.gateway""#,
                r#"path_prefix "/api""#,
                "no app",
            ],
        ),
        (
            "server.max_connections is zero",
            format!("[server]\nmax_connections = 0\n{APP}"),
            vec!["server.max_connections: must be at least 1"],
        ),
        (
            "server.max_connections_per_ip is not a number",
            format!("[server]\nmax_connections_per_ip = \"many\"\n{APP}"),
            vec!["server.max_connections_per_ip: invalid type"],
        ),
        (
            "server.http2_max_concurrent_streams is zero",
            format!("[server]\nhttp2_max_concurrent_streams = 0\n{APP}"),
            vec!["server.http2_max_concurrent_streams: must be at least 1"],
        ),
        (
            "server.http2_max_send_buf_size is below one frame",
            format!("[server]\nhttp2_max_send_buf_size = 100\n{APP}"),
            vec!["server.http2_max_send_buf_size: 100 is out of range"],
        ),
        (
            "server.tunnel_idle_timeout is zero",
            format!("[server]\ntunnel_idle_timeout = \"0s\"\n{APP}"),
            vec!["server.tunnel_idle_timeout: must be greater than zero"],
        ),
        (
            "server.tunnel_max_lifetime is not a duration",
            format!("[server]\ntunnel_max_lifetime = \"forever\"\n{APP}"),
            vec![r#"server.tunnel_max_lifetime: "forever" is not a duration"#],
        ),
    ];

    let mut failures = Vec::new();
    for (what, toml, wanted) in &rows {
        let out = check(toml, &[]);
        let mut problems = Vec::new();
        if out.code() != Some(2) {
            problems.push(format!("exit code {:?}, want 2", out.code()));
        }
        if !out.stderr.starts_with("gateway: invalid configuration: ") {
            problems.push("stderr lacks the `gateway: invalid configuration:` lead".to_owned());
        }
        for want in wanted {
            if !out.stderr.contains(want) {
                problems.push(format!("stderr lacks {want:?}"));
            }
        }
        if !out.stdout.is_empty() {
            problems.push(format!("stdout is not empty: {:?}", out.stdout));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{what}: {}\n  stderr: {}",
                problems.join("; "),
                out.stderr.trim_end()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} broken configs misreported:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.toml");
    let path = path.to_str().expect("utf-8 temp path");
    for args in [vec!["check", "--config", path], vec!["--config", path]] {
        let out = run(&args, &[]);
        assert_eq!(out.code(), Some(2), "{args:?}: stderr {}", out.stderr);
        assert!(
            out.stderr
                .starts_with(&format!("gateway: invalid configuration: {path}: ")),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn environment_overrides_the_file() {
    let toml = format!("[server]\nlisten = \"127.0.0.1:8181\"\n{APP}");

    let out = check(&toml, &[]);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("listen 127.0.0.1:8181 "),
        "{}",
        out.stdout
    );

    let out = check(&toml, &[("GATEWAY_SERVER__LISTEN", "127.0.0.1:9000")]);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("listen 127.0.0.1:9000 "),
        "{}",
        out.stdout
    );

    let out = check(&toml, &[("GATEWAY_SERVER__LISTEN", "bogus")]);
    assert_eq!(out.code(), Some(2), "stdout: {}", out.stdout);
    assert!(
        out.stderr
            .contains(r#"server.listen: "bogus" is not an address"#),
        "{}",
        out.stderr
    );

    let out = check(&toml, &[("GATEWAY_SERVER__LISTN", "1")]);
    assert_eq!(out.code(), Some(2), "stdout: {}", out.stdout);
    assert!(
        out.stderr.contains("server.listn: unknown key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("GATEWAY_SERVER__LISTN"),
        "{}",
        out.stderr
    );

    let out = check(&toml, &[("GATEWAY_SERVER__MAX_HEADER_BYTES", "lots")]);
    assert_eq!(out.code(), Some(2), "stdout: {}", out.stdout);
    assert!(
        out.stderr.contains("server.max_header_bytes"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("GATEWAY_SERVER__MAX_HEADER_BYTES"),
        "{}",
        out.stderr
    );
}

/// Two apps with login on one host: each with its own cookie names, and its
/// login pages under its own path prefix (the default `gateway_path` is
/// `/.gateway` below the prefix).
#[test]
fn apps_with_login_sharing_a_host_pass_with_their_own_cookies_and_pages() {
    let toml = format!(
        "{IDP}{}{}",
        login_app_at("s", "/", ""),
        login_app_at(
            "t",
            "/api",
            "[apps.cookies]\njwt = \"t_jwt\"\nrefresh = \"t_refresh\""
        )
    );
    let out = check(&toml, &[]);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("client s at http://127.0.0.1:9011/oauth2/token (Oauth2), /.gateway/login, cookies __Host-gw_jwt + __Host-gw_refresh"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("client t at http://127.0.0.1:9011/oauth2/token (Oauth2), /api/.gateway/login, cookies __Host-t_jwt + __Host-t_refresh"),
        "{}",
        out.stdout
    );
}

/// The variables Kubernetes injects into every pod of a namespace with a
/// Service named `gateway` (docker links once did the same).
const KUBERNETES_SERVICE_VARIABLES: &[(&str, &str)] = &[
    ("GATEWAY_PORT", "tcp://10.0.0.1:80"),
    ("GATEWAY_SERVICE_HOST", "10.0.0.1"),
    ("GATEWAY_SERVICE_PORT", "80"),
    ("GATEWAY_SERVICE_PORT_HTTP", "80"),
    ("GATEWAY_PORT_80_TCP_ADDR", "10.0.0.1"),
    ("GATEWAY_PORT_80_TCP", "tcp://10.0.0.1:80"),
    ("GATEWAY_PORT_80_TCP_PROTO", "tcp"),
    ("GATEWAY_PORT_80_TCP_PORT", "80"),
];

/// Only `GATEWAY_<SECTION>__<KEY>` variables are configuration: the service
/// variables are ignored, a real override still applies, and a
/// `GATEWAY_X__Y` whose X is no section is refused, naming the variable.
#[test]
fn kubernetes_service_variables_are_not_configuration() {
    let toml = format!("[server]\nlisten = \"127.0.0.1:8181\"\n{APP}");
    let out = check(&toml, KUBERNETES_SERVICE_VARIABLES);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("listen 127.0.0.1:8181 "),
        "{}",
        out.stdout
    );

    let mut env = KUBERNETES_SERVICE_VARIABLES.to_vec();
    env.push(("GATEWAY_SERVER__LISTEN", "127.0.0.1:9000"));
    let out = check(&toml, &env);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("listen 127.0.0.1:9000 "),
        "{}",
        out.stdout
    );

    env.push(("GATEWAY_SERVR__LISTEN", "127.0.0.1:9001"));
    let out = check(&toml, &env);
    assert_eq!(out.code(), Some(2), "stdout: {}", out.stdout);
    assert!(
        out.stderr
            .starts_with("gateway: invalid configuration: servr: unknown section"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("GATEWAY_SERVR__LISTEN"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "server, log, upstream, idp, session, login, store, events, forward_auth, apps"
        ),
        "{}",
        out.stderr
    );
}

/// The ignored variables are named in the debug log once logging is up.
#[tokio::test]
async fn ignored_gateway_variables_are_logged_at_debug() {
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let mut builder = GatewayProcess::builder()
        .log_level("warn,gateway=debug")
        .app("a", "a.test", upstream)
        .env("GATEWAY_LOG__ACCESS", "false");
    for (name, value) in KUBERNETES_SERVICE_VARIABLES {
        builder = builder.env(name, value);
    }
    let gw = builder.start().await;
    let mut logged: Vec<String> = gw
        .logged("ignoring environment variable")
        .iter()
        .filter_map(|fields| fields["variable"].as_str().map(str::to_owned))
        .collect();
    logged.sort();
    let mut expected: Vec<String> = KUBERNETES_SERVICE_VARIABLES
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    expected.sort();
    assert_eq!(logged, expected, "{}", gw.logs());
}
