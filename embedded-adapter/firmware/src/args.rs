//! The board's settings, from the semihosting command line
//! (`-semihosting-config enable=on,arg=name=board-1,arg=ip=10.42.0.11,arg=seed=10.42.0.12:7946`).

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Settings of one board.
#[derive(Clone, Debug)]
pub struct Args {
    /// `name=`: the member name.
    pub name: heapless::String<32>,
    /// `ip=`: the board's IPv4 address (a /24).
    pub ip: Ipv4Addr,
    /// `port=`: the gossip port (7946).
    pub port: u16,
    /// `seed=`: members to join through (repeatable).
    pub seeds: heapless::Vec<SocketAddr, 4>,
}

/// Why the command line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// The host gave no command line (semihosting off?).
    Unavailable,
    /// `name=` or `ip=` is missing.
    Missing,
    /// A value does not parse.
    Bad,
}

impl ArgsError {
    /// A short reason, for the console.
    pub fn as_str(self) -> &'static str {
        match self {
            ArgsError::Unavailable => "unavailable",
            ArgsError::Missing => "name= or ip= missing",
            ArgsError::Bad => "a value does not parse",
        }
    }
}

impl Args {
    /// Reads and parses the semihosting command line.
    pub fn from_host() -> Result<Args, ArgsError> {
        let mut buf = [0u8; 256];
        let mut block = [buf.as_mut_ptr() as usize, buf.len()];
        // SAFETY: SYS_GET_CMDLINE writes at most `block[1]` bytes into `buf` and the length
        // into `block[1]`; both outlive the call.
        let rc = unsafe {
            cortex_m_semihosting::syscall1(
                cortex_m_semihosting::nr::GET_CMDLINE,
                block.as_mut_ptr() as usize,
            )
        };
        let len = block[1].min(buf.len());
        if rc != 0 {
            return Err(ArgsError::Unavailable);
        }
        let line = core::str::from_utf8(&buf[..len]).map_err(|_| ArgsError::Bad)?;
        Args::parse(line)
    }

    /// Parses `key=value` words; other words (the program name) are skipped.
    pub fn parse(line: &str) -> Result<Args, ArgsError> {
        let (mut name, mut ip) = (None, None);
        let mut port = 7946;
        let mut seeds = heapless::Vec::new();
        for (key, value) in line.split_whitespace().filter_map(|w| w.split_once('=')) {
            match key {
                "name" => {
                    name = Some(heapless::String::try_from(value).map_err(|_| ArgsError::Bad)?)
                }
                "ip" => ip = Some(parse_ipv4(value).ok_or(ArgsError::Bad)?),
                "port" => port = value.parse().map_err(|_| ArgsError::Bad)?,
                "seed" => {
                    let (ip, port) = value.split_once(':').ok_or(ArgsError::Bad)?;
                    let ip = parse_ipv4(ip).ok_or(ArgsError::Bad)?;
                    let port = port.parse().map_err(|_| ArgsError::Bad)?;
                    seeds
                        .push(SocketAddrV4::new(ip, port).into())
                        .map_err(|_| ArgsError::Bad)?;
                }
                _ => {}
            }
        }
        Ok(Args {
            name: name.ok_or(ArgsError::Missing)?,
            ip: ip.ok_or(ArgsError::Missing)?,
            port,
            seeds,
        })
    }

    /// The address the node advertises.
    pub fn addr(&self) -> SocketAddr {
        SocketAddrV4::new(self.ip, self.port).into()
    }

    /// A per-board seed for the node's random choices (FNV-1a of the name and the MAC).
    pub fn rng_seed(&self, mac: [u8; 6]) -> u64 {
        self.name
            .bytes()
            .chain(mac)
            .fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
    }
}

/// `a.b.c.d`, each part a decimal byte. core's address parser costs about 750 bytes of
/// flash; this one a tenth of that.
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = part.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}
