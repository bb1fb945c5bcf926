//! Text spellings of the core's enums in the database. Changing one is a migration.

use signet_keys::{CnameFinding, DomainKind, KeySpec, KeyState, RsaBits, Timestamp};

use crate::StoreError;

pub(crate) fn encode_spec(spec: KeySpec) -> String {
    match spec {
        KeySpec::Rsa(bits) => format!("rsa{}", bits.bits()),
        KeySpec::Ed25519 => "ed25519".into(),
    }
}

pub(crate) fn decode_spec(text: &str) -> Result<KeySpec, StoreError> {
    if text == "ed25519" {
        return Ok(KeySpec::Ed25519);
    }
    text.strip_prefix("rsa")
        .and_then(|bits| bits.parse().ok())
        .and_then(|bits| RsaBits::imported(bits).ok())
        .map(KeySpec::Rsa)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown key spec '{text}'")))
}

pub(crate) fn encode_state(state: KeyState) -> (&'static str, Option<i64>) {
    match state {
        KeyState::Signing => ("signing", None),
        KeyState::AwaitingSwitch { rotate_on } => ("awaiting_switch", Some(rotate_on.unix())),
        KeyState::Retiring { until } => ("retiring", Some(until.unix())),
    }
}

pub(crate) fn decode_state(text: &str, at: Option<i64>) -> Result<KeyState, StoreError> {
    let at = || {
        at.map(Timestamp::from_unix)
            .ok_or_else(|| StoreError::Corrupt(format!("key state '{text}' without a time")))
    };
    match text {
        "signing" => Ok(KeyState::Signing),
        "awaiting_switch" => Ok(KeyState::AwaitingSwitch { rotate_on: at()? }),
        "retiring" => Ok(KeyState::Retiring { until: at()? }),
        _ => Err(StoreError::Corrupt(format!("unknown key state '{text}'"))),
    }
}

pub(crate) fn encode_check(finding: &CnameFinding) -> String {
    match finding {
        CnameFinding::Correct => "correct".into(),
        CnameFinding::Missing => "missing".into(),
        CnameFinding::Elsewhere(target) => format!("elsewhere:{target}"),
    }
}

pub(crate) fn decode_check(text: &str) -> CnameFinding {
    match text {
        "correct" => CnameFinding::Correct,
        _ => match text.strip_prefix("elsewhere:") {
            Some(target) => CnameFinding::Elsewhere(target.to_string()),
            None => CnameFinding::Missing,
        },
    }
}

pub(crate) fn decode_kind(text: &str) -> Result<DomainKind, StoreError> {
    match text {
        "Initial" => Ok(DomainKind::Initial),
        "Routing" => Ok(DomainKind::Routing),
        "Custom" => Ok(DomainKind::Custom),
        _ => Err(StoreError::Corrupt(format!("unknown domain kind '{text}'"))),
    }
}
