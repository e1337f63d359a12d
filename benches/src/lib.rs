#![doc = include_str!("../README.md")]

pub mod adversary;
pub mod fixtures;
pub mod peer;
pub mod report;
pub mod sim;
