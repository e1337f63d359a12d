//! Seeds given as `host:port`, `host` or `ip` (port 7946 by default), resolved with the
//! system resolver, and joined with retries until every seed resolves.

use std::net::SocketAddr;
use std::time::Duration;

use crate::agent::Handle;

/// The gossip port used when a seed or bind address has none (Serf's).
pub const DEFAULT_PORT: u16 = 7946;
/// Longest wait for one name resolution.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// First delay before resolving a seed again; doubles up to [`RETRY_MAX`].
const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest delay between two resolutions of a seed (Serf's retry interval).
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Resolves one seed to its addresses.
pub async fn resolve(seed: &str) -> Result<Vec<SocketAddr>, String> {
    let seed = seed.trim();
    if let Ok(addr) = seed.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if let Ok(ip) = seed.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, DEFAULT_PORT)]);
    }
    let target = if has_port(seed) {
        seed.to_owned()
    } else {
        format!("{seed}:{DEFAULT_PORT}")
    };
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(target.as_str())).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("`{seed}` resolves to no address"))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(format!("cannot resolve `{seed}`: {e}")),
        Err(_) => Err(format!("resolving `{seed}` timed out")),
    }
}

/// `host:port` (not a bare IPv6 address, which has colons too).
fn has_port(seed: &str) -> bool {
    seed.rsplit_once(':')
        .is_some_and(|(host, port)| !host.contains(':') && port.parse::<u16>().is_ok())
}

/// Resolves every seed, retrying the ones that do not resolve yet (a container's name may
/// appear in DNS later) with backoff, and hands each to the agent as soon as it resolves.
/// The node itself then retries the join until a seed answers. Returns once every seed
/// has been handed over, or when the agent stops.
pub async fn join_with_retry(handle: Handle, seeds: Vec<String>) {
    let mut pending = seeds;
    let mut delay = RETRY_INITIAL;
    while !pending.is_empty() && handle.is_running() {
        let mut unresolved = Vec::new();
        for seed in pending {
            match resolve(&seed).await {
                // One address per seed: a name with several is one host seen several ways.
                Ok(addrs) => {
                    if let Err(e) = handle.join(addrs.into_iter().take(1)).await {
                        tracing::error!(seed, error = %e, "cannot join");
                    } else {
                        tracing::info!(seed, "joining");
                    }
                }
                Err(e) => {
                    tracing::warn!(seed, error = %e, retry_in = ?delay, "seed does not resolve yet");
                    unresolved.push(seed);
                }
            }
        }
        pending = unresolved;
        if !pending.is_empty() {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seeds_resolve_with_the_default_port() {
        assert_eq!(
            resolve("127.0.0.3").await.unwrap(),
            vec!["127.0.0.3:7946".parse().unwrap()]
        );
        assert_eq!(
            resolve("127.0.0.3:99").await.unwrap(),
            vec!["127.0.0.3:99".parse().unwrap()]
        );
        assert_eq!(
            resolve("::1").await.unwrap(),
            vec!["[::1]:7946".parse().unwrap()]
        );
        let local = resolve("localhost:5000").await.unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.port() == 5000 && a.ip().is_loopback()),
            "{local:?}"
        );
    }

    #[test]
    fn ports_are_recognised() {
        assert!(has_port("ha:7946"));
        assert!(!has_port("ha"));
        assert!(!has_port("fe80::1"));
    }
}
