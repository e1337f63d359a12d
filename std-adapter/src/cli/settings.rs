//! `rumor agent` settings: the TOML config file, then Serf's JSON config files (see
//! [`read_serf_configs`]), overridden by flags, then defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rumor_core::{Key, Plaintext};
use rumor_std::handler::{HandlerSettings, HandlerSpec};
use rumor_std::keyring::parse_key;
use rumor_std::logging;
use rumor_std::render::{RenderSpec, Target};
use rumor_std::rpc::{DEFAULT_RPC_ADDR, RpcAddr};
use rumor_std::seeds::DEFAULT_PORT;
use serde::Deserialize;
use tracing_subscriber::filter::LevelFilter;

use super::{AgentArgs, CliError, Profile, parse_duration, parse_plaintext};

/// The config file: the same settings as the flags, with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node: Option<String>,
    bind: Option<String>,
    advertise: Option<String>,
    #[serde(default)]
    join: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    profile: Option<Profile>,
    snapshot: Option<PathBuf>,
    #[serde(default)]
    event_handlers: Vec<String>,
    #[serde(default)]
    render: Vec<RenderSpec>,
    handler_timeout: Option<String>,
    coalesce_quiet: Option<String>,
    coalesce_max: Option<String>,
    parallel_handlers: Option<bool>,
    leave_timeout: Option<String>,
    leave_propagate_delay: Option<String>,
    icmp_evidence: Option<bool>,
    drain_time: Option<String>,
    stop_timeout: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    log_level: Option<String>,
    rpc_addr: Option<String>,
    rpc_token: Option<String>,
    encrypt: Option<String>,
    keyring_file: Option<PathBuf>,
    plaintext: Option<String>,
    /// Serf's `replay_on_join` / `-replay`.
    replay: Option<bool>,
    /// Serf's `interface` / `-iface`: bind to this interface's first IPv4 address.
    iface: Option<String>,
    /// Serf's `retry_interval` / `-retry-interval`: the longest wait between join attempts.
    retry_interval: Option<String>,
}

/// Everything `rumor agent` needs, resolved and checked.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) bind: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) join: Vec<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) profile: Profile,
    pub(crate) snapshot: Option<PathBuf>,
    pub(crate) handlers: Vec<HandlerSpec>,
    pub(crate) handler: HandlerSettings,
    pub(crate) renders: Vec<Target>,
    pub(crate) leave_timeout: Duration,
    pub(crate) leave_propagate_delay: Duration,
    pub(crate) icmp_evidence: bool,
    /// The service run as the agent's child (empty: none).
    pub(crate) command: Vec<String>,
    pub(crate) drain_time: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) log_level: LevelFilter,
    pub(crate) rpc_addr: RpcAddr,
    pub(crate) rpc_token: Option<String>,
    /// `--encrypt`: the key to encrypt with, or to create the keyring file from.
    pub(crate) encrypt: Option<Key>,
    pub(crate) keyring_file: Option<PathBuf>,
    /// `--plaintext`: the policy to use and save; `None`: the keyring file's, else refuse.
    pub(crate) plaintext: Option<Plaintext>,
    /// `--replay`: deliver the user events the seed replays on join.
    pub(crate) replay: bool,
    /// `--retry-interval`: the longest wait between join attempts (`None`: the profile's).
    pub(crate) join_retry_max: Option<Duration>,
    /// Settings accepted but ignored (Serf keys with no meaning here), to log once logging
    /// is up.
    pub(crate) warnings: Vec<String>,
}

