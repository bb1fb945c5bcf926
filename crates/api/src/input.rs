//! Request bodies and query strings, parsed into the use-cases' options with errors that name
//! the field. Property names are those of `signet dkim get --format json` (snake_case); the
//! `Get-DkimSigningConfig` spellings (`Enabled`, `KeySize`, …) are accepted too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use signet_app::{NewConnector, NewOptions, PageKey, SetOptions};
use signet_keys::{Algorithm, Canonicalization, DomainName, IpNetwork, RsaBits, Span, TenantName};

use crate::ApiError;

/// Pages of `GET /dkim`: 100 configs unless `?limit=` says otherwise, at most 1,000.
pub(crate) const DEFAULT_LIMIT: u32 = 100;
pub(crate) const MAX_LIMIT: u32 = 1000;

/// A tenant named in a path, query or body.
pub(crate) fn tenant(field: &str, text: &str) -> Result<TenantName, ApiError> {
    text.parse()
        .map_err(|e: signet_keys::Error| ApiError::bad_request(field, e))
}

/// A domain named in a path or query.
pub(crate) fn domain(field: &str, text: &str) -> Result<DomainName, ApiError> {
    text.parse()
        .map_err(|e: signet_keys::Error| ApiError::bad_request(field, e))
}

pub(crate) fn limit(text: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    text.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                "limit",
                format!("'{text}' is not a whole number from 1 to {MAX_LIMIT}"),
            )
        })
}

/// A cursor is where the previous page ended, opaque to clients: base64url of `tenant domain`.
pub(crate) fn encode_cursor(key: &PageKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("{} {}", key.tenant, key.domain))
}

pub(crate) fn cursor(text: Option<&str>) -> Result<Option<PageKey>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    let bad = || ApiError::bad_request("cursor", "not a cursor this server gave out");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let plain = String::from_utf8(bytes).map_err(|_| bad())?;
    let (tenant, domain) = plain.split_once(' ').ok_or_else(bad)?;
    Ok(Some(PageKey {
        tenant: tenant.parse().map_err(|_| bad())?,
        domain: domain.parse().map_err(|_| bad())?,
    }))
}

/// The JSON object of a body; an empty body is an empty object.
fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("body", "must be a JSON object")),
        Err(e) => Err(ApiError::bad_request("body", format!("not JSON: {e}"))),
    }
}

/// A property by either of its names (`include_key_expiration`, `IncludeKeyExpiration`).
fn snake(name: &str) -> Option<&'static str> {
    const NAMES: [(&str, &str); 7] = [
        ("enabled", "Enabled"),
        ("algorithm", "Algorithm"),
        ("header_canonicalization", "HeaderCanonicalization"),
        ("body_canonicalization", "BodyCanonicalization"),
        ("include_key_expiration", "IncludeKeyExpiration"),
        ("rotation_interval", "RotationInterval"),
        ("key_size", "KeySize"),
    ];
    NAMES
        .iter()
        .find(|(snake, pascal)| name == *snake || name == *pascal)
        .map(|(snake, _)| *snake)
}

fn boolean(field: &str, value: &Value) -> Result<bool, ApiError> {
    value
        .as_bool()
        .ok_or_else(|| ApiError::bad_request(field, "must be true or false"))
}

fn canonicalization(field: &str, value: &Value) -> Result<Canonicalization, ApiError> {
    let text = value
        .as_str()
        .ok_or_else(|| ApiError::bad_request(field, "must be \"Relaxed\" or \"Simple\""))?;
    text.parse()
        .map_err(|e: signet_keys::Error| ApiError::bad_request(field, e))
}

fn interval(field: &str, value: &Value) -> Result<Option<Span>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => text
            .parse()
            .map(Some)
            .map_err(|e: signet_keys::Error| ApiError::bad_request(field, e)),
        _ => Err(ApiError::bad_request(
            field,
            "must be a span such as \"90d\", or null for the installation's",
        )),
    }
}

/// A string member of a body, required.
fn text<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match fields.get(name) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ApiError::bad_request(name, "must be a string")),
        None => Err(ApiError::bad_request(name, "is missing")),
    }
}

