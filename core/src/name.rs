//! Member names and the local node's identity.

use core::net::SocketAddr;

use crate::tags::Tags;

/// Longest member name, in bytes.
pub const NAME_MAX: usize = 32;

/// A member name: 1 to [`NAME_MAX`] bytes of UTF-8 with no whitespace or control characters.
pub type Name = heapless::String<NAME_MAX>;

/// Why a name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`NAME_MAX`] bytes.
    TooLong,
    /// The name contains whitespace or a control character.
    BadCharacter,
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NameError::Empty => "name is empty",
            NameError::TooLong => return write!(f, "name is longer than {NAME_MAX} bytes"),
            NameError::BadCharacter => "name contains whitespace or a control character",
        })
    }
}

impl core::error::Error for NameError {}

/// Checks `s` against the rules of [`Name`].
pub fn validate_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > NAME_MAX {
        return Err(NameError::TooLong);
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NameError::BadCharacter);
    }
    Ok(())
}

/// Builds a [`Name`] from `s`, checking it first.
pub fn name(s: &str) -> Result<Name, NameError> {
    validate_name(s)?;
    let mut n = Name::new();
    n.push_str(s).map_err(|_| NameError::TooLong)?;
    Ok(n)
}

/// FNV-1a's 32-bit offset basis: the hash of no bytes.
pub(crate) const FNV_OFFSET: u32 = 0x811c_9dc5;

/// Folds `bytes` into the FNV-1a hash `h` (start from [`FNV_OFFSET`]). The one small hash
/// of the crate: names in the table's index, suspicion confirmers, conflict and refusal
/// memories; user events in the de-duplication window; the pings ICMP errors may quote.
pub(crate) fn fnv1a(h: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// A name's fingerprint: its FNV-1a hash.
pub(crate) fn fingerprint(name: &str) -> u32 {
    fnv1a(FNV_OFFSET, name.as_bytes())
}

/// Who the local node is: its unique name, the address peers reach it at, and its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub(crate) name: Name,
    pub(crate) addr: SocketAddr,
    pub(crate) tags: Tags,
}

impl Identity {
    /// An identity with no tags. `addr` is the address advertised to peers: behind NAT or
    /// in a container, the one they can reach, not necessarily the bound one.
    pub fn new(name: &str, addr: SocketAddr) -> Result<Self, NameError> {
        Ok(Identity {
            name: self::name(name)?,
            addr,
            tags: Tags::new(),
        })
    }

    /// The same identity with these tags.
    pub fn with_tags(mut self, tags: Tags) -> Self {
        self.tags = tags;
        self
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The advertised address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The tags.
    pub fn tags(&self) -> &Tags {
        &self.tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("web-1"), Ok(()));
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name("a b"), Err(NameError::BadCharacter));
        assert_eq!(validate_name("x\u{7}"), Err(NameError::BadCharacter));
        assert_eq!(validate_name(&"n".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_name(&"n".repeat(32)), Ok(()));
    }
}
