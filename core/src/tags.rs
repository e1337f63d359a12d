//! Tags: small key/value metadata per member, such as `role=backend` and `port=3000`.
//!
//! Stored and sent in one compact, canonical encoding: entries sorted by key, each
//! `[key_len: u8][key][value_len: u8][value]`. The same set of tags is always the same bytes,
//! so comparing tags is comparing bytes.

/// Largest encoded size of all tags of one member, in bytes (each entry costs its key and
/// value lengths plus 2).
pub const TAGS_MAX: usize = 96;
/// Longest tag key, in bytes.
pub const TAG_KEY_MAX: usize = 32;

/// A member's tags. Keys are 1 to [`TAG_KEY_MAX`] bytes of `[A-Za-z0-9_.-]` (so they map to
/// environment variable names); values are UTF-8 without control characters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tags {
    buf: Buf,
}

/// The encoding; a one-byte length keeps the per-member footprint small.
type Buf = heapless::Vec<u8, TAGS_MAX, u8>;

/// Why a tag change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TagError {
    /// The key is empty, too long, or has a character outside `[A-Za-z0-9_.-]`.
    BadKey,
    /// The value contains a control character.
    BadValue,
    /// All tags together would exceed [`TAGS_MAX`] encoded bytes.
    TooLarge,
    /// Encoded bytes are not a canonical tag list (only from the wire).
    Malformed,
}

impl core::fmt::Display for TagError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TagError::BadKey => write!(
                f,
                "tag key must be 1-{TAG_KEY_MAX} characters of [A-Za-z0-9_.-]"
            ),
            TagError::BadValue => f.write_str("tag value contains a control character"),
            TagError::TooLarge => write!(f, "tags exceed {TAGS_MAX} encoded bytes"),
            TagError::Malformed => f.write_str("malformed tag encoding"),
        }
    }
}

impl core::error::Error for TagError {}

fn check_key(key: &str) -> Result<(), TagError> {
    let ok = !key.is_empty()
        && key.len() <= TAG_KEY_MAX
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok { Ok(()) } else { Err(TagError::BadKey) }
}

fn check_value(value: &str) -> Result<(), TagError> {
    if value.chars().any(char::is_control) || value.len() > usize::from(u8::MAX) {
        return Err(TagError::BadValue);
    }
    Ok(())
}

/// Iterates the raw entries of an encoding, yielding `None` on a malformed one.
struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Entries<'a> {
    fn field(&mut self) -> Option<&'a [u8]> {
        let (&len, rest) = self.rest.split_first()?;
        let len = usize::from(len);
        if rest.len() < len {
            return None;
        }
        let (field, rest) = rest.split_at(len);
        self.rest = rest;
        Some(field)
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Option<(&'a str, &'a str)>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let entry = (|| {
            let k = core::str::from_utf8(self.field()?).ok()?;
            let v = core::str::from_utf8(self.field()?).ok()?;
            Some((k, v))
        })();
        if entry.is_none() {
            self.rest = &[];
        }
        Some(entry)
    }
}

impl Tags {
    /// No tags.
    pub const fn new() -> Self {
        Tags {
            buf: heapless::Vec::new(),
        }
    }

    /// Validates wire bytes: well-formed, keys valid, sorted and unique, values valid.
    pub fn from_encoded(bytes: &[u8]) -> Result<Self, TagError> {
        let mut prev: Option<&str> = None;
        for entry in (Entries { rest: bytes }) {
            let (k, v) = entry.ok_or(TagError::Malformed)?;
            check_key(k).map_err(|_| TagError::Malformed)?;
            check_value(v).map_err(|_| TagError::Malformed)?;
            if prev.is_some_and(|p| p >= k) {
                return Err(TagError::Malformed);
            }
            prev = Some(k);
        }
        let buf = heapless::Vec::from_slice(bytes).map_err(|_| TagError::TooLarge)?;
        Ok(Tags { buf })
    }

