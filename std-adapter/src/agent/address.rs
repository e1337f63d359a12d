//! Choosing the address to advertise to peers.

use std::net::{IpAddr, SocketAddr};

use super::AgentError;

/// The address peers should use to reach an agent bound at `bound`: `advertise` if given
/// (port 0 there means the bound port), else `bound` itself, else, for a wildcard bind,
/// the first private IPv4 address of the host's interfaces (as Serf does), or failing that
/// the first non-loopback one.
pub fn advertise_address(
    advertise: Option<SocketAddr>,
    bound: SocketAddr,
) -> Result<SocketAddr, AgentError> {
    if let Some(mut a) = advertise {
        if a.port() == 0 {
            a.set_port(bound.port());
        }
        if a.ip().is_unspecified() {
            return Err(AgentError::NoAdvertiseAddress(format!(
                "cannot advertise the wildcard address {a}"
            )));
        }
        return Ok(a);
    }
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    let addrs = if_addrs::get_if_addrs().map_err(AgentError::Io)?;
    let ips: Vec<IpAddr> = addrs
        .iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .collect();
    let private = ips
        .iter()
        .find(|ip| matches!(ip, IpAddr::V4(v4) if v4.is_private()));
    let ip = private.or(ips.first()).copied().ok_or_else(|| {
        AgentError::NoAdvertiseAddress(format!(
            "bound to {bound} and no non-loopback IPv4 interface found"
        ))
    })?;
    Ok(SocketAddr::new(ip, bound.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_and_bound_addresses_win() {
        let bound: SocketAddr = "127.0.0.5:40000".parse().unwrap();
        assert_eq!(advertise_address(None, bound).unwrap(), bound);
        let adv: SocketAddr = "192.0.2.7:0".parse().unwrap();
        assert_eq!(
            advertise_address(Some(adv), bound).unwrap(),
            "192.0.2.7:40000".parse().unwrap()
        );
        let wild: SocketAddr = "0.0.0.0:7946".parse().unwrap();
        assert!(advertise_address(Some(wild), bound).is_err());
    }
}
