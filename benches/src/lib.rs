#![doc = include_str!("../README.md")]

pub mod peer;
pub mod sim;
