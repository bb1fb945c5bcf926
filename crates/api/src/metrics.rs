//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4), every name under
//! `signet_`. The relay's counters come through [`RelayCounters`], which the binary implements
//! over the gateway's counters, so this crate does not depend on the relay; configs by `Status`
//! come from `signet-app`. With `[http] metrics_token` set, a scrape must carry it as a bearer
//! token; otherwise `/metrics` is open, like `/healthz`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use signet_app::{Clock, Dns};
use signet_keys::{Status, TokenDigest};

use crate::{ApiError, ApiState};

/// The media type of the text exposition format.
const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One of the relay's counters at a scrape: `name` (lower case and `_`, e.g. `accepted`)
/// becomes `signet_relay_<name>_total`, `help` its `# HELP` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSample {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
}

/// The relay's counters, read at each scrape.
pub trait RelayCounters: Send + Sync + std::fmt::Debug {
    fn samples(&self) -> Vec<CounterSample>;
}

/// `GET /metrics`.
pub(crate) async fn metrics<D: Dns, C: Clock>(
    State(state): State<ApiState<D, C>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(wanted) = &state.metrics_token {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer METRICS_TOKEN"))?;
        if !TokenDigest::of(presented).matches(wanted) {
            return Err(ApiError::unauthorized(
                "the token is not [http] metrics_token",
            ));
        }
    }
    let relay = state
        .relay
        .as_ref()
        .map(|r| r.samples())
        .unwrap_or_default();
    let configs = state.service.config_counts().await?;
    let mut response = render(&relay, &configs, env!("CARGO_PKG_VERSION")).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT));
    Ok(response)
}

/// The exposition text: each family's `# HELP` and `# TYPE` lines, then its samples.
pub(crate) fn render(relay: &[CounterSample], configs: &[(Status, u64)], version: &str) -> String {
    let mut out = String::new();
    for sample in relay {
        let name = format!("signet_relay_{}_total", sample.name);
        family(&mut out, &name, sample.help, "counter");
        let _ = writeln!(out, "{name} {}", sample.value);
    }
    family(
        &mut out,
        "signet_configs",
        "Signing configs by Status, as signet dkim get shows them.",
        "gauge",
    );
    for (status, count) in configs {
        let _ = writeln!(out, "signet_configs{{status=\"{status}\"}} {count}");
    }
    family(
        &mut out,
        "signet_build_info",
        "The version of signet running; always 1.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "signet_build_info{{version=\"{}\"}} 1",
        label_value(version)
    );
    out
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped as the format wants.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text follows the exposition format line by line: every family has `# HELP` and
    /// `# TYPE` before its samples, names are valid metric names, values are numbers.
    #[test]
    fn the_text_is_well_formed_exposition() {
        let relay = [
            CounterSample {
                name: "accepted",
                help: "Messages spooled and answered 250.",
                value: 7,
            },
            CounterSample {
                name: "refused",
                help: "Replies with a 5xx.",
                value: 0,
            },
        ];
        let configs = [
            (Status::NoDkimKeys, 0),
            (Status::CnameMissing, 2),
            (Status::Valid, 3),
        ];
        let text = render(&relay, &configs, "1.2.3 \"x\"");
        assert!(text.contains("signet_relay_accepted_total 7\n"), "{text}");
        assert!(text.contains("signet_configs{status=\"CnameMissing\"} 2\n"));
        assert!(text.contains("signet_build_info{version=\"1.2.3 \\\"x\\\"\"} 1\n"));
        let valid_name = |name: &str| {
            name.starts_with("signet_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        let mut described = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(valid_name(name) && !help.is_empty(), "{line}");
                described.insert(name.to_string(), None);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert_eq!(
                    described.insert(name.to_string(), Some(kind.to_string())),
                    Some(None),
                    "TYPE after HELP, once: {line}"
                );
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                assert!(
                    matches!(described.get(name), Some(Some(_))),
                    "sample before its HELP and TYPE: {line}"
                );
                if name.ends_with("_total") {
                    assert_eq!(described[name].as_deref(), Some("counter"));
                }
                value.parse::<f64>().unwrap();
            }
        }
        assert_eq!(described.len(), 4);
    }
}
