//! The shipped Traefik dynamic configuration
//! (`examples/forward-auth/traefik.toml`), parsed and checked against what
//! the gateway needs: the auth address, the headers Traefik must set from
//! the request it received, the identity headers and the refresh's cookies
//! it must copy, the client's identity headers removed before the gateway is
//! asked, and the gateway's own pages routed past the middleware.
//!
//! Traefik has no Debian package here, so these tests check the file; they
//! do not run Traefik (unlike the scenarios of `forward_auth.rs`, which run
//! behind a real nginx from its shipped config). The gateway settings the
//! file's comments give are loaded with the gateway's own configuration
//! loader, and the names the file must list (identity headers, cookie
//! names, cookie chunks, the auth path) come from that configuration, not
//! from copies here. Traefik refuses a whole file with a key it does not
//! know, so every key used is checked against the documented Traefik v3
//! names.
//!
//! Each check is a function returning the problems it finds; a test runs
//! it on the shipped file, and `broken_files_fail_the_checks` runs all of
//! them on copies of the file with one mistake each.

use gateway::auth::cookies::CHUNK_SIZE;
use gateway::config::forward_auth::{DeliverCookies, Ingress};
use toml::{Table, Value};

const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/forward-auth/traefik.toml"
);

/// The hosts of the example's apps (as in the shipped nginx.conf).
const APP_HOSTS: [&str; 2] = ["store.localhost", "forums.localhost"];

/// What a check found wrong, one line each (empty: nothing).
type Problems = Vec<String>;

fn shipped_text() -> String {
    std::fs::read_to_string(SHIPPED).expect("read examples/forward-auth/traefik.toml")
}

fn parse(text: &str) -> Table {
    text.parse::<Table>().expect("traefik.toml is TOML")
}

/// The gateway configuration the file's comments give (the lines indented
/// under "The gateway runs with:"), completed with an IdP, a cookie key and
/// the example's apps (`secure` for their cookies).
fn gateway_config(text: &str, secure: bool) -> gateway::Config {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains("The gateway runs with"))
        .skip(1)
        .skip_while(|l| l.trim() == "#");
    let mut block = String::new();
    for line in lines.by_ref() {
        match line.strip_prefix("#   ") {
            Some(setting) => {
                block.push_str(setting);
                block.push('\n');
            }
            None => break,
        }
    }
    assert!(
        block.contains("[forward_auth]"),
        "the comments give the gateway's [forward_auth] settings:\n{block}"
    );
    let mut config = format!(
        "{block}\n[idp]\ntoken_endpoint = \"http://127.0.0.1:9011/oauth2/token\"\n\
         jwks_uri = \"http://127.0.0.1:9011/.well-known/jwks.json\"\n\
         [session]\ncookie_key = \"0123456789abcdef0123456789abcdef\"\n"
    );
    for (i, host) in APP_HOSTS.iter().enumerate() {
        config.push_str(&format!(
            "[[apps]]\nname = \"app{i}\"\nhosts = [{host:?}]\nupstream = \"http://127.0.0.1:300{i}\"\n\
             client_id = \"app{i}\"\nclient_secret = \"x\"\n[apps.cookies]\nsecure = {secure}\n"
        ));
    }
    gateway::Config::from_toml(&config).unwrap_or_else(|e| panic!("{e}\n{config}"))
}

fn table(value: Option<&Value>) -> Option<&Table> {
    value.and_then(Value::as_table)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn contains_ignore_case(list: &[String], name: &str) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn section<'a>(file: &'a Table, name: &str) -> Option<&'a Table> {
    table(table(file.get("http"))?.get(name))
}

/// The forwardAuth middlewares, by name.
fn forward_auths(file: &Table) -> Vec<(&String, &Table)> {
    section(file, "middlewares")
        .into_iter()
        .flatten()
        .filter_map(|(name, m)| Some((name, table(m.as_table()?.get("forwardAuth"))?)))
        .collect()
}