impl Settings {
    /// Reads `--config` (if any), applies the flags over it, then the defaults. Scalar
    /// flags replace the file's value; `--tag` replaces the file's tag of the same key;
    /// `--join` and `--event-handler` add to the file's lists (as Serf merges handlers).
    pub(crate) fn resolve(args: AgentArgs) -> Result<Settings, CliError> {
        refuse_serf_flags(&args)?;
        let mut warnings = Vec::new();
        let mut file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        if !args.serf_configs.is_empty() {
            let serf = read_serf_configs(&args.serf_configs, &mut warnings)?;
            merge(&mut file, serf);
        }
        let name = match args.node.or(file.node) {
            Some(n) => n,
            None => host_name()?,
        };
        rumor_core::validate_name(&name).map_err(|e| {
            CliError(format!(
                "node name `{name}` is not usable ({e}); pass --node"
            ))
        })?;
        let mut bind = parse_addr(
            args.bind.or(file.bind).as_deref().unwrap_or("0.0.0.0"),
            DEFAULT_PORT,
            "bind",
        )?;
        if let Some(iface) = args.iface.or(file.iface) {
            bind.set_ip(interface_ip(&iface)?);
        }
        let advertise = args
            .advertise
            .or(file.advertise)
            .map(|a| parse_addr(&a, 0, "advertise"))
            .transpose()?;
        let mut tags = file.tags;
        if let Some(role) = args.role {
            tags.insert("role".into(), role);
        }
        tags.extend(args.tags);
        rumor_std::tags_from_map(&tags).map_err(|e| CliError(format!("invalid tags: {e}")))?;
        let mut join = file.join;
        join.extend(args.join);
        join.extend(args.retry_join);
        let handlers = file
            .event_handlers
            .iter()
            .chain(&args.event_handlers)
            .map(|h| HandlerSpec::parse(h).map_err(|e| CliError(format!("--event-handler: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let renders = render_targets(&file.render, &args.renders)?;
        let defaults = HandlerSettings::default();
        let duration = |flag: Option<Duration>,
                        file: Option<String>,
                        key: &str,
                        default: Duration| match (flag, file) {
            (Some(d), _) => Ok(d),
            (None, Some(s)) => parse_duration(&s).map_err(|e| CliError(format!("{key}: {e}"))),
            (None, None) => Ok(default),
        };
        let handler = HandlerSettings {
            timeout: duration(
                args.handler_timeout,
                file.handler_timeout,
                "handler_timeout",
                defaults.timeout,
            )?,
            coalesce_quiet: duration(
                args.coalesce_quiet,
                file.coalesce_quiet,
                "coalesce_quiet",
                defaults.coalesce_quiet,
            )?,
            coalesce_max: duration(
                args.coalesce_max,
                file.coalesce_max,
                "coalesce_max",
                defaults.coalesce_max,
            )?,
            parallel: args.parallel_handlers || file.parallel_handlers.unwrap_or(false),
        };
        if handler.timeout.is_zero() {
            return Err(CliError("handler timeout must be above zero".into()));
        }
        let leave_timeout = duration(
            args.leave_timeout,
            file.leave_timeout,
            "leave_timeout",
            Duration::from_secs(5),
        )?;
        let leave_propagate_delay = duration(
            args.leave_propagate_delay,
            file.leave_propagate_delay,
            "leave_propagate_delay",
            Duration::from_secs(1),
        )?;
        let drain_time = duration(
            args.drain_time,
            file.drain_time,
            "drain_time",
            Duration::from_secs(1),
        )?;
        let stop_timeout = duration(
            args.stop_timeout,
            file.stop_timeout,
            "stop_timeout",
            Duration::from_secs(10),
        )?;
        let command = if args.command.is_empty() {
            file.command
        } else {
            args.command
        };
        let log_level = logging::parse_level(&serf_level(
            args.log_level
                .or(file.log_level)
                .as_deref()
                .unwrap_or("info"),
        ))
        .map_err(CliError)?;
        let join_retry_max = match (args.retry_interval, file.retry_interval) {
            (Some(d), _) => Some(d),
            (None, Some(s)) => {
                Some(parse_duration(&s).map_err(|e| CliError(format!("retry_interval: {e}")))?)
            }
            (None, None) => None,
        };
        if join_retry_max.is_some_and(|d| d.is_zero()) {
            return Err(CliError("retry interval must be above zero".into()));
        }
        let rpc_addr = args
            .rpc_addr
            .or(file.rpc_addr)
            .unwrap_or_else(|| DEFAULT_RPC_ADDR.to_owned());
        let rpc_addr: RpcAddr = rpc_addr.parse().map_err(CliError)?;
        let encrypt = match (args.encrypt, file.encrypt) {
            (Some(k), _) => Some(parse_key(&k).map_err(|e| CliError(format!("--encrypt: {e}")))?),
            (None, Some(k)) => {
                Some(parse_key(&k).map_err(|e| CliError(format!("config file encrypt: {e}")))?)
            }
            (None, None) => None,
        };
        let keyring_file = args.keyring_file.or(file.keyring_file);
        let plaintext = match (args.plaintext, file.plaintext) {
            (Some(p), _) => Some((p, "--plaintext")),
            (None, Some(p)) => Some((
                parse_plaintext(&p).map_err(|e| CliError(format!("config file plaintext: {e}")))?,
                "config file plaintext",
            )),
            (None, None) => None,
        };
        if let Some((_, source)) = plaintext
            && encrypt.is_none()
            && keyring_file.is_none()
        {
            return Err(CliError(format!(
                "{source} needs encryption: pass --encrypt KEY or --keyring-file PATH too \
                 (without a key the agent sends and accepts plaintext only)"
            )));
        }
        Ok(Settings {
            name,
            bind,
            advertise,
            join,
            tags,
            profile: args.profile.or(file.profile).unwrap_or_default(),
            snapshot: args.snapshot.or(file.snapshot),
            handlers,
            handler,
            renders,
            leave_timeout,
            leave_propagate_delay,
            icmp_evidence: !args.no_icmp_evidence && file.icmp_evidence.unwrap_or(true),
            command,
            drain_time,
            stop_timeout,
            log_level,
            rpc_addr,
            rpc_token: args.rpc_token.or(file.rpc_token),
            encrypt,
            keyring_file,
            plaintext: plaintext.map(|(p, _)| p),
            replay: args.replay || file.replay.unwrap_or(false),
            join_retry_max,
            warnings,
        })
    }
}

/// The `[[render]]` sections of a config file.
pub(crate) fn file_render_specs(path: &Path) -> Result<Vec<RenderSpec>, CliError> {
    read_file(path).map(|f| f.render)
}

/// Render targets from the file's `[[render]]` sections, then the `--render` flags.
pub(crate) fn render_targets(
    file: &[RenderSpec],
    flags: &[String],
) -> Result<Vec<Target>, CliError> {
    let flags = flags
        .iter()
        .map(|f| RenderSpec::parse_inline(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError)?;
    file.iter()
        .chain(&flags)
        .map(|spec| spec.to_target().map_err(CliError))
        .collect()
}

fn read_file(path: &Path) -> Result<FileConfig, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_owned();
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => CliError(format!("config file {} line {l}: {msg}", path.display())),
            None => CliError(format!("config file {}: {msg}", path.display())),
        }
    })
}

/// Serf's agent flags rumor cannot honour: one line each, saying why and what to use.
fn refuse_serf_flags(args: &AgentArgs) -> Result<(), CliError> {
    let refused = [
        args.tags_file.as_ref().map(|_| {
            "-tags-file is not supported: rumor does not save `rumor tags` changes to a file; \
             set tags with --tag or in the config file"
        }),
        args.discover.as_ref().map(|_| {
            "-discover (mDNS) is not supported: list one or more seeds with --join \
             (retried until one answers)"
        }),
        args.syslog.then_some(
            "-syslog is not supported: rumor logs to stderr; pipe it to logger(1) or let \
             the supervisor collect it",
        ),
        args.protocol.as_ref().map(|_| {
            "-protocol is not supported: rumor speaks its own wire protocol (one version, \
             not Serf's); drop the flag"
        }),
        args.retry_max.filter(|&n| n != 0).map(|_| {
            "-retry-max N is not supported: rumor retries a join until a seed answers \
             (-retry-max 0); let the supervisor give up instead"
        }),
    ];
    match refused.into_iter().flatten().next() {
        Some(why) => Err(CliError(why.into())),
        None => Ok(()),
    }
}

/// Serf's log level names too: `ERR` is `error`, and any case.
fn serf_level(level: &str) -> String {
    match level.to_ascii_lowercase().as_str() {
        "err" => "error".into(),
        other => other.into(),
    }
}

/// The first IPv4 address of the interface `name` (Serf's `-iface`).
fn interface_ip(name: &str) -> Result<IpAddr, CliError> {
    let addrs = if_addrs::get_if_addrs()
        .map_err(|e| CliError(format!("cannot list the network interfaces: {e}")))?;
    addrs
        .iter()
        .filter(|a| a.name == name)
        .map(|a| a.ip())
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| CliError(format!("interface `{name}` has no IPv4 address")))
}

