//! `rumor-sim`: runs a named scenario through the deterministic simulator on rumor (and,
//! with `--compare foca`, on foca under matching settings) and reports the figures.
//! `rumor-sim --help` lists the options; `docs/BENCHMARKS.md` shows results.

use std::process::ExitCode;

use rumor_bench::report::args::{Args, Format};
use rumor_bench::report::dispatch::{mem_available, rumor_node_size, run_foca, run_rumor};
use rumor_bench::report::figures::{self, Figures, Series};
use rumor_bench::report::plot::plot;
use rumor_bench::report::scenario::Settings;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts heap bytes, for the heap-per-node figure.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Bytes currently allocated.
fn heap_in_use() -> usize {
    let s = GLOBAL.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated)
}

/// Large nodes are built on the stack before being boxed: give the run a big stack.
const STACK: usize = 1 << 30;

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let worker = std::thread::Builder::new()
        .name("rumor-sim".into())
        .stack_size(STACK)
        .spawn(move || run(&args));
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        _ => ExitCode::FAILURE,
    }
}

fn run(args: &Args) -> ExitCode {
    let settings = Settings {
        scenario: args.scenario,
        nodes: args.nodes,
        loss: args.loss,
        seed: args.seed,
        settle: args.settle,
        duration: args.duration,
        full_checks: args.full_checks,
        progress: (!args.quiet).then_some(std::time::Duration::from_secs(10)),
        heap_probe: Some(heap_in_use),
        // Never push the machine into swap or the OOM killer: stop at 80% of what was free.
        heap_limit: mem_available().map(|b| (b as usize) / 10 * 8),
    };
    let mut runs: Vec<(Figures, Series)> = Vec::new();
    match run_rumor(&settings) {
        Ok(run) => runs.push(run),
        Err(refusal) => {
            eprintln!("rumor: {}", refusal.0);
            if let Some((size, cap)) = rumor_node_size(args.nodes) {
                eprintln!("rumor: one Node<{cap}, {cap}> is {size} bytes");
            }
        }
    }
    if args.compare_foca {
        runs.push(run_foca(&settings));
    }
    if runs.is_empty() {
        return ExitCode::FAILURE;
    }
    let figures: Vec<Figures> = runs.iter().map(|(f, _)| f.clone()).collect();
    match args.format {
        Format::Table => print!("{}", figures::table(&figures)),
        Format::Json => println!("{}", figures::json(&figures)),
    }
    if let Some(path) = &args.plot
        && let Err(e) = plot(path, &runs)
    {
        eprintln!("cannot plot to {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
