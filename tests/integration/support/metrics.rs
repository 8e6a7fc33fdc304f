//! Reading the admin `/metrics` (Prometheus text) in tests.

use std::net::SocketAddr;

use super::Client;

/// The admin listener's `/metrics` text now.
pub async fn scrape(admin: SocketAddr) -> String {
    Client::new(admin).get("admin", "/metrics").await.text()
}

/// The value of the sample of `name` whose labels are exactly `labels`
/// (in any order), if the exposition has one.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let mut found: Vec<(&str, &str)> = rest
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
                .collect();
            let mut wanted = labels.to_vec();
            found.sort_unstable();
            wanted.sort_unstable();
            (found == wanted).then(|| value.trim().parse().ok())?
        })
}

/// [`sample`], with a missing sample read as 0 (a counter not yet touched).
pub fn count(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}
