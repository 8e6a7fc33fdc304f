//! Why a configuration cannot be used, always with the key to blame: for
//! values that parsed but make no sense, and for figment's own syntax, type
//! and unknown-key errors (with the environment variable's name when the
//! value came from one).
//!
//! A leaf: every section's validation imports it, it imports none of them.

use std::path::PathBuf;

/// A configuration that cannot be used, with the key to blame.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, type or unknown-key problems found while parsing the layers.
    #[error("{0}")]
    Parse(String),
    /// A value that parsed but makes no sense.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted key path, e.g. `apps[1].upstream`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

pub(super) fn describe_figment_error(errors: figment::Error, origin: &str) -> String {
    let mut lines = Vec::new();
    for e in errors {
        // figment's path already ends with the offending field.
        let path = &e.path;
        let detail = match &e.kind {
            figment::error::Kind::UnknownField(_, expected) if !expected.is_empty() => {
                format!("unknown key (expected one of: {})", expected.join(", "))
            }
            figment::error::Kind::UnknownField(..) => "unknown key".to_owned(),
            figment::error::Kind::MissingField(field)
                if path.last().map(String::as_str) != Some(field) =>
            {
                push_missing(path, field, origin, &mut lines);
                continue;
            }
            figment::error::Kind::MissingField(_) => "missing required key".to_owned(),
            other => other.to_string(),
        };
        let from_env = e
            .metadata
            .as_ref()
            .is_some_and(|md| md.name.contains("environment"));
        if path.is_empty() {
            // Syntax errors: the parser's message carries line and column.
            lines.push(format!("{origin}: {}", detail.trim_end()));
        } else if from_env {
            let var = format!("GATEWAY_{}", path.join("__").to_uppercase());
            lines.push(format!(
                "{}: {detail} (from environment variable {var})",
                key_path(path)
            ));
        } else {
            lines.push(format!("{}: {detail} (in {origin})", key_path(path)));
        }
    }
    lines.join("\n")
}

fn push_missing(path: &[String], field: &str, origin: &str, lines: &mut Vec<String>) {
    let mut full = path.to_vec();
    full.push(field.to_owned());
    lines.push(format!(
        "{}: missing required key (in {origin})",
        key_path(&full)
    ));
}

/// `["apps", "1", "upstream"]` → `apps[1].upstream`.
pub(super) fn key_path(parts: &[String]) -> String {
    let mut out = String::new();
    for part in parts {
        if part.chars().all(|c| c.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}