    /// The canonical encoding.
    pub fn encoded(&self) -> &[u8] {
        &self.buf
    }

    /// `(key, value)` pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        Entries { rest: &self.buf }.map_while(|e| e)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when there are no tags.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Sets `key` to `value`, replacing any previous value. On error nothing changes.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), TagError> {
        check_key(key)?;
        check_value(value)?;
        let mut next = Buf::new();
        let mut placed = false;
        let push = |out: &mut Buf, k: &str, v: &str| {
            // Lengths were checked: keys <= 32 bytes, values <= 255 bytes.
            out.push(k.len() as u8).map_err(|_| TagError::TooLarge)?;
            out.extend_from_slice(k.as_bytes())
                .map_err(|_| TagError::TooLarge)?;
            out.push(v.len() as u8).map_err(|_| TagError::TooLarge)?;
            out.extend_from_slice(v.as_bytes())
                .map_err(|_| TagError::TooLarge)
        };
        for (k, v) in self.iter() {
            if !placed && key <= k {
                push(&mut next, key, value)?;
                placed = true;
            }
            if k != key {
                push(&mut next, k, v)?;
            }
        }
        if !placed {
            push(&mut next, key, value)?;
        }
        self.buf = next;
        Ok(())
    }

    /// Builder form of [`Tags::insert`].
    pub fn with(mut self, key: &str, value: &str) -> Result<Self, TagError> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// Removes `key`; true when it was set.
    pub fn remove(&mut self, key: &str) -> bool {
        let mut next = Tags::new();
        let mut found = false;
        for (k, v) in self.iter() {
            if k == key {
                found = true;
            } else {
                // Re-inserting a subset of valid tags always fits.
                let _ = next.insert(k, v);
            }
        }
        *self = next;
        found
    }
}

impl core::fmt::Display for Tags {
    /// `k=v,k=v`, the form Serf's handler scripts read.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Tags {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Tags({=[u8]})", self.encoded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_keys_sorted_and_unique() {
        let mut t = Tags::new();
        t.insert("role", "backend").unwrap();
        t.insert("port", "3000").unwrap();
        t.insert("role", "lb").unwrap();
        let pairs: std::vec::Vec<(&str, &str)> = t.iter().collect();
        assert_eq!(pairs, [("port", "3000"), ("role", "lb")]);
        drop(pairs);
        assert_eq!(t.get("port"), Some("3000"));
        assert_eq!(Tags::from_encoded(t.encoded()), Ok(t.clone()));
        assert!(t.remove("port"));
        assert!(!t.remove("port"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn bad_tags_are_refused_and_leave_tags_unchanged() {
        let mut t = Tags::new().with("a", "1").unwrap();
        assert_eq!(t.insert("", "x"), Err(TagError::BadKey));
        assert_eq!(t.insert("a b", "x"), Err(TagError::BadKey));
        assert_eq!(t.insert("k", "x\ny"), Err(TagError::BadValue));
        assert_eq!(t.insert("big", &"v".repeat(100)), Err(TagError::TooLarge));
        assert_eq!(t.get("a"), Some("1"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn malformed_encodings_are_rejected() {
        assert_eq!(Tags::from_encoded(&[5, b'a']), Err(TagError::Malformed));
        assert_eq!(
            Tags::from_encoded(&[1, b'b', 0, 1, b'a', 0]),
            Err(TagError::Malformed)
        );
        assert_eq!(
            Tags::from_encoded(&[1, b'a', 0, 1, b'a', 0]),
            Err(TagError::Malformed)
        );
        assert_eq!(Tags::from_encoded(&[1, 0xff, 0]), Err(TagError::Malformed));
        assert_eq!(Tags::from_encoded(&[0u8; 200]), Err(TagError::Malformed));
        assert!(Tags::from_encoded(&[]).unwrap().is_empty());
    }
}
