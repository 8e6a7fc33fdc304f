//! `Browser`: a cookie-jar client that behaves like a browser towards the
//! gateway, without following redirects, so every 302 of the login dance can
//! be asserted. Cookies are kept per host from `Set-Cookie` (`Max-Age=0`
//! deletes), sent back on every request to that host, and can be read, planted
//! or removed by the test (to play the attacker who stole one of them).
//!
//! Also: [`set_cookies`], every `Set-Cookie` of a reply parsed for attribute
//! assertions, and [`hidden_input`], the value of a form's hidden field.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http::Method;

use super::client::{Client, Reply};

/// What a browser sends as `Accept` when it navigates.
pub const NAVIGATION_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The gateway's login and logout pages (the default `gateway_path`).
pub const LOGIN_PATH: &str = "/.gateway/login";
/// See [`LOGIN_PATH`].
pub const LOGOUT_PATH: &str = "/.gateway/logout";

/// A browser on one gateway address (or several, taken in turn, as behind a
/// load balancer); the current host picks the cookie jar.
pub struct Browser {
    clients: Vec<Client>,
    next: AtomicUsize,
    host: Mutex<String>,
    jars: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

impl Browser {
    /// A browser visiting `host` through the gateway at `addr`.
    pub fn new(addr: SocketAddr, host: &str) -> Browser {
        Browser::round_robin(&[addr], host)
    }

    /// A browser visiting `host` through the gateway replicas at `addrs`,
    /// one request to each in turn (a load balancer without stickiness).
    pub fn round_robin(addrs: &[SocketAddr], host: &str) -> Browser {
        assert!(!addrs.is_empty(), "a browser needs a gateway address");
        Browser {
            clients: addrs.iter().map(|addr| Client::new(*addr)).collect(),
            next: AtomicUsize::new(0),
            host: Mutex::new(host.to_owned()),
            jars: Mutex::new(HashMap::new()),
        }
    }

    /// The host requests go to (and whose cookies they carry).
    pub fn host(&self) -> String {
        self.host.lock().expect("lock").clone()
    }

    /// Switches to another host (its own cookie jar).
    pub fn visit(&self, host: &str) {
        *self.host.lock().expect("lock") = host.to_owned();
    }

    /// A top-level navigation: `GET path` with a browser's `Accept`.
    pub async fn get(&self, path: &str) -> Reply {
        self.request(
            Method::GET,
            path,
            &[("accept", NAVIGATION_ACCEPT)],
            Bytes::new(),
        )
        .await
    }

    /// An API call from a page's script: `GET path`, `Accept: application/json`.
    pub async fn get_json(&self, path: &str) -> Reply {
        self.request(
            Method::GET,
            path,
            &[("accept", "application/json")],
            Bytes::new(),
        )
        .await
    }

    /// A form submission (`application/x-www-form-urlencoded`).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_form_with(path, fields, &[]).await
    }

    /// [`Browser::post_form`] with extra request headers.
    pub async fn post_form_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut all = vec![
            ("accept", NAVIGATION_ACCEPT),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        all.extend_from_slice(headers);
        self.request(Method::POST, path, &all, body).await
    }

    /// Any request: sends this host's cookies, stores the reply's `Set-Cookie`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let host = self.host();
        let cookie = self.cookie_header();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(cookie) = &cookie {
            all.push(("cookie", cookie));
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let reply = self.clients[turn]
            .send(method, &host, path, &all, body)
            .await;
        self.store(&host, &reply);
        reply
    }

    /// Takes the `Set-Cookie` headers of `reply` (to a request this browser
    /// did not send itself, e.g. one of a burst made with its cookies) into
    /// the current host's jar, as a browser does when the answer arrives:
    /// the latest wins.
    pub fn absorb(&self, reply: &Reply) {
        self.store(&self.host(), reply);
    }

    fn store(&self, host: &str, reply: &Reply) {
        let mut jars = self.jars.lock().expect("lock");
        let jar = jars.entry(host.to_owned()).or_default();
        for set in set_cookies(reply) {
            if set.max_age().is_some_and(|age| age <= 0) {
                jar.remove(&set.name);
            } else {
                jar.insert(set.name, set.value);
            }
        }
    }

    /// The login page: `GET /.gateway/login[?return_to=…]`; returns the
    /// reply and the form's CSRF token.
    pub async fn login_page(&self, return_to: Option<&str>) -> (Reply, String) {
        let path = match return_to {
            Some(target) => format!(
                "{LOGIN_PATH}?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("return_to", target)
                    .finish()
            ),
            None => LOGIN_PATH.to_owned(),
        };
        let page = self.get(&path).await;
        assert_eq!(page.status, 200, "login page: {}", page.text());
        let csrf = hidden_input(&page.text(), "csrf")
            .unwrap_or_else(|| panic!("no csrf field in the login page: {}", page.text()));
        (page, csrf)
    }

