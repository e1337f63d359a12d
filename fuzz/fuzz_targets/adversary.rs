//! The adversary of `rumor_bench::adversary`, its frames chosen by the fuzz input: the
//! first byte seeds the cluster, every later byte is one of the adversary's choices
//! (which node, which spoofed source, which message and updates, which names and
//! counters, how long to wait). Once the attack is over, every liveness invariant must
//! hold within its bound (see `check_liveness`); no frame class is excluded. Findings
//! join the seed corpus, which `benches/tests/adversary.rs` also replays.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumor_bench::adversary::{self, AttackConfig, ByteChoices};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, choices)) = data.split_first() else {
        return;
    };
    let config = AttackConfig::default();
    if let Err((violation, frames)) =
        adversary::trial(u64::from(seed), &mut ByteChoices::new(choices), &config)
    {
        panic!("{violation:?} after the frames {frames:#?}");
    }
});
