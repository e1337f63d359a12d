//! `examples/haproxy-lab/run.sh --check`: the lab's topology in network namespaces (ha,
//! s1, s2, s3 on a bridge of their own), with the `rumor` binary under test and the
//! `webapp` example. Skipped, with a message, only when network namespaces cannot be
//! created here (not root); CI runs as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `webapp` example, which `cargo test` builds next to the binaries: as
/// `examples/webapp` after a `cargo build --example`, else as `examples/webapp-<hash>`.
fn webapp() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_rumor")).with_file_name("examples");
    let plain = dir.join("webapp");
    if plain.exists() {
        return plain;
    }
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("webapp-") && !name.contains('.')
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    match newest {
        Some(e) => e.path(),
        None => panic!(
            "no webapp example in {}: build it with `cargo build -p rumor-std --example webapp`",
            dir.display()
        ),
    }
}

#[test]
fn haproxy_lab_run_sh_reproduces_the_lab_in_network_namespaces() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/haproxy-lab/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .env("RUMOR", env!("CARGO_BIN_EXE_rumor"))
        .env("WEBAPP", webapp())
        .output()
        .expect("run run.sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    print!("{stdout}");
    if out.status.code() == Some(77) {
        eprintln!("SKIPPED haproxy_lab: {}", stderr.trim());
        return;
    }
    assert!(
        out.status.success() && stdout.contains("lab ok"),
        "run.sh --check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
