//! The visitor id: a keyed hash of (daily salt, site, IP, user agent).
//!
//! The IP is an input only; no output of this module lets it be recovered once the salt is
//! deleted. SipHash-1-3 gives the same output natively and in wasm32.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;

/// A daily secret salt. Whoever holds it could test guesses of IPs, so it is deleted after use.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt(pub [u8; 16]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

/// The salts in force: the current day's and the previous day's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salts {
    /// Today's salt.
    pub current: Salt,
    /// Yesterday's salt, kept so a visit can continue across midnight.
    pub previous: Salt,
}

/// The visitor id of an explicit visitor key (an import's `visitor` field) on `site` under
/// `salt`: the same key on the same day gives the same id, as one IP and user agent would.
pub fn visitor_id_of_key(salt: &Salt, site: &str, key: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_key(&salt.0);
    hasher.write(site.as_bytes());
    hasher.write_u8(0xfe);
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// The visitor id of (site, ip, user agent) under `salt`.
pub fn visitor_id(salt: &Salt, site: &str, ip: IpAddr, user_agent: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_key(&salt.0);
    hasher.write(site.as_bytes());
    hasher.write_u8(0xff);
    let octets = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    hasher.write(&octets);
    hasher.write_u8(0xff);
    hasher.write(user_agent.as_bytes());
    hasher.finish()
}

/// The key of [`route`]: fixed and not secret, since a route never leaves its producer whole —
/// only its remainder by the sub-partition count (a few bits, 0 for most sites) does, in Kinesis
/// partition keys, and nothing stores it.
const ROUTE_KEY: Salt = Salt(*b"tally route v1\0\0");

/// The route of (site, ip, user agent): which sub-partition its events go to
/// (`record::sub_partition`). Unlike the visitor id it does not change at midnight, so every
/// event of a visit reaches the same sub-partition (and shard), also when the visit goes on
/// across a UTC midnight and the visitor id changes under it.
pub fn route(site: &str, ip: IpAddr, user_agent: &str) -> u64 {
    visitor_id(&ROUTE_KEY, site, ip, user_agent)
}

/// The route of an explicit visitor key (an import's `visitor` field) on `site`.
pub fn route_of_key(site: &str, key: &str) -> u64 {
    visitor_id_of_key(&ROUTE_KEY, site, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: Salt = Salt([7; 16]);

    #[test]
    fn output_is_a_fixed_point_of_the_format() {
        // Stored visitor ids and sessions depend on this value: it must not change silently.
        assert_eq!(visitor_id(&SALT, "a.com", "1.2.3.4".parse().expect("ip"), "UA"), 0x93d3_74a4_acf6_e6e0);
    }

    #[test]
    fn every_input_matters() {
        let ip: IpAddr = "1.2.3.4".parse().expect("ip");
        let base = visitor_id(&SALT, "a.com", ip, "UA");
        assert_ne!(base, visitor_id(&Salt([8; 16]), "a.com", ip, "UA"));
        assert_ne!(base, visitor_id(&SALT, "b.com", ip, "UA"));
        assert_ne!(base, visitor_id(&SALT, "a.com", "1.2.3.5".parse().expect("ip"), "UA"));
        assert_ne!(base, visitor_id(&SALT, "a.com", ip, "UB"));
    }

    #[test]
    fn ipv4_and_its_mapped_form_are_one_visitor() {
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().expect("ip");
        let plain: IpAddr = "1.2.3.4".parse().expect("ip");
        assert_eq!(visitor_id(&SALT, "a.com", mapped, "UA"), visitor_id(&SALT, "a.com", plain, "UA"));
    }
}
