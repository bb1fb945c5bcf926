//! Client networks of relay connectors: `192.0.2.0/24`, `2001:db8::/32`, or a single address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::Error;

/// An IP network in CIDR form, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    pub fn contains(self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }

    /// True when some address lies in both networks.
    pub fn overlaps(self, other: IpNetwork) -> bool {
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        let longer = if self.prefix <= other.prefix {
            other
        } else {
            self
        };
        shorter.contains(longer.address)
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl FromStr for IpNetwork {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Unsupported(format!("'{text}' is not a network: {why}"));
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| bad("write an address like 192.0.2.0/24 or 2001:db8::/32"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad("the prefix length is out of range"))?,
        };
        let address = match address {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(u32::from(v4), prefix).into()),
            IpAddr::V6(v6) => IpAddr::V6(mask_v6(u128::from(v6), prefix).into()),
        };
        Ok(IpNetwork { address, prefix })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    #[test]
    fn networks_parse_canonically_and_contain_their_addresses() {
        assert_eq!(net("192.0.2.77/24").to_string(), "192.0.2.0/24");
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert!(net("192.0.2.0/24").contains("192.0.2.200".parse().unwrap()));
        assert!(!net("192.0.2.0/24").contains("192.0.3.1".parse().unwrap()));
        assert!(net("127.0.0.0/8").contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!net("2001:db8::/32").contains("192.0.2.1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn overlaps_are_found_both_ways() {
        assert!(net("10.0.0.0/8").overlaps(net("10.1.2.0/24")));
        assert!(net("10.1.2.0/24").overlaps(net("10.0.0.0/8")));
        assert!(!net("10.1.2.0/24").overlaps(net("10.1.3.0/24")));
    }

    #[test]
    fn bad_networks_say_why() {
        for text in ["", "10.0.0.0/33", "mail.example", "10.0.0.0/x", "::/129"] {
            assert!(
                text.parse::<IpNetwork>()
                    .unwrap_err()
                    .to_string()
                    .contains("is not a network"),
                "{text}"
            );
        }
    }
}
