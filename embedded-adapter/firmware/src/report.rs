//! What a board prints on its console, one line per fact, for people and for the tests.

use rumor_embedded::rumor_core::{Event, Node};

use crate::console::Uart;

/// `members NAME=STATUS ...`: the whole table, local node first.
pub fn members<const M: usize, const U: usize>(out: Uart, node: &Node<M, U>) {
    out.put("members");
    for m in node.members() {
        out.put(" ");
        out.put(m.name());
        out.put("=");
        out.put(m.status().as_str());
    }
    out.put("\n");
}

/// `event KIND NAME`, for the events a test waits for. Returns true for `LeaveComplete`.
/// Addresses are left out: printing them would cost flash for no test.
pub fn event(out: Uart, event: &Event) -> bool {
    let (kind, name) = match event {
        Event::MemberJoined { name, .. } => ("joined", name.as_str()),
        Event::MemberUpdated { name, .. } => ("updated", name.as_str()),
        Event::MemberSuspected { name, .. } => ("suspect", name.as_str()),
        Event::MemberLeft { name, .. } => ("left", name.as_str()),
        Event::MemberFailed { name, .. } => ("failed", name.as_str()),
        Event::MemberReaped { name } => ("reaped", name.as_str()),
        Event::MemberRefused { name, .. } => ("refused", name.as_str()),
        Event::NameConflict { name, .. } => ("conflict", name.as_str()),
        Event::User(u) => ("user", u.name.as_str()),
        Event::Joined { .. } => ("cluster-joined", ""),
        Event::LeaveComplete => ("leave-complete", ""),
        _ => ("other", ""),
    };
    let space = if name.is_empty() { "" } else { " " };
    out.line(&["event ", kind, space, name]);
    matches!(event, Event::LeaveComplete)
}

/// `memory stack=PEAK/SIZE`: the peak stack use so far.
pub fn memory(out: Uart) {
    let (peak, size) = crate::stack::peak();
    out.put("memory stack=");
    out.put_u32(peak as u32);
    out.put("/");
    out.put_u32(size as u32);
    out.put("\n");
}
