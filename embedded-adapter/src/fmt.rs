//! One logging shim: routes to `defmt`, to `log`, or to nothing (the default).
#![allow(unused_macros)]

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` of rumor-embedded are mutually exclusive");

macro_rules! log_at {
    ($level:ident, $($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::$level!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::$level!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = || { let _ = ($($arg)*); }; }
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => { log_at!(debug, $($arg)*) };
}

macro_rules! warning {
    ($($arg:tt)*) => { log_at!(warn, $($arg)*) };
}
