//! The `rumor-sim` report: named scenarios run through the simulator on rumor (and
//! optionally foca), the figures they yield, and their table, JSON and SVG forms.

pub mod args;
pub mod dispatch;
pub mod figures;
pub mod plot;
pub mod scenario;