/// Serf's config keys that rumor ignores with a warning: tuning of Serf features rumor
/// does not have, or that it sizes itself (docs/OPERATIONS.md lists them).
const SERF_IGNORED_KEYS: [&str; 14] = [
    "reconnect_interval",
    "reconnect_timeout",
    "tombstone_timeout",
    "disable_name_resolution",
    "enable_compression",
    "disable_coordinates",
    "query_response_size_limit",
    "query_size_limit",
    "user_event_size_limit",
    "max_queue_depth",
    "min_queue_depth",
    "statsd_addr",
    "statsite_addr",
    "syslog_facility",
];

/// Serf's JSON config: each path a file, or a directory whose `*.json` files are read in
/// lexical order (not recursively), all merged in order as Serf's `MergeConfig` does:
/// a later scalar replaces an earlier one, `tags` merge key by key, and `event_handlers`,
/// `start_join` and `retry_join` append. Ignored keys add a line to `warnings`.
fn read_serf_configs(
    paths: &[PathBuf],
    warnings: &mut Vec<String>,
) -> Result<FileConfig, CliError> {
    let mut merged = FileConfig::default();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| CliError(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_dir() {
            merge(&mut merged, read_serf_file(path, warnings)?);
            continue;
        }
        let mut files = std::fs::read_dir(path)
            .map_err(|e| CliError(format!("cannot read {}: {e}", path.display())))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError(format!("cannot read {}: {e}", path.display())))?;
        files.retain(|f| f.extension().is_some_and(|x| x == "json") && !f.is_dir());
        files.sort();
        for file in &files {
            merge(&mut merged, read_serf_file(file, warnings)?);
        }
    }
    Ok(merged)
}