/// The one forwardAuth middleware (a problem if there is not exactly one).
fn the_forward_auth(file: &Table) -> Result<(&String, &Table), String> {
    match forward_auths(file).as_slice() {
        [one] => Ok(*one),
        all => Err(format!(
            "expected one forwardAuth middleware, found {}",
            all.len()
        )),
    }
}

/// The gateway's proxy listener, as the address Traefik must call.
fn gateway_origin(config: &gateway::Config) -> String {
    format!("http://{}", config.server.listen)
}

/// The names of the services whose servers are the gateway's listener.
fn gateway_services(file: &Table, config: &gateway::Config) -> Vec<String> {
    let origin = gateway_origin(config);
    section(file, "services")
        .into_iter()
        .flatten()
        .filter(|(_, s)| {
            let servers = s
                .get("loadBalancer")
                .and_then(|lb| lb.get("servers"))
                .and_then(Value::as_array);
            servers.is_some_and(|servers| {
                servers.iter().any(|server| {
                    server
                        .get("url")
                        .and_then(Value::as_str)
                        .is_some_and(|url| url.trim_end_matches('/') == origin)
                })
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// A router's priority as Traefik computes it: the configured one, else
/// the length of its rule.
fn priority(router: &Table) -> i64 {
    match router.get("priority").and_then(Value::as_integer) {
        Some(p) if p != 0 => p,
        _ => router
            .get("rule")
            .and_then(Value::as_str)
            .map_or(0, |r| r.len() as i64),
    }
}

/// The routers to the apps (every router whose service is not the
/// gateway's) and to the gateway, by name.
#[allow(clippy::type_complexity)]
fn routers<'a>(
    file: &'a Table,
    config: &gateway::Config,
) -> (Vec<(&'a String, &'a Table)>, Vec<(&'a String, &'a Table)>) {
    let gateway = gateway_services(file, config);
    section(file, "routers")
        .into_iter()
        .flatten()
        .filter_map(|(name, r)| Some((name, r.as_table()?)))
        .partition(|(_, r)| {
            let service = r.get("service").and_then(Value::as_str).unwrap_or("");
            !gateway.iter().any(|g| g == service)
        })
}

// ------------------------------------------------------------------ checks

/// Traefik refuses the whole file over a key it does not know: every key
/// used must be one of Traefik v3's (file provider, dynamic configuration).
fn check_known_keys(file: &Table) -> Problems {
    const TOP: &[&str] = &["http", "tcp", "udp", "tls"];
    const HTTP: &[&str] = &[
        "routers",
        "services",
        "middlewares",
        "models",
        "serversTransports",
    ];
    const ROUTER: &[&str] = &[
        "entryPoints",
        "middlewares",
        "service",
        "rule",
        "ruleSyntax",
        "parentRefs",
        "priority",
        "tls",
        "observability",
    ];
    const FORWARD_AUTH: &[&str] = &[
        "address",
        "tls",
        "trustForwardHeader",
        "authResponseHeaders",
        "authResponseHeadersRegex",
        "authRequestHeaders",
        "addAuthCookiesToResponse",
        "headerField",
        "forwardBody",
        "maxBodySize",
        "preserveLocationHeader",
        "preserveRequestMethod",
        "maxResponseBodySize",
        "authSigninURL",
    ];
    const HEADERS: &[&str] = &[
        "customRequestHeaders",
        "customResponseHeaders",
        "accessControlAllowCredentials",
        "accessControlAllowHeaders",
        "accessControlAllowMethods",
        "accessControlAllowOriginList",
        "accessControlAllowOriginListRegex",
        "accessControlExposeHeaders",
        "accessControlMaxAge",
        "addVaryHeader",
        "allowedHosts",
        "hostsProxyHeaders",
        "sslProxyHeaders",
        "stsSeconds",
        "stsIncludeSubdomains",
        "stsPreload",
        "forceSTSHeader",
        "frameDeny",
        "customFrameOptionsValue",
        "contentTypeNosniff",
        "browserXssFilter",
        "customBrowserXSSValue",
        "contentSecurityPolicy",
        "contentSecurityPolicyReportOnly",
        "publicKey",
        "referrerPolicy",
        "permissionsPolicy",
        "isDevelopment",
    ];
    const LOAD_BALANCER: &[&str] = &[
        "servers",
        "sticky",
        "healthCheck",
        "passiveHealthCheck",
        "passHostHeader",
        "responseForwarding",
        "serversTransport",
        "strategy",
    ];
    const SERVER: &[&str] = &["url", "weight", "preservePath"];

    fn unknown(table: &Table, known: &[&str], at: &str, problems: &mut Problems) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                problems.push(format!("unknown key {at}.{key}"));
            }
        }
    }

    let mut problems = Problems::new();
    unknown(file, TOP, "(top level)", &mut problems);
    let Some(http) = table(file.get("http")) else {
        problems.push("no [http] section".into());
        return problems;
    };
    unknown(http, HTTP, "http", &mut problems);
    for (name, router) in section(file, "routers").into_iter().flatten() {
        match router.as_table() {
            Some(r) => unknown(r, ROUTER, &format!("http.routers.{name}"), &mut problems),
            None => problems.push(format!("http.routers.{name} is not a table")),
        }
    }
    for (name, middleware) in section(file, "middlewares").into_iter().flatten() {
        let at = format!("http.middlewares.{name}");
        let Some(m) = middleware.as_table().filter(|m| m.len() == 1) else {
            problems.push(format!("{at} must be a table with one middleware type"));
            continue;
        };
        for (kind, options) in m {
            let known = match kind.as_str() {
                "forwardAuth" => FORWARD_AUTH,
                "headers" => HEADERS,
                other => {
                    problems.push(format!("{at}: middleware type {other} is not checked here"));
                    continue;
                }
            };
            match options.as_table() {
                Some(o) => unknown(o, known, &format!("{at}.{kind}"), &mut problems),
                None => problems.push(format!("{at}.{kind} is not a table")),
            }
        }
    }
    for (name, service) in section(file, "services").into_iter().flatten() {
        let at = format!("http.services.{name}");
        let Some(lb) = table(service.get("loadBalancer"))
            .filter(|_| service.as_table().is_some_and(|s| s.len() == 1))
        else {
            problems.push(format!("{at} must be a loadBalancer service"));
            continue;
        };
        unknown(
            lb,
            LOAD_BALANCER,
            &format!("{at}.loadBalancer"),
            &mut problems,
        );
        let servers = lb.get("servers").and_then(Value::as_array);
        if servers.is_none_or(|s| s.is_empty()) {
            problems.push(format!("{at}.loadBalancer has no servers"));
        }
        for server in servers.into_iter().flatten() {
            match server.as_table() {
                Some(s) if s.get("url").and_then(Value::as_str).is_some() => unknown(
                    s,
                    SERVER,
                    &format!("{at}.loadBalancer.servers"),
                    &mut problems,
                ),
                _ => problems.push(format!("{at}.loadBalancer.servers: a server without url")),
            }
        }
    }
    problems
}

/// Every router's middlewares and service exist.
fn check_references(file: &Table) -> Problems {
    let middlewares = section(file, "middlewares");
    let services = section(file, "services");
    let mut problems = Problems::new();
    for (name, router) in section(file, "routers").into_iter().flatten() {
        for m in strings(router.get("middlewares")) {
            if !middlewares.is_some_and(|all| all.contains_key(&m)) {
                problems.push(format!("router {name}: no middleware {m}"));
            }
        }
        match router.get("service").and_then(Value::as_str) {
            Some(s) if services.is_some_and(|all| all.contains_key(s)) => {}
            other => problems.push(format!("router {name}: no service {other:?}")),
        }
    }
    problems
}

/// forwardAuth calls the gateway's auth path on its proxy listener.
fn check_address(file: &Table, config: &gateway::Config) -> Problems {
    let (name, fa) = match the_forward_auth(file) {
        Ok(fa) => fa,
        Err(e) => return vec![e],
    };
    let path = &config.forward_auth.as_ref().expect("forward_auth on").path;
    let want = format!("{}{path}", gateway_origin(config));
    match fa.get("address").and_then(Value::as_str) {
        Some(address) if address == want => Vec::new(),
        other => vec![format!("{name}.address is {other:?}, expected {want:?}")],
    }
}

/// The original method, host and URI come from the request Traefik
/// received, never from a client's X-Forwarded-* copies.
fn check_trust_forward_header(file: &Table) -> Problems {
    let (name, fa) = match the_forward_auth(file) {
        Ok(fa) => fa,
        Err(e) => return vec![e],
    };
    match fa.get("trustForwardHeader") {
        Some(Value::Boolean(false)) => Vec::new(),
        other => vec![format!(
            "{name}.trustForwardHeader is {other:?}: it must be false (stated: later Traefik \
             versions behave differently when it is unset)"
        )],
    }
}

/// The regex in the shipped file (Go syntax), pinned: this crate cannot run
/// Go's regex engine, and a broader one would strip request headers the app
/// needs (Traefik removes every request header it matches).
const IDENTITY_REGEX: &str = "(?i)^x[-_]auth[-_]request[-_]";

/// Every identity header the gateway sends reaches the app, and only the
/// gateway's: listed in authResponseHeaders (which replaces the request's
/// copy), and any regex is the pinned one.
fn check_identity_headers(file: &Table, config: &gateway::Config) -> Problems {
    let (name, fa) = match the_forward_auth(file) {
        Ok(fa) => fa,
        Err(e) => return vec![e],
    };
    let listed = strings(fa.get("authResponseHeaders"));
    let mut problems = Problems::new();
    for app in &config.apps {
        let auth = app.auth.as_ref().expect("apps with login");
        for header in auth.headers.names() {
            if !contains_ignore_case(&listed, header.as_str()) {
                problems.push(format!("{name}.authResponseHeaders lacks {header}"));
            }
        }
    }
    // the gateway answers the client's cookies without its own as Cookie:
    // without it the app gets the JWT and the refresh cookie
    if !contains_ignore_case(&listed, "Cookie") {
        problems.push(format!("{name}.authResponseHeaders lacks Cookie"));
    }
    match fa.get("authResponseHeadersRegex") {
        None => {}
        Some(Value::String(re)) if re == IDENTITY_REGEX => {}
        Some(other) => problems.push(format!(
            "{name}.authResponseHeadersRegex is {other}, expected {IDENTITY_REGEX:?}"
        )),
    }
    problems
}

/// The gateway's redirects are relative: Traefik must pass them as they are.
fn check_location(file: &Table, config: &gateway::Config) -> Problems {
    let (name, fa) = match the_forward_auth(file) {
        Ok(fa) => fa,
        Err(e) => return vec![e],
    };
    let auth = config.apps[0].auth.as_ref().expect("login");
    assert!(
        auth.login_path().starts_with('/'),
        "the gateway redirects to a path"
    );
    match fa.get("preserveLocationHeader") {
        Some(Value::Boolean(true)) => Vec::new(),
        other => vec![format!(
            "{name}.preserveLocationHeader is {other:?}: without it Traefik resolves the \
             gateway's relative Location against its own address"
        )],
    }
}

/// If the request headers sent to the gateway are filtered, the ones it
/// reads are kept: the session cookies, and what tells a page load from a
/// script.
fn check_auth_request_headers(file: &Table) -> Problems {
    let (name, fa) = match the_forward_auth(file) {
        Ok(fa) => fa,
        Err(e) => return vec![e],
    };
    let listed = strings(fa.get("authRequestHeaders"));
    if listed.is_empty() {
        return Vec::new(); // all headers are passed
    }
    ["Cookie", "Accept", "X-Requested-With"]
        .into_iter()
        .filter(|h| !contains_ignore_case(&listed, h))
        .map(|h| format!("{name}.authRequestHeaders lacks {h}"))
        .collect()
}

/// A refresh's cookies reach the browser: every name the gateway may set
/// them under (with and without the __Host- prefix, and each chunk a JWT
/// the gateway accepts can be split into) is copied from the answer.
fn check_refresh_cookies(file: &Table, configs: &[gateway::Config]) -> Problems {
    let (name, fa) = match the_forward_auth(file) {
        Ok(fa) => fa,
        Err(e) => return vec![e],
    };
    let listed = strings(fa.get("addAuthCookiesToResponse"));
    let mut problems = Problems::new();
    for config in configs {
        let fa_config = config.forward_auth.as_ref().expect("forward_auth on");
        if fa_config.refresh != DeliverCookies::SetCookie {
            continue; // the gateway never refreshes in the subrequest
        }
        // the most pieces a cookie can have in a request the gateway reads
        let chunks = config.server.max_header_bytes / CHUNK_SIZE;
        for app in &config.apps {
            let auth = app.auth.as_ref().expect("login");
            for cookie in [&auth.jwt_cookie, &auth.refresh_cookie] {
                let wire = cookie.wire_name();
                let names =
                    std::iter::once(wire.clone()).chain((0..chunks).map(|i| format!("{wire}.{i}")));
                for n in names {
                    // Traefik compares cookie names exactly
                    let problem = format!("{name}.addAuthCookiesToResponse lacks {n}");
                    if !listed.contains(&n) && !problems.contains(&problem) {
                        problems.push(problem);
                    }
                }
            }
        }
    }
    problems
}

/// The routers to the apps: one per app host, each with the strip
/// middleware and then forwardAuth (in that order: Traefik runs a router's
/// middlewares in list order, and the strip would otherwise remove the
/// gateway's identity headers), the strip removing every identity header.
fn check_app_routers(file: &Table, config: &gateway::Config) -> Problems {
    let mut problems = Problems::new();
    let (apps, _) = routers(file, config);
    let fa_names: Vec<&String> = forward_auths(file).into_iter().map(|(n, _)| n).collect();
    let middlewares = section(file, "middlewares");
    for host in APP_HOSTS {
        let rule = format!("Host(`{host}`)");
        if !apps.iter().any(|(_, r)| {
            r.get("rule")
                .and_then(Value::as_str)
                .is_some_and(|x| x.contains(&rule))
        }) {
            problems.push(format!("no router for the app on {host}"));
        }
    }
    let identity: Vec<String> = config
        .apps
        .iter()
        .flat_map(|a| a.auth.as_ref().expect("login").headers.names())
        .map(|h| h.as_str().to_owned())
        .collect();
    for (name, router) in &apps {
        let chain = strings(router.get("middlewares"));
        let Some(auth_at) = chain.iter().position(|m| fa_names.contains(&m)) else {
            problems.push(format!("router {name} does not use forwardAuth"));
            continue;
        };
        let strips = |m: &String| {
            let removed = middlewares
                .and_then(|all| all.get(m))
                .and_then(|m| m.get("headers"))
                .and_then(|h| h.get("customRequestHeaders"))
                .and_then(Value::as_table);
            removed.is_some_and(|removed| {
                identity.iter().all(|h| {
                    removed
                        .iter()
                        .any(|(k, v)| k.eq_ignore_ascii_case(h) && v.as_str() == Some(""))
                })
            })
        };
        match chain.iter().position(strips) {
            Some(strip_at) if strip_at < auth_at => {}
            Some(_) => problems.push(format!(
                "router {name}: the identity headers are stripped after forwardAuth"
            )),
            None => problems.push(format!(
                "router {name}: no middleware removes the client's {identity:?} before forwardAuth"
            )),
        }
    }
    problems
}

/// The gateway's pages: a router for `{gateway_path}/` on every app host,
/// to the gateway, without forwardAuth, above the apps' routers.
fn check_gateway_router(file: &Table, config: &gateway::Config) -> Problems {
    let mut problems = Problems::new();
    let (apps, gateway) = routers(file, config);
    let fa_names: Vec<&String> = forward_auths(file).into_iter().map(|(n, _)| n).collect();
    let Some(auth) = config.apps[0].auth.as_ref() else {
        return vec!["the example's apps have login".into()];
    };
    let prefix = format!("PathPrefix(`{}/`)", auth.gateway_path);
    let pages: Vec<_> = gateway
        .iter()
        .filter(|(_, r)| {
            r.get("rule")
                .and_then(Value::as_str)
                .is_some_and(|x| x.contains(&prefix))
        })
        .collect();
    if pages.is_empty() {
        problems.push(format!("no router with {prefix} to the gateway"));
    }
    for host in APP_HOSTS {
        let rule = format!("Host(`{host}`)");
        if !pages.iter().any(|(_, r)| {
            r.get("rule")
                .and_then(Value::as_str)
                .is_some_and(|x| x.contains(&rule))
        }) {
            problems.push(format!("the gateway's pages are not routed on {host}"));
        }
    }
    let top_app = apps.iter().map(|(_, r)| priority(r)).max().unwrap_or(0);
    for (name, router) in &pages {
        if strings(router.get("middlewares"))
            .iter()
            .any(|m| fa_names.contains(&m))
        {
            problems.push(format!(
                "router {name} (the gateway's pages) uses forwardAuth"
            ));
        }
        if priority(router) <= top_app {
            problems.push(format!(
                "router {name} has priority {}, not above the apps' {top_app}",
                priority(router)
            ));
        }
    }
    problems
}

/// Every check, on `text`.
fn all_problems(text: &str) -> Problems {
    let file = parse(text);
    let configs = [gateway_config(text, false), gateway_config(text, true)];
    let config = &configs[0];
    let mut problems = check_known_keys(&file);
    problems.extend(check_references(&file));
    problems.extend(check_address(&file, config));
    problems.extend(check_trust_forward_header(&file));
    problems.extend(check_identity_headers(&file, config));
    problems.extend(check_location(&file, config));
    problems.extend(check_auth_request_headers(&file));
    problems.extend(check_refresh_cookies(&file, &configs));
    problems.extend(check_app_routers(&file, config));
    problems.extend(check_gateway_router(&file, config));
    problems
}

fn assert_none(problems: Problems) {
    assert!(
        problems.is_empty(),
        "traefik.toml:\n  {}",
        problems.join("\n  ")
    );
}

// ------------------------------------------------------------------ tests

#[test]
fn the_comments_give_working_gateway_settings_for_traefik() {
    for secure in [false, true] {
        let config = gateway_config(&shipped_text(), secure);
        let fa = config.forward_auth.as_ref().expect("[forward_auth] on");
        assert_eq!(fa.ingress, Ingress::Forwarded, "ingress = \"traefik\"");
        assert_eq!(
            fa.refresh,
            DeliverCookies::SetCookie,
            "the file copies the refresh's cookies: refresh = \"set-cookie\""
        );
        assert!(
            fa.ingresses
                .iter()
                .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().expect("ip"))),
            "Traefik on 127.0.0.1 may ask"
        );
    }
}