/// Refuses members other than `known`, naming the first one.
fn only(fields: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match fields.keys().find(|name| !known.contains(&name.as_str())) {
        Some(name) => Err(ApiError::bad_request(
            name,
            format!("is not known here ({})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `POST /tenants`: `{"name": "contoso"}`.
pub(crate) fn new_tenant(body: &[u8]) -> Result<TenantName, ApiError> {
    let fields = object(body)?;
    only(&fields, &["name"])?;
    tenant("name", text(&fields, "name")?)
}

/// `POST /domains`: `{"tenant": "contoso", "domain": "contoso.com"}`.
pub(crate) fn new_domain(body: &[u8]) -> Result<(TenantName, DomainName), ApiError> {
    let fields = object(body)?;
    only(&fields, &["tenant", "domain"])?;
    Ok((
        tenant("tenant", text(&fields, "tenant")?)?,
        domain("domain", text(&fields, "domain")?)?,
    ))
}

/// `POST /connectors`: `{"tenant", "name", "from": [CIDR, …]}` for a relay connector, or
/// `{"tenant", "name", "login", "password"}` for a submission login. The password is moved
/// into memory that is wiped when dropped; no error repeats it.
pub(crate) fn new_connector(body: &[u8]) -> Result<(TenantName, String, NewConnector), ApiError> {
    let mut fields = object(body)?;
    only(&fields, &["tenant", "name", "from", "login", "password"])?;
    let owner = tenant("tenant", text(&fields, "tenant")?)?;
    let name = text(&fields, "name")?.to_string();
    signet_app::check_connector_name(&name).map_err(|e| ApiError::bad_request("name", e))?;
    let new = match (fields.get("from"), fields.get("login")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "from",
                "give either from (networks) or login and password, not both",
            ));
        }
        (Some(from), None) => {
            if fields.contains_key("password") {
                return Err(ApiError::bad_request("password", "goes only with login"));
            }
            let items = from.as_array().ok_or_else(|| {
                ApiError::bad_request(
                    "from",
                    "must be a list of networks such as \"192.0.2.0/24\"",
                )
            })?;
            if items.is_empty() {
                return Err(ApiError::bad_request("from", "names no network"));
            }
            let networks = items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or_else(|| ApiError::bad_request("from", "must be a list of strings"))?
                        .parse::<IpNetwork>()
                        .map_err(|e| ApiError::bad_request("from", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            NewConnector::Networks(networks)
        }
        (None, Some(_)) => {
            let username = text(&fields, "login")?.to_string();
            let password = match fields.remove("password") {
                Some(Value::String(password)) => zeroize::Zeroizing::new(password),
                Some(_) => return Err(ApiError::bad_request("password", "must be a string")),
                None => return Err(ApiError::bad_request("password", "is missing")),
            };
            if password.chars().count() < signet_app::MINIMUM_PASSWORD {
                return Err(ApiError::bad_request(
                    "password",
                    format!(
                        "is too short: use at least {} characters",
                        signet_app::MINIMUM_PASSWORD
                    ),
                ));
            }
            NewConnector::Login { username, password }
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "from",
                "is missing: give from (networks) or login and password",
            ));
        }
    };
    Ok((owner, name, new))
}

/// `POST /dkim/{domain}`: the options of `signet dkim new`.
pub(crate) fn new_options(body: &[u8]) -> Result<NewOptions, ApiError> {
    let mut options = NewOptions::default();
    for (name, value) in &object(body)? {
        match snake(name) {
            Some("enabled") => options.enabled = boolean(name, value)?,
            Some("algorithm") => {
                let text = value.as_str().ok_or_else(|| {
                    ApiError::bad_request(name, "must be \"RsaSHA256\" or \"Ed25519SHA256\"")
                })?;
                options.algorithm = text
                    .parse::<Algorithm>()
                    .map_err(|e| ApiError::bad_request(name, e))?;
            }
            Some("key_size") => options.key_size = Some(key_size(name, value)?),
            Some("header_canonicalization") => {
                options.header_canonicalization = canonicalization(name, value)?;
            }
            Some("body_canonicalization") => {
                options.body_canonicalization = canonicalization(name, value)?;
            }
            _ => {
                return Err(ApiError::bad_request(
                    name,
                    "is not an option of a new config (key_size, algorithm, header_canonicalization, body_canonicalization, enabled)",
                ));
            }
        }
    }
    Ok(options)
}

fn key_size(field: &str, value: &Value) -> Result<RsaBits, ApiError> {
    let bits = value
        .as_u64()
        .ok_or_else(|| ApiError::bad_request(field, "must be 1024 or 2048"))?;
    bits.to_string()
        .parse()
        .map_err(|e: signet_keys::Error| ApiError::bad_request(field, e))
}

/// `PATCH /dkim/{domain}`: the settings `signet dkim set` changes.
pub(crate) fn set_options(body: &[u8]) -> Result<SetOptions, ApiError> {
    let mut options = SetOptions::default();
    let fields = object(body)?;
    if fields.is_empty() {
        return Err(ApiError::bad_request(
            "body",
            "names no setting to change (enabled, header_canonicalization, body_canonicalization, include_key_expiration, rotation_interval)",
        ));
    }
    for (name, value) in &fields {
        match snake(name) {
            Some("enabled") => options.enabled = Some(boolean(name, value)?),
            Some("header_canonicalization") => {
                options.header_canonicalization = Some(canonicalization(name, value)?);
            }
            Some("body_canonicalization") => {
                options.body_canonicalization = Some(canonicalization(name, value)?);
            }
            Some("include_key_expiration") => {
                options.include_key_expiration = Some(boolean(name, value)?);
            }
            Some("rotation_interval") => options.rotation_interval = Some(interval(name, value)?),
            _ => {
                return Err(ApiError::bad_request(
                    name,
                    "is not a setting that can be changed here (enabled, header_canonicalization, body_canonicalization, include_key_expiration, rotation_interval)",
                ));
            }
        }
    }
    Ok(options)
}

/// `POST /dkim/{domain}/rotate`: an optional key size for the new key.
pub(crate) fn rotate_options(body: &[u8]) -> Result<Option<RsaBits>, ApiError> {
    let mut size = None;
    for (name, value) in &object(body)? {
        if snake(name) != Some("key_size") {
            return Err(ApiError::bad_request(
                name,
                "is not an option of a rotation (key_size)",
            ));
        }
        size = Some(key_size(name, value)?);
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_with_either_name_and_errors_name_the_field() {
        let options =
            set_options(br#"{"Enabled": true, "body_canonicalization": "simple"}"#).unwrap();
        assert_eq!(options.enabled, Some(true));
        assert_eq!(
            options.body_canonicalization,
            Some(Canonicalization::Simple)
        );
        let options = set_options(br#"{"RotationInterval": null}"#).unwrap();
        assert_eq!(options.rotation_interval, Some(None));
        for (body, field) in [
            (&br#"{"Enabled": "yes"}"#[..], "Enabled:"),
            (
                br#"{"HeaderCanonicalization": "loose"}"#,
                "HeaderCanonicalization:",
            ),
            (br#"{"Status": "Valid"}"#, "Status:"),
            (br"{}", "body:"),
            (br"[1]", "body:"),
            (br"{", "body:"),
        ] {
            let error = format!("{:?}", set_options(body).unwrap_err());
            assert!(error.contains(field), "{error}");
        }
        assert_eq!(rotate_options(b"").unwrap(), None);
        assert_eq!(
            rotate_options(br#"{"KeySize": 1024}"#).unwrap(),
            Some(RsaBits::B1024)
        );
        for body in [
            &br#"{"KeySize": 3}"#[..],
            br#"{"KeySize": "big"}"#,
            br#"{"x": 1}"#,
        ] {
            assert!(rotate_options(body).is_err());
        }
    }

    #[test]
    fn cursors_round_trip_and_others_are_refused() {
        let key = PageKey {
            tenant: "contoso".parse().unwrap(),
            domain: "contoso.com".parse().unwrap(),
        };
        assert_eq!(cursor(Some(&encode_cursor(&key))).unwrap(), Some(key));
        assert!(cursor(Some("nonsense!")).is_err());
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        for bad in ["0", "1001", "-1", "ten"] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
