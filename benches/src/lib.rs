#![doc = include_str!("../README.md")]

pub mod fixtures;
pub mod peer;
pub mod report;
pub mod sim;
