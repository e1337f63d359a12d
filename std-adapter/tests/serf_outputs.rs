//! `rumor members` and `rumor version` print what Serf prints, checked against the real
//! thing: two `serf agent`s and two `rumor agent`s on loopback, given the same tags, and
//! asked the same questions with the same arguments (`--flag` spellings, which Go's flag
//! package takes as well as `-flag`). Needs Debian's `serf` (`apt-get install -y serf`;
//! scripts/test installs it).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::{Agent, RUMOR, args, free_ports, loopback_ip, wait_for};

/// Fails the test, saying how to install Serf, when `serf` is not on the PATH.
fn require_serf() {
    let ok = Command::new("serf")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "serf is not installed: run `apt-get install -y serf` (scripts/test does)"
    );
}

/// A `serf agent` process on a loopback address, killed (by PID) when dropped.
struct SerfAgent {
    /// Its gossip address (TCP and UDP).
    bind: SocketAddr,
    /// Its RPC address.
    rpc: SocketAddr,
    /// Its output.
    log: PathBuf,
    /// The process.
    child: Child,
}

impl SerfAgent {
    /// Starts `serf agent` with these tags, and waits (at most 20 s) for its RPC.
    fn start(dir: &Path, name: &str, tags: &[&str]) -> SerfAgent {
        let ip: Ipv4Addr = loopback_ip();
        let (gossip, rpc) = free_ports(ip);
        let (bind, rpc) = (SocketAddr::from((ip, gossip)), SocketAddr::from((ip, rpc)));
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create the serf log");
        let mut cmd = Command::new("serf");
        cmd.arg("agent")
            .arg(format!("-node={name}"))
            .arg(format!("-bind={bind}"))
            .arg(format!("-rpc-addr={rpc}"));
        for t in tags {
            cmd.arg(format!("-tag={t}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn serf agent");
        let agent = SerfAgent {
            bind,
            rpc,
            log,
            child,
        };
        let up = wait_for(Duration::from_secs(20), || {
            agent.client(&["members"]).status.success().then_some(())
        });
        assert!(up.is_some(), "{name} never answered:\n{}", agent.log_text());
        agent
    }

    /// Runs `serf VERB --rpc-addr=<this agent's RPC> REST` (Go's flag package stops at the
    /// first argument that is not a flag, so the address goes right after the verb).
    fn client(&self, a: &[&str]) -> Output {
        Command::new("serf")
            .arg(a[0])
            .arg(format!("--rpc-addr={}", self.rpc))
            .args(&a[1..])
            .stdin(Stdio::null())
            .output()
            .expect("run serf")
    }

    /// The agent's output so far.
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SerfAgent {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `rumor ARGS --rpc-addr <agent's RPC>`.
fn rumor(agent: &Agent, a: &[&str]) -> Output {
    Command::new(RUMOR)
        .args(a)
        .args(["--rpc-addr", &agent.rpc.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run rumor")
}

/// The stdout of a successful command.
fn stdout(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The members of a `members --format json` document; Serf's `null` (no member) as empty.
/// Serf prints its `--role` deprecation warning on stdout, before the JSON: skipped
/// (rumor prints it on stderr, so its stdout stays JSON).
fn json_members(what: &str, text: &str) -> Vec<Value> {
    let text = match text.strip_prefix("Deprecation warning") {
        Some(rest) if what == "serf" => rest.split_once('\n').map_or("", |(_, json)| json),
        _ => text,
    };
    let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    let top: Vec<&String> = doc.as_object().expect("a JSON object").keys().collect();
    assert_eq!(top, ["members"], "{what}: {text}");
    match &doc["members"] {
        Value::Null => Vec::new(),
        Value::Array(list) => list.clone(),
        other => panic!("{what}: members is {other}"),
    }
}

/// The JSON type of a value, by name.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where each of `keys` first appears in `text` as a JSON key.
fn key_positions(text: &str, keys: &[&str]) -> Vec<usize> {
    keys.iter()
        .map(|k| text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX))
        .collect()
}

/// The names in a members list, without their first letter (`s1` and `r1` are both `1`),
/// sorted: how Serf's and rumor's answers to one filter are compared.
fn suffixes(members: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = members
        .iter()
        .map(|m| m["name"].as_str().expect("a name")[1..].to_owned())
        .collect();
    names.sort();
    names
}

/// The columns of a `members` text line: cells separated by two spaces or more.
fn columns(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Checks one text output of `members`: every line has name, addr:port, status and tags
/// (`detailed`: then Serf's two protocol columns), and every column starts at the same
/// offset on every line.
fn check_text(what: &str, text: &str, names: &[&str], detailed: bool) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), names.len(), "{what}:\n{text}");
    let mut starts: Option<Vec<usize>> = None;
    for line in &lines {
        let cols = columns(line);
        assert!(names.contains(&cols[0]), "{what}: name in {line:?}");
        assert!(
            cols[1].parse::<SocketAddr>().is_ok(),
            "{what}: addr in {line:?}"
        );
        assert_eq!(cols[2], "alive", "{what}: status in {line:?}");
        assert!(
            cols[3].split(',').all(|kv| kv.contains('=')),
            "{what}: tags in {line:?}"
        );
        if detailed {
            assert_eq!(cols.len(), 6, "{what}: {line:?}");
            assert!(
                cols[4].starts_with("Protocol Version: "),
                "{what}: {line:?}"
            );
            assert!(
                cols[5].starts_with("Available Protocol Range: [") && cols[5].ends_with(']'),
                "{what}: {line:?}"
            );
        } else {
            assert_eq!(cols.len(), 4, "{what}: {line:?}");
        }
        let at: Vec<usize> = cols
            .iter()
            .map(|c| line.find(c).expect("a column"))
            .collect();
        match &starts {
            None => starts = Some(at),
            Some(first) => assert_eq!(first, &at, "{what}: columns not aligned:\n{text}"),
        }
    }
}

#[test]
fn members_and_version_print_what_serf_prints() {
    require_serf();
    let dir = tempfile::tempdir().unwrap();

    // Serf: s1 (balancer, zone a) and s2 (backend), joined.
    let s1 = SerfAgent::start(dir.path(), "s1", &["role=balancer", "zone=a"]);
    let s2 = SerfAgent::start(dir.path(), "s2", &["role=backend"]);
    stdout("serf join", s2.client(&["join", &s1.bind.to_string()]));
    // rumor: r1 and r2, the same tags, joined.
    let r1 = Agent::on_loopback(
        dir.path(),
        "r1",
        &args(&["--tag", "role=balancer", "--tag", "zone=a"]),
    );
    let r2 = Agent::on_loopback(
        dir.path(),
        "r2",
        &args(&["--tag", "role=backend", "--join", &r1.gossip.to_string()]),
    );
    let both_alive =
        |members: &[Value]| members.len() == 2 && members.iter().all(|m| m["status"] == "alive");
    let serf_json = wait_for(Duration::from_secs(20), || {
        let t = stdout("serf members", s1.client(&["members", "--format", "json"]));
        both_alive(&json_members("serf", &t)).then_some(t)
    })
    .unwrap_or_else(|| panic!("serf never saw both alive:\n{}", s1.log_text()));
    let rumor_json = wait_for(Duration::from_secs(20), || {
        let t = stdout(
            "rumor members",
            rumor(&r1, &["members", "--format", "json"]),
        );
        both_alive(&json_members("rumor", &t)).then_some(t)
    })
    .unwrap_or_else(|| panic!("rumor never saw both alive:\n{}", r1.log_text()));

    // JSON: every key of Serf's members is in rumor's, with the same type, in the same
    // order; rumor's extras come after.
    let serf_members = json_members("serf", &serf_json);
    let rumor_members = json_members("rumor", &rumor_json);
    let serf_keys: Vec<&str> = serf_members[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for m in &rumor_members {
        for s in &serf_members {
            for k in &serf_keys {
                assert_eq!(kind(&m[*k]), kind(&s[*k]), "{k}: {m} vs {s}");
            }
            let proto = |v: &Value| {
                let p = v["protocol"].as_object().expect("a protocol object");
                let keys: Vec<String> = p.keys().cloned().collect();
                assert!(p.values().all(Value::is_u64), "{v}");
                keys
            };
            assert_eq!(proto(m), proto(s));
        }
    }
    let order = |text: &str| {
        let at = key_positions(
            text,
            &["name", "addr", "port", "tags", "status", "protocol"],
        );
        assert!(at.windows(2).all(|w| w[0] < w[1]), "key order:\n{text}");
    };
    order(&serf_json);
    order(&rumor_json);
    // The same meanings: addr is IP:PORT, port that port as a number, tags as set.
    for (members, agents) in [
        (&serf_members, [("s1", s1.bind), ("s2", s2.bind)]),
        (&rumor_members, [("r1", r1.gossip), ("r2", r2.gossip)]),
    ] {
        for (name, addr) in agents {
            let m = members
                .iter()
                .find(|m| m["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(m["addr"], addr.to_string(), "{m}");
            assert_eq!(m["port"], addr.port(), "{m}");
            let tags = &m["tags"];
            if name.ends_with('1') {
                assert_eq!(tags, &serde_json::json!({"role": "balancer", "zone": "a"}));
            } else {
                assert_eq!(tags, &serde_json::json!({"role": "backend"}));
            }
        }
    }

    // Text, plain and detailed: the same columns.
    for detailed in [false, true] {
        let flag: &[&str] = if detailed { &["--detailed"] } else { &[] };
        let s = stdout("serf members", s1.client(&[&["members"], flag].concat()));
        check_text("serf", &s, &["s1", "s2"], detailed);
        let r = stdout("rumor members", rumor(&r1, &[&["members"], flag].concat()));
        check_text("rumor", &r, &["r1", "r2"], detailed);
        // `table`, rumor's older name of the text format, prints the same.
        let t = rumor(&r1, &[&["members", "--format", "table"], flag].concat());
        assert_eq!(stdout("rumor members --format table", t), r);
    }

    // Filters: the same arguments keep the same members (by name suffix).
    let filters: &[&[&str]] = &[
        &["--status", "alive"],
        &["--status", "ali."],
        &["--status", "ali.*"],
        &["--status", "alive|failed"],
        &["--status", "left"],
        &["--name", ".1"],
        &["--name", "[sr]2"],
        &["--name", "1"],
        &["--tag", "role=back.*"],
        &["--tag", "role=backend"],
        &["--tag", "role=back"],
        &["--tag", "zone=a", "--tag", "role=balancer"],
        &["--tag", "zone="],
        &["--tag", "role=b.*", "--status", "alive", "--name", ".2"],
        &["--role", "balancer"],
    ];
    for f in filters {
        let a = [&["members", "--format", "json"], *f].concat();
        let s = json_members("serf", &stdout("serf members", s1.client(&a)));
        let r = json_members("rumor", &stdout("rumor members", rumor(&r1, &a)));
        assert_eq!(suffixes(&r), suffixes(&s), "filter {f:?}");
    }
    // One difference, kept from rumor's earlier --status: a plain word that is no status
    // (a typo) is refused (exit 2), where Serf shows no member.
    let out = rumor(&r1, &["members", "--status", "ali"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // rumor's older list form of --status means the regex with `|`.
    let a = ["members", "--format", "json", "--status", "alive,failed"];
    let r = json_members("rumor", &stdout("rumor members", rumor(&r1, &a)));
    assert_eq!(suffixes(&r), ["1", "2"]);

    // info: Serf's agent.name, and every key of rumor's `serf` and `tags` sections is
    // Serf's, a string as in Serf.
    let info = |what: &str, text: String| -> Value {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what} info: {e}\n{text}"))
    };
    let si = info(
        "serf",
        stdout("serf info", s1.client(&["info", "--format", "json"])),
    );
    let ri = info(
        "rumor",
        stdout("rumor info", rumor(&r1, &["info", "--format", "json"])),
    );
    assert_eq!(si["agent"]["name"], "s1");
    assert_eq!(ri["agent"]["name"], "r1");
    assert_eq!(
        ri["tags"],
        serde_json::json!({"role": "balancer", "zone": "a"})
    );
    assert_eq!(kind(&si["tags"]), "object");
    let serf_section = ri["serf"].as_object().expect("a serf section");
    assert!(!serf_section.is_empty());
    for (k, v) in serf_section {
        assert_eq!(kind(&si["serf"][k]), "string", "serf's serf.{k}: {si}");
        assert_eq!(kind(v), "string", "rumor's serf.{k}");
    }
    assert_eq!(ri["serf"]["members"], si["serf"]["members"], "both know 2");
    assert_eq!(ri["serf"]["encrypted"], si["serf"]["encrypted"]);
    // The text form: Serf's `name:` section headers, `\tkey = value` lines.
    let rt = stdout("rumor info", rumor(&r1, &["info"]));
    for section in ["agent:", "serf:", "tags:"] {
        assert!(rt.lines().any(|l| l == section), "{section}\n{rt}");
    }
    assert!(
        rt.contains("\tname = r1\n") && rt.contains("\tzone = a\n"),
        "{rt}"
    );

    // version: rumor's own first line, then Serf's `Agent Protocol` line.
    let s = stdout(
        "serf version",
        Command::new("serf").arg("version").output().unwrap(),
    );
    let r = stdout(
        "rumor version",
        Command::new(RUMOR).arg("version").output().unwrap(),
    );
    let protocol_line = |t: &str| {
        let line = t.lines().nth(1).unwrap_or("").to_owned();
        let shape = line
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect::<String>();
        assert_eq!(shape, "Agent Protocol: 9 (Understands back to: 9)", "{t}");
    };
    protocol_line(&s);
    protocol_line(&r);
    assert_eq!(
        r.lines().next(),
        Some(format!("rumor v{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    drop((s1, s2, r1, r2));
}
