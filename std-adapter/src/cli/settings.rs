//! `rumor agent` settings: the TOML config file, overridden by flags, then defaults.

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
}

impl Settings {
    /// Reads `--config` (if any), applies the flags over it, then the defaults. Scalar
    /// flags replace the file's value; `--tag` replaces the file's tag of the same key;
    /// `--join` and `--event-handler` add to the file's lists (as Serf merges handlers).
    pub(crate) fn resolve(args: AgentArgs) -> Result<Settings, CliError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let name = match args.node.or(file.node) {
            Some(n) => n,
            None => host_name()?,
        };
        rumor_core::validate_name(&name).map_err(|e| {
            CliError(format!(
                "node name `{name}` is not usable ({e}); pass --node"
            ))
        })?;
        let bind = parse_addr(
            args.bind.or(file.bind).as_deref().unwrap_or("0.0.0.0"),
            DEFAULT_PORT,
            "bind",
        )?;
        let advertise = args
            .advertise
            .or(file.advertise)
            .map(|a| parse_addr(&a, 0, "advertise"))
            .transpose()?;
        let mut tags = file.tags;
        tags.extend(args.tags);
        rumor_std::tags_from_map(&tags).map_err(|e| CliError(format!("invalid tags: {e}")))?;
        let mut join = file.join;
        join.extend(args.join);
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
        let log_level = logging::parse_level(
            args.log_level
                .or(file.log_level)
                .as_deref()
                .unwrap_or("info"),
        )
        .map_err(CliError)?;
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