#[test]
fn every_key_is_a_traefik_v3_key() {
    let file = parse(&shipped_text());
    assert_none(check_known_keys(&file));
    assert_none(check_references(&file));
}

#[test]
fn forward_auth_asks_the_gateways_auth_path() {
    let text = shipped_text();
    assert_none(check_address(&parse(&text), &gateway_config(&text, false)));
}

#[test]
fn traefik_sets_the_original_request_headers_itself() {
    assert_none(check_trust_forward_header(&parse(&shipped_text())));
}

#[test]
fn the_gateways_identity_headers_replace_the_clients() {
    let text = shipped_text();
    assert_none(check_identity_headers(
        &parse(&text),
        &gateway_config(&text, false),
    ));
}

#[test]
fn the_gateways_relative_redirects_pass_as_they_are() {
    let text = shipped_text();
    assert_none(check_location(&parse(&text), &gateway_config(&text, false)));
}

#[test]
fn the_gateway_gets_the_headers_it_reads() {
    assert_none(check_auth_request_headers(&parse(&shipped_text())));
}

#[test]
fn the_refresh_cookies_reach_the_browser() {
    let text = shipped_text();
    let configs = [gateway_config(&text, false), gateway_config(&text, true)];
    assert_none(check_refresh_cookies(&parse(&text), &configs));
}

