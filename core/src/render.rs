//! Rendering the live membership into text (a load-balancer config, a hosts file, ...),
//! over [`core::fmt::Write`] so it runs on a board as well as on a server.

use crate::member::{Member, Slot};

/// A read-only view of the member table, the local node first. Cheap to clone, so a
/// renderer can walk it several times (e.g. to sort).
#[derive(Clone, Debug)]
pub struct Members<'a> {
    slots: core::iter::Enumerate<
        core::iter::Zip<core::slice::Iter<'a, Slot>, core::slice::Iter<'a, bool>>,
    >,
}

impl<'a> Members<'a> {
    /// The occupied ones of `slots`.
    pub(crate) fn new((slots, occupied): (&'a [Slot], &'a [bool])) -> Self {
        Members {
            slots: slots.iter().zip(occupied).enumerate(),
        }
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        for (i, (slot, &occupied)) in self.slots.by_ref() {
            if occupied {
                return Some(Member {
                    slot,
                    local: i == 0,
                });
            }
        }
        None
    }
}

/// Turns the membership into text.
///
/// Implementations must be deterministic: the same membership renders the same bytes, so a
/// caller can skip reloading a consumer when nothing changed.
pub trait Render {
    /// Writes the rendering of `members` into `out`.
    fn render<W: core::fmt::Write + ?Sized>(
        &self,
        members: Members<'_>,
        out: &mut W,
    ) -> core::fmt::Result;
}

/// One `name address` line per live (alive or suspect) member, in table order.
///
/// ```
/// use core::fmt::Write;
/// use rumor_core::{Config, Identity, NameAddrLines, Node};
///
/// let id = Identity::new("web-1", "127.0.0.1:7946".parse().unwrap()).unwrap();
/// let node: Node<8, 8> = Node::new(id, Config::lan(), 1).unwrap();
/// let mut out = heapless::String::<128>::new();
/// node.render(&NameAddrLines, &mut out).unwrap();
/// assert_eq!(out, "web-1 127.0.0.1:7946\n");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NameAddrLines;

impl Render for NameAddrLines {
    fn render<W: core::fmt::Write + ?Sized>(
        &self,
        members: Members<'_>,
        out: &mut W,
    ) -> core::fmt::Result {
        for m in members.filter(|m| m.status().is_live()) {
            writeln!(out, "{} {}", m.name(), m.addr())?;
        }
        Ok(())
    }
}
