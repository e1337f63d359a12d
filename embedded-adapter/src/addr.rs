//! Address conversions between `core::net` (rumor-core) and smoltcp.

use core::net::SocketAddr;

use smoltcp::wire::IpEndpoint;

/// The smoltcp endpoint for `addr`, or `None` for an IPv6 address when smoltcp is built
/// without IPv6 (feature `ipv6` of this crate).
pub fn to_endpoint(addr: SocketAddr) -> Option<IpEndpoint> {
    match addr {
        SocketAddr::V4(v4) => Some(IpEndpoint::from(v4)),
        #[cfg(feature = "ipv6")]
        SocketAddr::V6(v6) => Some(IpEndpoint::from(v6)),
        #[cfg(not(feature = "ipv6"))]
        SocketAddr::V6(_) => None,
    }
}

/// The `core::net` address of a smoltcp endpoint.
pub fn from_endpoint(ep: IpEndpoint) -> SocketAddr {
    SocketAddr::from(ep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trips() {
        let a: SocketAddr = "10.42.0.7:7946".parse().unwrap();
        assert_eq!(to_endpoint(a).map(from_endpoint), Some(a));
    }

    #[cfg(not(feature = "ipv6"))]
    #[test]
    fn v6_is_unaddressable_without_the_feature() {
        let a: SocketAddr = "[fd00::1]:7946".parse().unwrap();
        assert_eq!(to_endpoint(a), None);
    }
}
