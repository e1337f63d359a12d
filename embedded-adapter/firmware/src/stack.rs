//! Peak stack use: cortex-m-rt (feature `paint-stack`) fills the stack with a pattern at
//! reset; the deepest word no longer holding it marks the peak.

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Bytes of stack used so far at the deepest point, and the stack's size.
pub fn peak() -> (usize, usize) {
    let top = &raw const _stack_start as usize;
    let bottom = &raw const _stack_end as usize;
    let mut at = bottom;
    // SAFETY: every word between the linker's stack bounds is RAM owned by the stack.
    while at < top
        && unsafe { core::ptr::read_volatile(at as *const u32) } == cortex_m_rt::STACK_PAINT_VALUE
    {
        at += 4;
    }
    (top - at, top - bottom)
}
