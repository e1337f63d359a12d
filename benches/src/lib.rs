#![doc = include_str!("../README.md")]

pub mod peer;
pub mod report;
pub mod sim;