/// `b` over `a`, as Serf merges config files: scalars set in `b` win, tags merge, lists
/// append.
fn merge(a: &mut FileConfig, b: FileConfig) {
    /// Replaces each field of `a` that `b` sets.
    macro_rules! scalars {
        ($($field:ident),*) => { $( if b.$field.is_some() { a.$field = b.$field; } )* };
    }
    scalars!(
        node,
        bind,
        advertise,
        profile,
        snapshot,
        leave_timeout,
        log_level,
        rpc_addr,
        rpc_token,
        encrypt,
        keyring_file,
        replay,
        iface,
        retry_interval
    );
    a.tags.extend(b.tags);
    a.join.extend(b.join);
    a.event_handlers.extend(b.event_handlers);
}

/// One Serf JSON config file as rumor's settings. An unknown key, or one rumor cannot
/// honour, is an error naming the key and the file.
fn read_serf_file(path: &Path, warnings: &mut Vec<String>) -> Result<FileConfig, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("cannot read config file {shown}: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CliError(format!("config file {shown}: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(CliError(format!(
            "config file {shown}: not a JSON object of Serf settings"
        )));
    };
    let mut c = FileConfig::default();
    for (key, v) in map {
        let bad = |why: String| CliError(format!("config file {shown}: key `{key}`: {why}"));
        let string = || match &v {
            serde_json::Value::String(s) => Ok(s.clone()),
            _ => Err(bad("expected a string".into())),
        };
        let boolean = || {
            v.as_bool()
                .ok_or_else(|| bad("expected true or false".into()))
        };
        let strings = || match &v {
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("expected a list of strings".into())),
            _ => Err(bad("expected a list of strings".into())),
        };
        match key.as_str() {
            "node_name" => c.node = Some(string()?),
            "role" => {
                c.tags.insert("role".into(), string()?);
            }
            "tags" => {
                let serde_json::Value::Object(tags) = &v else {
                    return Err(bad("expected an object of strings".into()));
                };
                for (k, t) in tags {
                    let t = t
                        .as_str()
                        .ok_or_else(|| bad(format!("tag `{k}` is not a string")))?;
                    c.tags.insert(k.clone(), t.to_owned());
                }
            }
            "bind" => c.bind = Some(string()?),
            "interface" => c.iface = Some(string()?),
            "advertise" => c.advertise = Some(string()?),
            "encrypt_key" => c.encrypt = Some(string()?),
            "keyring_file" => c.keyring_file = Some(string()?.into()),
            "log_level" => c.log_level = Some(string()?),
            "profile" => {
                let p = string()?;
                c.profile = Some(
                    <Profile as clap::ValueEnum>::from_str(&p, true).map_err(|_| {
                        bad(format!("unknown profile `{p}` (use lan, wan or local)"))
                    })?,
                );
            }
            "rpc_addr" => c.rpc_addr = Some(string()?),
            "rpc_auth" => c.rpc_token = Some(string()?),
            "replay_on_join" => c.replay = Some(boolean()?),
            "start_join" | "retry_join" => c.join.extend(strings()?),
            "event_handlers" => c.event_handlers.extend(strings()?),
            "snapshot_path" => c.snapshot = Some(string()?.into()),
            "retry_interval" => c.retry_interval = Some(string()?),
            "broadcast_timeout" => c.leave_timeout = Some(string()?),
            "retry_max_attempts" => {
                if v.as_i64() != Some(0) {
                    return Err(bad(
                        "rumor retries a join until a seed answers (only 0 is supported)".into(),
                    ));
                }
            }
            // rumor always rejoins the snapshot's peers.
            "rejoin_after_leave" => {
                boolean()?;
            }
            "leave_on_terminate" => {
                if !boolean()? {
                    warnings.push(format!(
                        "config file {shown}: leave_on_terminate = false ignored: rumor always \
                         leaves gracefully on SIGTERM"
                    ));
                }
            }
            "skip_leave_on_interrupt" => {
                if boolean()? {
                    warnings.push(format!(
                        "config file {shown}: skip_leave_on_interrupt = true ignored: rumor \
                         always leaves gracefully on SIGINT"
                    ));
                }
            }
            "enable_syslog" => {
                if boolean()? {
                    return Err(bad(
                        "syslog is not supported: rumor logs to stderr; pipe it to logger(1)"
                            .into(),
                    ));
                }
            }
            "protocol" => {
                return Err(bad(
                    "rumor speaks its own wire protocol (one version, not Serf's); remove it"
                        .into(),
                ));
            }
            "discover" | "mdns" => {
                return Err(bad(
                    "mDNS discovery is not supported; list seeds in start_join".into(),
                ));
            }
            "tags_file" => {
                return Err(bad(
                    "rumor does not save `rumor tags` changes to a file; use tags".into(),
                ));
            }
            k if SERF_IGNORED_KEYS.contains(&k) => warnings.push(format!(
                "config file {shown}: `{k}` ignored (no such setting in rumor)"
            )),
            _ => return Err(bad("unknown Serf setting".into())),
        }
    }
    Ok(c)
}

