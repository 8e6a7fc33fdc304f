//! The sign-in page (`{gateway_path}/login`) and the sign-out confirmation
//! page (`{gateway_path}/logout`) the gateway serves for each app.
//!
//! Input: once, optionally, the source text of the app's `login_template`
//! file; then, per request, a [`PageData`]. Output: a complete HTML document
//! (no JavaScript, no external assets, styles inline) whose form posts the
//! fields `username`, `password`, `csrf` and `return_to` (sign in) or `csrf`
//! (sign out) to `action`.
//!
//! Custom templates are [MiniJinja](https://docs.rs/minijinja) (Jinja2 syntax)
//! and replace the sign-in page only; the sign-out page is always the built-in
//! one. They see these variables, all strings except `error`:
//!
//! | variable    | meaning                                                          |
//! |-------------|------------------------------------------------------------------|
//! | `title`     | the app's title, e.g. `Store`                                    |
//! | `action`    | the path the form must post to, e.g. `/.gateway/login`           |
//! | `csrf`      | the CSRF token: post it back in a hidden field named `csrf`      |
//! | `return_to` | where to go after signing in: hidden field named `return_to` (may be empty) |
//! | `username`  | the username to prefill after a failed attempt (may be empty)    |
//! | `error`     | a generic failure message to show, or none                       |
//!
//! The form must use `method="post"` and name its inputs exactly `username`,
//! `password`, `csrf` and `return_to`. Every value is HTML-escaped on output
//! (also in custom templates), so user-supplied text such as `return_to` or
//! `username` cannot inject markup. Filters available: `escape`/`e`,
//! `default`/`d`, `upper`, `lower`, `title`, `capitalize`, `trim`, `replace`,
//! `length`; tests: `defined`, `undefined`, `none`, `true`, `false`, `string`.
//!
//! Failure modes: [`LoginPage::new`] refuses a custom template with a syntax
//! error or one that fails to render sample data, naming the problem and its
//! line. Rendering never fails and never panics: if a custom template fails at
//! render time, the built-in page is served instead and a warning is logged.

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment};

/// Name of the built-in sign-in template.
const LOGIN: &str = "login.html";
/// Name of the built-in sign-out template.
const LOGOUT: &str = "logout.html";
/// Name of the custom sign-in template (appears in error messages).
const CUSTOM: &str = "login_template";