#[test]
fn app_routers_strip_identity_headers_before_forward_auth() {
    let text = shipped_text();
    assert_none(check_app_routers(
        &parse(&text),
        &gateway_config(&text, false),
    ));
}

#[test]
fn the_gateways_pages_bypass_forward_auth_with_a_higher_priority() {
    let text = shipped_text();
    assert_none(check_gateway_router(
        &parse(&text),
        &gateway_config(&text, false),
    ));
}

/// One mistake at a time in a copy of the file: each must be caught.
#[test]
fn broken_files_fail_the_checks() {
    let text = shipped_text();
    assert_none(all_problems(&text));
    let mistakes: &[(&str, &str, &str)] = &[
        (
            "trusts the client's X-Forwarded-*",
            "  trustForwardHeader = false\n",
            "  trustForwardHeader = true\n",
        ),
        (
            "a misspelt key",
            "  trustForwardHeader = false\n",
            "  trustForwardHeaders = false\n",
        ),
        (
            "an unknown section",
            "[http.routers.store]",
            "[htpp.extra]\n  x = 1\n\n[http.routers.store]",
        ),
        (
            "the wrong auth path",
            "address = \"http://127.0.0.1:8080/.gateway-auth\"",
            "address = \"http://127.0.0.1:8080/auth\"",
        ),
        (
            "an identity header not copied",
            "\"X-Auth-Request-Email\", \"X-Auth-Request-Roles\", \"Cookie\"]",
            "\"X-Auth-Request-Email\", \"Cookie\"]",
        ),
        (
            "the cookies without the gateway's not copied",
            "\"X-Auth-Request-Roles\", \"Cookie\"]",
            "\"X-Auth-Request-Roles\"]",
        ),
        (
            "a regex that strips every request header",
            "authResponseHeadersRegex = \"(?i)^x[-_]auth[-_]request[-_]\"",
            "authResponseHeadersRegex = \".*\"",
        ),
        (
            "relative redirects resolved",
            "preserveLocationHeader = true",
            "preserveLocationHeader = false",
        ),
        (
            "the session cookies not sent to the gateway",
            "authRequestHeaders = [\"Cookie\", ",
            "authRequestHeaders = [",
        ),
        (
            "the refresh cookie dropped",
            "\"gw_refresh\", \"gw_refresh.0\"",
            "\"gw_refresh.0\"",
        ),
        ("a JWT chunk dropped", "\"__Host-gw_jwt.3\",", ""),
        (
            "strip after forwardAuth",
            "middlewares = [\"strip-identity\", \"gateway-auth\"]",
            "middlewares = [\"gateway-auth\", \"strip-identity\"]",
        ),
        (
            "no strip",
            "middlewares = [\"strip-identity\", \"gateway-auth\"]",
            "middlewares = [\"gateway-auth\"]",
        ),
        (
            "an identity header not stripped",
            "  X-Auth-Request-Roles = \"\"\n",
            "",
        ),
        (
            "the gateway's pages behind forwardAuth",
            "  priority = 20\n",
            "  priority = 20\n  middlewares = [\"gateway-auth\"]\n",
        ),
        (
            "the gateway's pages below the apps",
            "priority = 20",
            "priority = 5",
        ),
        (
            "the gateway's pages on one host only",
            "(Host(`store.localhost`) || Host(`forums.localhost`))",
            "Host(`store.localhost`)",
        ),
        (
            "no router for the forums",
            "rule = \"Host(`forums.localhost`)\"",
            "rule = \"Host(`forum.localhost`)\"",
        ),
        (
            "a missing middleware",
            "\"strip-identity\", \"gateway-auth\"]",
            "\"strip-identity\", \"gateway-auth2\"]",
        ),
    ];
    for (what, from, to) in mistakes {
        assert!(
            text.contains(from),
            "{what}: the file no longer contains {from:?}"
        );
        let broken = text.replacen(from, to, 1);
        assert!(broken.parse::<Table>().is_ok(), "{what}: still TOML");
        assert!(!all_problems(&broken).is_empty(), "{what}: not caught");
    }
}