/// `ip:port`, `[v6]:port` or a bare IP (then `default_port`).
pub(crate) fn parse_addr(s: &str, default_port: u16, what: &str) -> Result<SocketAddr, CliError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(CliError(format!(
        "{what} address `{s}` is not IP or IP:PORT"
    )))
}

fn host_name() -> Result<String, CliError> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        return Err(CliError("cannot read the host name; pass --node".into()));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> AgentArgs {
        AgentArgs {
            node: Some("n1".into()),
            ..AgentArgs::default()
        }
    }

    fn with_file(text: &str, args: AgentArgs) -> Result<Settings, CliError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rumor.toml");
        std::fs::write(&path, text).unwrap();
        Settings::resolve(AgentArgs {
            config: Some(path),
            ..args
        })
    }

    #[test]
    fn defaults_match_serf() {
        let s = Settings::resolve(args()).unwrap();
        assert_eq!(s.bind, "0.0.0.0:7946".parse().unwrap());
        assert_eq!(s.rpc_addr, RpcAddr::Tcp("127.0.0.1:7373".parse().unwrap()));
        assert_eq!(s.profile, Profile::Lan);
        assert_eq!(s.handler, HandlerSettings::default());
        assert_eq!(s.leave_timeout, Duration::from_secs(5));
        assert_eq!(s.leave_propagate_delay, Duration::from_secs(1));
        assert!(s.icmp_evidence);
    }

    #[test]
    fn icmp_evidence_is_turned_off_by_the_flag_or_the_file() {
        let off = AgentArgs {
            no_icmp_evidence: true,
            ..args()
        };
        assert!(!Settings::resolve(off).unwrap().icmp_evidence);
        assert!(
            !with_file("icmp_evidence = false", args())
                .unwrap()
                .icmp_evidence
        );
        assert!(
            with_file("icmp_evidence = true", args())
                .unwrap()
                .icmp_evidence
        );
    }

    #[test]
    fn flags_override_the_file() {
        let text = r#"
            node = "from-file"
            bind = "127.0.0.9"
            join = ["a:1"]
            profile = "wan"
            event_handlers = ["member-join=/bin/true"]
            handler_timeout = "10s"
            [tags]
            role = "backend"
            port = "3000"
        "#;
        let s = with_file(
            text,
            AgentArgs {
                bind: Some("127.0.0.8:99".into()),
                join: vec!["b:2".into()],
                tags: vec![("role".into(), "balancer".into())],
                event_handlers: vec!["user=/bin/true".into()],
                coalesce_quiet: Some(Duration::from_millis(200)),
                ..args()
            },
        )
        .unwrap();
        assert_eq!(s.name, "n1");
        assert_eq!(s.bind, "127.0.0.8:99".parse().unwrap());
        assert_eq!(s.join, vec!["a:1", "b:2"]);
        assert_eq!(s.profile, Profile::Wan);
        assert_eq!(s.tags["role"], "balancer");
        assert_eq!(s.tags["port"], "3000");
        assert_eq!(s.handlers.len(), 2);
        assert_eq!(s.handler.timeout, Duration::from_secs(10));
        assert_eq!(s.handler.coalesce_quiet, Duration::from_millis(200));
        assert!(!s.handler.parallel);
        let s = with_file("parallel_handlers = true", args()).unwrap();
        assert!(s.handler.parallel);
        let s = with_file(
            "parallel_handlers = false",
            AgentArgs {
                parallel_handlers: true,
                ..args()
            },
        )
        .unwrap();
        assert!(s.handler.parallel);
    }

    #[test]
    fn bad_files_and_values_are_explained() {
        let e = with_file("nodes = \"x\"\n", args()).unwrap_err().0;
        assert!(e.contains("line 1") && e.contains("nodes"), "{e}");
        let e = with_file("leave_timeout = \"soon\"", args()).unwrap_err().0;
        assert!(e.contains("leave_timeout"), "{e}");
        let e = Settings::resolve(AgentArgs {
            bind: Some("nowhere".into()),
            ..args()
        })
        .unwrap_err()
        .0;
        assert!(e.contains("bind address"), "{e}");
        let e = Settings::resolve(AgentArgs {
            node: Some("has space".into()),
            ..AgentArgs::default()
        })
        .unwrap_err()
        .0;
        assert!(e.contains("--node"), "{e}");
        let e = Settings::resolve(AgentArgs {
            tags: vec![("bad key".into(), "v".into())],
            ..args()
        })
        .unwrap_err()
        .0;
        assert!(e.contains("invalid tags"), "{e}");
    }

    #[test]
    fn encrypt_settings_come_from_flags_or_the_file() {
        let key = rumor_std::keyring::generate_key().unwrap();
        let text = rumor_std::keyring::encode_key(&key);
        let s = with_file(
            &format!("encrypt = \"{text}\"\nkeyring_file = \"/var/lib/rumor/keyring.json\"\n"),
            args(),
        )
        .unwrap();
        assert_eq!(s.encrypt, Some(key));
        assert_eq!(
            s.keyring_file.as_deref(),
            Some(Path::new("/var/lib/rumor/keyring.json"))
        );
        let e = Settings::resolve(AgentArgs {
            encrypt: Some("dG9vIHNob3J0".into()),
            ..args()
        })
        .unwrap_err()
        .0;
        assert!(e.starts_with("--encrypt: the key is 9 bytes"), "{e}");
        let e = with_file("encrypt = \"???\"", args()).unwrap_err().0;
        assert!(e.contains("encrypt") && e.contains("base64"), "{e}");
    }

    #[test]
    fn encrypt_plaintext_policy_comes_from_the_flag_or_the_file() {
        let key = rumor_std::keyring::encode_key(&rumor_std::keyring::generate_key().unwrap());
        let keyed = || AgentArgs {
            encrypt: Some(key.clone()),
            ..args()
        };
        // Not given: the keyring file's decides, at start.
        assert_eq!(Settings::resolve(keyed()).unwrap().plaintext, None);
        let s = Settings::resolve(AgentArgs {
            plaintext: Some(Plaintext::Send),
            ..keyed()
        })
        .unwrap();
        assert_eq!(s.plaintext, Some(Plaintext::Send));
        let s = with_file(
            "plaintext = \"accept\"\nkeyring_file = \"/k.json\"\n",
            args(),
        )
        .unwrap();
        assert_eq!(s.plaintext, Some(Plaintext::Accept));
        // The flag overrides the file.
        let s = with_file(
            "plaintext = \"accept\"\n",
            AgentArgs {
                plaintext: Some(Plaintext::Refuse),
                ..keyed()
            },
        )
        .unwrap();
        assert_eq!(s.plaintext, Some(Plaintext::Refuse));

        let e = with_file("plaintext = \"maybe\"\n", keyed()).unwrap_err().0;
        assert!(
            e.starts_with("config file plaintext:") && e.contains("refuse, accept or send"),
            "{e}"
        );
        // Without a key there is nothing to migrate.
        let e = Settings::resolve(AgentArgs {
            plaintext: Some(Plaintext::Send),
            ..args()
        })
        .unwrap_err()
        .0;
        assert!(
            e.starts_with("--plaintext needs encryption") && e.contains("--encrypt"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = with_file("plaintext = \"send\"\n", args()).unwrap_err().0;
        assert!(
            e.starts_with("config file plaintext needs encryption"),
            "{e}"
        );
    }

    /// Writes Serf JSON files into a temporary directory.
    fn serf_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn serf_config_dir_merges_json_files_in_lexical_order() {
        let dir = serf_dir(&[
            (
                "b.json",
                r#"{"node_name": "b", "tags": {"port": "3001"}, "event_handlers": ["user=/bin/b"],
                    "start_join": ["s2"], "log_level": "ERR"}"#,
            ),
            (
                "a.json",
                r#"{"node_name": "a", "bind": "127.0.0.7:7000", "role": "backend",
                    "tags": {"port": "3000", "dc": "x"}, "event_handlers": ["member-join=/bin/a"],
                    "start_join": ["s1"], "retry_join": ["s3"], "replay_on_join": true,
                    "rpc_auth": "secret", "snapshot_path": "/tmp/snap", "profile": "local",
                    "leave_on_terminate": true, "skip_leave_on_interrupt": false,
                    "retry_interval": "2s", "retry_max_attempts": 0, "rejoin_after_leave": true}"#,
            ),
            ("c.txt", "not json, not read"),
            ("z.json", r#"{"tombstone_timeout": "24h"}"#),
        ]);
        let s = Settings::resolve(AgentArgs {
            serf_configs: vec![dir.path().into()],
            ..AgentArgs::default()
        })
        .unwrap();
        assert_eq!(s.name, "b", "the later file wins");
        assert_eq!(s.bind, "127.0.0.7:7000".parse().unwrap());
        assert_eq!(s.tags["port"], "3001");
        assert_eq!(s.tags["dc"], "x");
        assert_eq!(s.tags["role"], "backend");
        assert_eq!(s.handlers.len(), 2, "handlers append");
        // start_join and retry_join are both seeds (in key order within a file).
        assert_eq!(s.join, ["s3", "s1", "s2"]);
        assert!(s.replay);
        assert_eq!(s.rpc_token.as_deref(), Some("secret"));
        assert_eq!(s.snapshot.as_deref(), Some(Path::new("/tmp/snap")));
        assert_eq!(s.profile, Profile::Local);
        assert_eq!(s.log_level, LevelFilter::ERROR);
        assert_eq!(s.join_retry_max, Some(Duration::from_secs(2)));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("tombstone_timeout"));
    }

    #[test]
    fn serf_config_files_come_after_the_toml_and_before_the_flags() {
        let dir = serf_dir(&[("one.json", r#"{"node_name": "json", "start_join": ["j"]}"#)]);
        let s = with_file(
            "node = \"toml\"\njoin = [\"t\"]\nprofile = \"wan\"\n",
            AgentArgs {
                node: None,
                serf_configs: vec![dir.path().join("one.json")],
                join: vec!["f".into()],
                ..AgentArgs::default()
            },
        )
        .unwrap();
        assert_eq!(s.name, "json");
        assert_eq!(s.profile, Profile::Wan);
        assert_eq!(s.join, ["t", "j", "f"]);
        let s = Settings::resolve(AgentArgs {
            serf_configs: vec![dir.path().join("one.json")],
            role: Some("balancer".into()),
            retry_join: vec!["r".into()],
            ..args()
        })
        .unwrap();
        assert_eq!(s.name, "n1");
        assert_eq!(s.tags["role"], "balancer");
        assert_eq!(s.join, ["j", "r"]);
    }

    #[test]
    fn serf_config_keys_rumor_cannot_honour_name_the_key_and_the_file() {
        for (text, key) in [
            (r#"{"bogus": 1}"#, "bogus"),
            (r#"{"protocol": 4}"#, "protocol"),
            (r#"{"discover": "web"}"#, "discover"),
            (r#"{"tags_file": "/t"}"#, "tags_file"),
            (r#"{"enable_syslog": true}"#, "enable_syslog"),
            (r#"{"retry_max_attempts": 3}"#, "retry_max_attempts"),
            (r#"{"node_name": 7}"#, "node_name"),
            (r#"{"tags": {"a": 1}}"#, "tags"),
        ] {
            let dir = serf_dir(&[("serf.json", text)]);
            let e = Settings::resolve(AgentArgs {
                serf_configs: vec![dir.path().join("serf.json")],
                ..args()
            })
            .unwrap_err()
            .0;
            assert!(
                e.contains(&format!("key `{key}`")) && e.contains("serf.json") && !e.contains('\n'),
                "{e}"
            );
        }
        let dir = serf_dir(&[("serf.json", "[1]")]);
        let e = Settings::resolve(AgentArgs {
            serf_configs: vec![dir.path().join("serf.json")],
            ..args()
        })
        .unwrap_err()
        .0;
        assert!(e.contains("not a JSON object"), "{e}");
    }

    #[test]
    fn serf_flags_rumor_cannot_honour_are_refused_in_one_line() {
        let refused = [
            AgentArgs {
                discover: Some("web".into()),
                ..args()
            },
            AgentArgs {
                syslog: true,
                ..args()
            },
            AgentArgs {
                protocol: Some("4".into()),
                ..args()
            },
            AgentArgs {
                tags_file: Some("/t".into()),
                ..args()
            },
            AgentArgs {
                retry_max: Some(3),
                ..args()
            },
        ];
        for a in refused {
            let e = Settings::resolve(a).unwrap_err().0;
            assert!(e.contains("not supported") && !e.contains('\n'), "{e}");
        }
        let ok = Settings::resolve(AgentArgs {
            retry_max: Some(0),
            rejoin: true,
            iface: Some("lo".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(ok.bind, "127.0.0.1:7946".parse().unwrap());
    }

    #[test]
    fn encrypt_agent_plaintext_flag_parses_the_three_policies() {
        use clap::Parser;
        let parse = |v: &str| {
            super::super::Cli::try_parse_from(["rumor", "agent", "--plaintext", v]).map(|c| match c
                .command
            {
                super::super::Command::Agent(a) => a.plaintext,
                other => panic!("{other:?}"),
            })
        };
        for p in [Plaintext::Refuse, Plaintext::Accept, Plaintext::Send] {
            assert_eq!(parse(p.as_str()).unwrap(), Some(p));
        }
        let e = parse("Send").unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(e.to_string().contains("use refuse, accept or send"), "{e}");
    }
}