/// Shared head of the built-in pages, up to and including `<title>`'s start.
macro_rules! head {
    () => {
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="same-origin">
<style>
  *, *::before, *::after { box-sizing: border-box; }
  html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
  body { margin: 0; min-height: 100vh; display: flex; flex-direction: column;
         align-items: center; justify-content: center; padding: 1.5rem 1rem;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
         background: #f3f4f6; color: #111827; }
  main { width: 100%; max-width: 24rem; background: #fff; border: 1px solid #e5e7eb;
         border-radius: 12px; padding: 2rem 1.75rem;
         box-shadow: 0 1px 2px rgba(0,0,0,.04), 0 8px 24px rgba(0,0,0,.06); }
  h1 { font-size: 1.375rem; line-height: 1.3; font-weight: 650; margin: 0 0 1.5rem;
       overflow-wrap: anywhere; }
  p { margin: 0 0 1.5rem; color: #374151; overflow-wrap: anywhere; }
  label { display: block; font-weight: 600; font-size: .9375rem; margin: 0 0 .375rem; }
  input[type=text], input[type=password] {
         display: block; width: 100%; min-height: 2.75rem; margin: 0 0 1.125rem;
         padding: .625rem .75rem; font: inherit; color: inherit; background: #fff;
         border: 1px solid #6b7280; border-radius: 8px; }
  input[type=text]:focus, input[type=password]:focus { border-color: #1d4ed8; }
  button { display: block; width: 100%; min-height: 2.75rem; margin: .5rem 0 0;
           padding: .625rem 1rem; font: inherit; font-weight: 600; color: #fff;
           background: #1d4ed8; border: 0; border-radius: 8px; cursor: pointer; }
  button:hover { background: #1e40af; }
  :focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }
  .error { margin: 0 0 1.25rem; padding: .75rem .875rem; border-radius: 8px;
           background: #fef2f2; border: 1px solid #f87171; color: #991b1b; }
  footer { margin-top: 1.25rem; font-size: .8125rem; color: #4b5563; }
  @media (prefers-color-scheme: dark) {
    body { background: #0f172a; color: #e5e7eb; }
    main { background: #1e293b; border-color: #334155; box-shadow: none; }
    p { color: #cbd5e1; }
    input[type=text], input[type=password] { background: #0f172a; border-color: #64748b; }
    input[type=text]:focus, input[type=password]:focus { border-color: #93c5fd; }
    button { background: #2563eb; }
    button:hover { background: #1d4ed8; }
    :focus-visible { outline-color: #93c5fd; }
    .error { background: #450a0a; border-color: #b91c1c; color: #fecaca; }
    footer { color: #94a3b8; }
  }
</style>
"#
    };
}

/// Shared end of the built-in pages, from the closing `</main>` on.
macro_rules! foot {
    () => {
        r#"</main>
<footer>Protected by gateway</footer>
</body>
</html>
"#
    };
}

/// The built-in sign-in page.
const LOGIN_SOURCE: &str = concat!(
    head!(),
    r#"<title>Sign in · {{ title }}</title>
</head>
<body>
<main>
  <h1>Sign in to {{ title }}</h1>
{%- if error %}
  <p class="error" id="error" role="alert">{{ error }}</p>
{%- endif %}
  <form method="post" action="{{ action }}">
    <input type="hidden" name="csrf" value="{{ csrf }}">
    <input type="hidden" name="return_to" value="{{ return_to }}">
    <label for="username">Username</label>
    <input id="username" name="username" type="text" value="{{ username }}"
           autocomplete="username" autocapitalize="none" autocorrect="off" spellcheck="false"
           required{% if error %} aria-describedby="error"{% endif %}{% if not username %} autofocus{% endif %}>
    <label for="password">Password</label>
    <input id="password" name="password" type="password"
           autocomplete="current-password" required{% if username %} autofocus{% endif %}>
    <button type="submit">Sign in</button>
  </form>
"#,
    foot!()
);

/// The built-in sign-out confirmation page.
const LOGOUT_SOURCE: &str = concat!(
    head!(),
    r#"<title>Sign out · {{ title }}</title>
</head>
<body>
<main>
  <h1>Sign out of {{ title }}?</h1>
{%- if error %}
  <p class="error" role="alert">{{ error }}</p>
{%- endif %}
  <p>You will need to sign in again to use {{ title }}.</p>
  <form method="post" action="{{ action }}">
    <input type="hidden" name="csrf" value="{{ csrf }}">
    <button type="submit" autofocus>Sign out</button>
  </form>
"#,
    foot!()
);

/// What a page shows; every field is HTML-escaped on output.
#[derive(Debug, Clone, Copy)]
pub struct PageData<'a> {
    /// The app's title, e.g. `Store`.
    pub title: &'a str,
    /// The path the form posts to, e.g. `/.gateway/login`.
    pub action: &'a str,
    /// The CSRF token for the hidden field named `csrf`.
    pub csrf: &'a str,
    /// The hidden field named `return_to` (may be empty).
    pub return_to: &'a str,
    /// Prefills the username field after a failed attempt (may be empty).
    pub username: &'a str,
    /// A generic failure message shown above the form (`role="alert"`).
    pub error: Option<&'a str>,
}

impl PageData<'_> {
    /// The template context.
    fn context(&self) -> Value {
        Value::from_iter([
            ("title", Value::from(self.title)),
            ("action", Value::from(self.action)),
            ("csrf", Value::from(self.csrf)),
            ("return_to", Value::from(self.return_to)),
            ("username", Value::from(self.username)),
            ("error", Value::from(self.error)),
        ])
    }
}

/// Renders an app's sign-in and sign-out pages.
#[derive(Debug)]
pub struct LoginPage {
    env: Environment<'static>,
    custom: bool,
}

impl LoginPage {
    /// The built-in template, or `custom` (template source text, from the
    /// app's `login_template` file) when given.
    ///
    /// Errs, naming the problem and its line, when `custom` has a syntax error
    /// or fails to render sample data.
    pub fn new(custom: Option<&str>) -> Result<LoginPage, String> {
        let mut env = environment();
        env.add_template(LOGIN, LOGIN_SOURCE)
            .map_err(|e| format!("built-in login page: {e}"))?;
        env.add_template(LOGOUT, LOGOUT_SOURCE)
            .map_err(|e| format!("built-in logout page: {e}"))?;
        let Some(source) = custom else {
            return Ok(LoginPage { env, custom: false });
        };
        env.add_template_owned(CUSTOM, source.to_owned())
            .map_err(|e| format!("login template: {e}"))?;
        let page = LoginPage { env, custom: true };
        let sample = PageData {
            title: "App",
            action: "/.gateway/login",
            csrf: "token",
            return_to: "/",
            username: "user",
            error: Some("Sign-in failed."),
        };
        let empty = PageData {
            title: "",
            action: "",
            csrf: "",
            return_to: "",
            username: "",
            error: None,
        };
        for data in [sample, empty] {
            page.render(CUSTOM, &data)
                .map_err(|e| format!("login template: {e}"))?;
        }
        Ok(page)
    }

    /// The sign-in page: the custom template if one was given and it renders,
    /// otherwise the built-in one.
    pub fn render_login(&self, data: &PageData<'_>) -> String {
        if self.custom {
            match self.render(CUSTOM, data) {
                Ok(html) => return html,
                Err(e) => tracing::warn!(
                    error = %e,
                    "custom login template failed to render; serving the built-in page"
                ),
            }
        }
        self.render(LOGIN, data)
            .unwrap_or_else(|e| fallback(e, LOGIN, data))
    }

    /// The "Sign out of {title}?" page: a POST form to `action` carrying the
    /// `csrf` hidden field and a "Sign out" button.
    pub fn render_logout(&self, data: &PageData<'_>) -> String {
        self.render(LOGOUT, data)
            .unwrap_or_else(|e| fallback(e, LOGOUT, data))
    }

    fn render(&self, name: &str, data: &PageData<'_>) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(data.context())
    }
}

/// An environment that HTML-escapes every template and offers a small set of
/// harmless filters and tests.
fn environment() -> Environment<'static> {
    use minijinja::{filters, tests};

    let mut env = Environment::empty();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_filter("escape", filters::escape);
    env.add_filter("e", filters::escape);
    env.add_filter("default", filters::default);
    env.add_filter("d", filters::default);
    env.add_filter("upper", filters::upper);
    env.add_filter("lower", filters::lower);
    env.add_filter("title", filters::title);
    env.add_filter("capitalize", filters::capitalize);
    env.add_filter("trim", filters::trim);
    env.add_filter("replace", filters::replace);
    env.add_filter("length", filters::length);
    env.add_test("defined", tests::is_defined);
    env.add_test("undefined", tests::is_undefined);
    env.add_test("none", tests::is_none);
    env.add_test("true", tests::is_true);
    env.add_test("false", tests::is_false);
    env.add_test("string", tests::is_string);
    env
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bare page for the case the built-in templates fail (they are tested not
/// to): still a working form, all values escaped.
fn fallback(error: minijinja::Error, name: &str, data: &PageData<'_>) -> String {
    tracing::warn!(error = %error, template = name, "built-in page failed to render");
    let title = escape(data.title);
    let action = escape(data.action);
    let csrf = escape(data.csrf);
    if name == LOGOUT {
        return format!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign out · {title}</title></head><body><main><h1>Sign out of {title}?</h1><form method="post" action="{action}"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button></form></main></body></html>"#
        );
    }
    let return_to = escape(data.return_to);
    let username = escape(data.username);
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · {title}</title></head><body><main><h1>Sign in to {title}</h1><form method="post" action="{action}"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="return_to" value="{return_to}"><label for="username">Username</label><input id="username" name="username" autocomplete="username" required value="{username}"><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required><button type="submit">Sign in</button></form></main></body></html>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    fn data() -> PageData<'static> {
        PageData {
            title: "Store",
            action: "/.gateway/login",
            csrf: "tok123",
            return_to: "/cart?x=1",
            username: "",
            error: None,
        }
    }

    fn builtin() -> LoginPage {
        LoginPage::new(None).expect("built-in templates compile")
    }

    /// The one start tag in `html` containing `needle`.
    fn tag_with<'h>(html: &'h str, needle: &str) -> &'h str {
        let at = html
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {html}"));
        let start = html[..at].rfind('<').expect("tag start");
        let end = at + html[at..].find('>').expect("tag end");
        &html[start..=end]
    }

    #[test]
    fn login_fields_present() {
        let html = builtin().render_login(&data());
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(html.contains(r#"name="viewport""#));
        assert!(html.contains("<title>Sign in · Store</title>"));
        assert!(html.contains("<main>"));
        assert!(html.contains("<h1>Sign in to Store</h1>"));
        assert!(html.contains(r#"<form method="post" action="&#x2f;.gateway&#x2f;login">"#));
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="tok123">"#));
        assert!(html.contains(r#"<input type="hidden" name="return_to" value="&#x2f;cart?x=1">"#));
        assert!(html.contains(r#"<label for="username">"#));
        assert!(html.contains(r#"<label for="password">"#));
        assert!(html.contains(r#"<button type="submit">Sign in</button>"#));
        assert!(html.contains("Protected by gateway"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("role=\"alert\""));

        let user = tag_with(&html, r#"name="username""#);
        assert!(user.contains(r#"id="username""#));
        assert!(user.contains(r#"autocomplete="username""#));
        assert!(user.contains("required"));
        assert!(user.contains("autofocus"));
        let pass = tag_with(&html, r#"name="password""#);
        assert!(pass.contains(r#"type="password""#));
        assert!(pass.contains(r#"autocomplete="current-password""#));
        assert!(pass.contains("required"));
        assert!(!pass.contains("autofocus"));
    }

    #[test]
    fn prefilled_username_and_error() {
        let html = builtin().render_login(&PageData {
            username: "alice",
            error: Some("Wrong username or password."),
            ..data()
        });
        let user = tag_with(&html, r#"name="username""#);
        assert!(user.contains(r#"value="alice""#));
        assert!(!user.contains("autofocus"));
        assert!(user.contains(r#"aria-describedby="error""#));
        assert!(tag_with(&html, r#"name="password""#).contains("autofocus"));
        assert!(html.contains(r#"role="alert">Wrong username or password.</p>"#));
    }

    #[test]
    fn logout_page() {
        let html = builtin().render_logout(&PageData {
            action: "/.gateway/logout",
            ..data()
        });
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(html.contains("<h1>Sign out of Store?</h1>"));
        assert!(html.contains(r#"<form method="post" action="&#x2f;.gateway&#x2f;logout">"#));
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="tok123">"#));
        assert!(html.contains(r#"<button type="submit" autofocus>Sign out</button>"#));
        assert!(!html.contains(r#"name="password""#));
        assert!(html.contains("Protected by gateway"));
    }

    #[test]
    fn every_field_escaped() {
        let evil = r#""><script>alert(1)</script>"#;
        let hostile = PageData {
            title: evil,
            action: evil,
            csrf: evil,
            return_to: evil,
            username: evil,
            error: Some(evil),
        };
        let custom = LoginPage::new(Some(
            "{{ title }}|{{ action }}|{{ csrf }}|{{ return_to }}|{{ username }}|{{ error }}",
        ))
        .expect("custom template compiles");
        let pages = [
            builtin().render_login(&hostile),
            builtin().render_logout(&hostile),
            custom.render_login(&hostile),
            fallback(
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "test"),
                LOGIN,
                &hostile,
            ),
            fallback(
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "test"),
                LOGOUT,
                &hostile,
            ),
        ];
        for html in pages {
            assert!(!html.contains("<script"), "{html}");
            assert!(html.contains("&lt;script&gt;"), "{html}");
        }
        let custom = custom.render_login(&hostile);
        assert_eq!(custom.matches("&quot;&gt;&lt;script&gt;").count(), 6);
    }

    #[test]
    fn custom_template_used() {
        let page = LoginPage::new(Some(
            r#"<h1>Welcome to {{ title|upper }}</h1>{% if error %}<b>{{ error }}</b>{% endif %}<form method="post" action="{{ action }}"><input name="csrf" value="{{ csrf }}"><input name="username" value="{{ username|default("") }}"></form>"#,
        ))
        .expect("custom template compiles");
        let html = page.render_login(&PageData {
            username: "bob",
            error: Some("No."),
            ..data()
        });
        assert_eq!(
            html,
            r#"<h1>Welcome to STORE</h1><b>No.</b><form method="post" action="&#x2f;.gateway&#x2f;login"><input name="csrf" value="tok123"><input name="username" value="bob"></form>"#
        );
        // The sign-out page stays built-in.
        assert!(page
            .render_logout(&data())
            .contains("<h1>Sign out of Store?</h1>"));
    }

    #[test]
    fn broken_custom_template_refused() {
        let err = LoginPage::new(Some("<p>\n{% if title %}unclosed")).expect_err("syntax error");
        assert!(err.starts_with("login template: "), "{err}");
        assert!(err.contains("login_template:"), "{err}");
        let err = LoginPage::new(Some("{{ title|nosuchfilter }}")).expect_err("unknown filter");
        assert!(
            err.contains("nosuchfilter") || err.contains("filter"),
            "{err}"
        );
        assert!(LoginPage::new(Some("{{ title }")).is_err());
    }

    #[test]
    fn failing_custom_template_falls_back() {
        // Fine with the sample data at start-up, fails for this request.
        let page = LoginPage::new(Some(
            r#"{% if username == "boom" %}{{ 1 // 0 }}{% endif %}ok"#,
        ))
        .expect("renders sample data");
        assert_eq!(page.render_login(&data()), "ok");
        let html = page.render_login(&PageData {
            username: "boom",
            ..data()
        });
        assert!(html.contains("<h1>Sign in to Store</h1>"));
        assert!(html.contains(r#"value="boom""#));
    }

    #[test]
    fn undefined_variables_render_empty() {
        let page = LoginPage::new(Some("[{{ nothing }}]")).expect("lenient undefined");
        assert_eq!(page.render_login(&data()), "[]");
    }
}
