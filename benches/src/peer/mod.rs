//! Other membership implementations hosted by the simulator, for side-by-side figures.

pub mod foca;