    /// Fills in and submits the login form, as a user who opened the login
    /// page directly. Returns the answer to the `POST`.
    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.login_returning_to(username, password, None).await
    }

    /// [`Browser::login`] from `GET /.gateway/login?return_to=…` (the
    /// gateway's redirect); the form's hidden `return_to` is submitted as is.
    pub async fn login_returning_to(
        &self,
        username: &str,
        password: &str,
        return_to: Option<&str>,
    ) -> Reply {
        let (page, csrf) = self.login_page(return_to).await;
        let target = hidden_input(&page.text(), "return_to").unwrap_or_default();
        self.post_form(
            LOGIN_PATH,
            &[
                ("username", username),
                ("password", password),
                ("csrf", &csrf),
                ("return_to", &target),
            ],
        )
        .await
    }

    /// `GET /.gateway/logout` (a form with a CSRF token), then submits it.
    pub async fn logout(&self) -> Reply {
        let page = self.get(LOGOUT_PATH).await;
        assert_eq!(page.status, 200, "logout page: {}", page.text());
        let csrf = hidden_input(&page.text(), "csrf")
            .unwrap_or_else(|| panic!("no csrf field in the logout page: {}", page.text()));
        self.post_form(LOGOUT_PATH, &[("csrf", &csrf)]).await
    }

    /// The current host's cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().get(name).cloned()
    }

    /// Plants cookie `name` for the current host.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let host = self.host();
        self.jars
            .lock()
            .expect("lock")
            .entry(host)
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }

    /// Forgets cookie `name` of the current host.
    pub fn remove_cookie(&self, name: &str) {
        let host = self.host();
        if let Some(jar) = self.jars.lock().expect("lock").get_mut(&host) {
            jar.remove(name);
        }
    }

    /// The current host's cookies.
    pub fn cookies(&self) -> BTreeMap<String, String> {
        let host = self.host();
        self.jars
            .lock()
            .expect("lock")
            .get(&host)
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces the current host's cookies (to restore a snapshot).
    pub fn set_cookies(&self, cookies: BTreeMap<String, String>) {
        let host = self.host();
        self.jars.lock().expect("lock").insert(host, cookies);
    }

    /// The `Cookie` header this browser sends to the current host.
    pub fn cookie_header(&self) -> Option<String> {
        let cookies = self.cookies();
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// One `Set-Cookie` header, parsed.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attributes in order, names as sent; flags have no value.
    pub attributes: Vec<(String, Option<String>)>,
    /// The header as sent.
    pub raw: String,
}

impl SetCookie {
    /// Attribute `name` (case-insensitive): `Some(None)` for a flag.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Whether attribute `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// `Max-Age` in seconds, if present and numeric.
    pub fn max_age(&self) -> Option<i64> {
        self.attribute("max-age")
            .flatten()
            .and_then(|v| v.trim().parse().ok())
    }

    /// Whether this header deletes the cookie (`Max-Age=0` or negative).
    pub fn clears(&self) -> bool {
        self.max_age().is_some_and(|age| age <= 0)
    }
}

/// Every `Set-Cookie` header of `reply`, parsed.
pub fn set_cookies(reply: &Reply) -> Vec<SetCookie> {
    reply
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_set_cookie)
        .collect()
}

/// The `Set-Cookie` of `reply` for cookie `name`, if exactly one.
pub fn set_cookie(reply: &Reply, name: &str) -> Option<SetCookie> {
    let mut matching: Vec<SetCookie> = set_cookies(reply)
        .into_iter()
        .filter(|c| c.name == name)
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} set more than once: {matching:?}"
    );
    matching.pop()
}

fn parse_set_cookie(raw: &str) -> Option<SetCookie> {
    let mut parts = raw.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let attributes = parts
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
            None => (a.to_owned(), None),
        })
        .collect();
    Some(SetCookie {
        name: name.trim().to_owned(),
        value: value.to_owned(),
        attributes,
        raw: raw.to_owned(),
    })
}

/// The (HTML-unescaped) `value` of the first `<input>` named `name` in `html`.
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<input") {
        let start = from + at;
        let end = start + html[start..].find('>')?;
        let attrs = attributes(&html[start + "<input".len()..end]);
        if attrs.get("name").map(|n| unescape(n)) == Some(name.to_owned()) {
            return Some(attrs.get("value").map(|v| unescape(v)).unwrap_or_default());
        }
        from = end;
    }
    None
}

/// A tag's attributes (`a="x" b='y' c=z d`), names lower-cased.
fn attributes(tag: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = tag.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (v, tail) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after[1..];
                    let close = body.find(q).unwrap_or(body.len());
                    (&body[..close], body.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let close = after
                        .find(|c: char| c.is_whitespace())
                        .unwrap_or(after.len());
                    (&after[..close], &after[close..])
                }
            };
            value = v.to_owned();
            rest = tail;
        } else if rest.starts_with('/') {
            rest = &rest[1..];
        }
        if !name.is_empty() {
            out.entry(name).or_insert(value);
        }
        rest = rest.trim_start();
    }
    out
}

/// Decodes the HTML character references a template engine writes.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity.strip_prefix('#').and_then(|num| {
                let code = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse().ok(),
                };
                code.and_then(char::from_u32)
            }),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_inputs_are_found_in_any_attribute_order() {
        let html = r#"<form><input type="text" name="username">
            <input value="a&amp;b&#x2f;c" type=hidden name='csrf'/>
            <input type="hidden" name="return_to" value="&#x2f;cart?a=1"></form>"#;
        assert_eq!(hidden_input(html, "csrf").as_deref(), Some("a&b/c"));
        assert_eq!(
            hidden_input(html, "return_to").as_deref(),
            Some("/cart?a=1")
        );
        assert_eq!(hidden_input(html, "username").as_deref(), Some(""));
        assert_eq!(hidden_input(html, "nope"), None);
    }
}
