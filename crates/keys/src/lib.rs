//! signet's pure domain core.
//!
//! Operators' words become types here, once: a [`DomainName`], a [`TenantName`], a [`Slot`]
//! (`selector1`/`selector2`), a [`KeySpec`]. A domain's [`SigningConfig`] holds its two
//! [`Slots`]; rotation is a pure state machine over them ([`Slots::begin_rotation`],
//! [`Slots::advance`]) driven by a `now` the caller passes in. [`KeyZone`] derives every DNS name
//! signet publishes. Keys are generated, parsed and sealed in [`material`]; nothing here does I/O.
//!
//! ```
//! use signet_keys::{KeyZone, Slot};
//! let zone = KeyZone::new("dkim.example.net".parse().unwrap());
//! let name = zone.record_name(&"contoso".parse().unwrap(), &"contoso.com".parse().unwrap(), Slot::Selector1);
//! assert_eq!(name, "selector1-contoso-com._domainkey.contoso.dkim.example.net");
//! ```

pub mod config;
pub mod material;
pub mod name;
pub mod network;
pub mod record;
pub mod rotation;
pub mod spec;
pub mod time;
pub mod token;

pub use config::{
    CnameCheck, CnameFinding, DomainKind, KeyZone, RotationRecord, SigningConfig, SigningMode,
    Status, customer_selector_name,
};
pub use material::{MasterKey, PrivateKey, PublicKey, Secret};
pub use name::{DomainName, TenantName};
pub use network::IpNetwork;
pub use record::{DkimRecord, KeyType};
pub use rotation::{
    KeyId, KeyState, MINIMUM_ROTATION_INTERVAL, RotationPolicy, RotationRefused, SlotKey, Slots,
    Transition,
};
pub use spec::{Algorithm, Canonicalization, KeySpec, RsaBits, Slot};
pub use time::{Span, Timestamp};
pub use token::{TokenDigest, TokenName, TokenScope, TokenSecret};

/// Everything that can be wrong with a name, a key, a record or a request to the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("'{name}' is not a valid domain name: {why}")]
    DomainName { name: String, why: String },
    #[error("'{name}' is not a valid tenant name: {why}")]
    TenantName { name: String, why: String },
    /// An option value signet does not offer (key size, algorithm, canonicalization).
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Time(String),
    #[error("malformed DKIM record: {0}")]
    Record(String),
    /// Key material that cannot be used (too small, wrong type, unreadable).
    #[error("{0}")]
    Key(String),
    /// The master key or a sealed blob is wrong.
    #[error("{0}")]
    Seal(String),
    #[error(transparent)]
    Rotation(#[from] RotationRefused),
}
