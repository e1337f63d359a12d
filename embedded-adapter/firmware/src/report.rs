//! What a board prints on its console, one line per fact, for people and for the tests.

use core::fmt::Write;

use rumor_embedded::rumor_core::{Event, Node};

/// `members NAME=STATUS ...`: the whole table, local node first.
pub fn members<const M: usize, const U: usize>(out: &mut impl Write, node: &Node<M, U>) {
    let _ = write!(out, "members");
    for m in node.members() {
        let _ = write!(out, " {}={}", m.name(), m.status());
    }
    let _ = writeln!(out);
}

/// `event KIND NAME`, for the events a test waits for. Returns true for `LeaveComplete`.
/// Addresses are left out: formatting them costs about a kilobyte of flash.
pub fn event(out: &mut impl Write, event: &Event) -> bool {
    let _ = match event {
        Event::MemberJoined { name, .. } => writeln!(out, "event joined {name}"),
        Event::MemberUpdated { name, .. } => writeln!(out, "event updated {name}"),
        Event::MemberSuspected { name, .. } => writeln!(out, "event suspect {name}"),
        Event::MemberLeft { name, .. } => writeln!(out, "event left {name}"),
        Event::MemberFailed { name, .. } => writeln!(out, "event failed {name}"),
        Event::MemberReaped { name } => writeln!(out, "event reaped {name}"),
        Event::MemberRefused { name, .. } => writeln!(out, "event refused {name}"),
        Event::NameConflict { name, .. } => writeln!(out, "event conflict {name}"),
        Event::User(u) => writeln!(out, "event user {}", u.name),
        Event::Joined { .. } => writeln!(out, "event cluster-joined"),
        Event::LeaveComplete => writeln!(out, "event leave-complete"),
        _ => writeln!(out, "event other"),
    };
    matches!(event, Event::LeaveComplete)
}

/// `memory stack=PEAK/SIZE`: the peak stack use so far.
pub fn memory(out: &mut impl Write) {
    let (peak, size) = crate::stack::peak();
    let _ = writeln!(out, "memory stack={peak}/{size}");
}
