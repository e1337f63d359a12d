//! The command line: verbs a Serf user recognises.

mod agent;
mod client;
mod demo;
mod go_flags;
mod keys;
mod output;
mod reload;
mod render;
mod settings;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use rumor_std::rpc::DEFAULT_RPC_ADDR;

/// An error that ends the command: printed as one line, exit code 1.
#[derive(Debug)]
pub(crate) struct CliError(pub(crate) String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

/// Gossip membership for service discovery: a SWIM + Lifeguard agent with Serf's verbs.
#[derive(Parser, Debug)]
#[command(name = "rumor", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Parses the process's arguments in clap's spellings or Go's (Serf's `-flag=v`, see
    /// `go_flags`), with `SERF_RPC_ADDR` / `SERF_RPC_AUTH` standing in for
    /// `RUMOR_RPC_ADDR` / `RUMOR_RPC_TOKEN` when those are not set. Exits (2) with
    /// clap's message on a bad command line.
    pub(crate) fn parse_args() -> Cli {
        let cmd = serf_env(Cli::command());
        let args = go_flags::normalize(&cmd, std::env::args_os().collect());
        let matches = cmd.get_matches_from(args);
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// Serf's environment variables as fallbacks: each verb's `rpc_addr` / `rpc_token` reads
/// `SERF_RPC_ADDR` / `SERF_RPC_AUTH` when rumor's own variable is not set (rumor's wins).
fn serf_env(mut cmd: clap::Command) -> clap::Command {
    let fallbacks = [
        ("rpc_addr", "RUMOR_RPC_ADDR", "SERF_RPC_ADDR"),
        ("rpc_token", "RUMOR_RPC_TOKEN", "SERF_RPC_AUTH"),
    ];
    for (id, ours, serf) in fallbacks {
        if std::env::var_os(ours).is_some() || std::env::var_os(serf).is_none() {
            continue;
        }
        cmd = cmd.mut_subcommands(|sub| {
            if sub.get_arguments().any(|a| a.get_id() == id) {
                sub.mut_arg(id, |a| a.env(serf))
            } else {
                sub
            }
        });
    }
    cmd
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an agent (until SIGINT or SIGTERM, which make it leave gracefully).
    Agent(Box<AgentArgs>),
    /// List the members the local agent knows.
    Members(MembersArgs),
    /// Make the local agent join a cluster through one or more seeds.
    Join(JoinArgs),
    /// Make the local agent leave gracefully and stop.
    Leave(RpcArgs),
    /// Force a failed member out: it is marked left everywhere (and reaped later) instead
    /// of staying failed. A live member is refused.
    ForceLeave(ForceLeaveArgs),
    /// Send a user event to the whole cluster.
    Event(EventArgs),
    /// Stream the local agent's events and logs.
    Monitor(MonitorArgs),
    /// Change the local agent's tags.
    Tags(TagsArgs),
    /// Show the local agent's identity and counters.
    Info(InfoArgs),
    /// Print rumor's version and gossip protocol version (as `serf version`).
    Version,
    /// Print a new encryption key (base64, from the OS random number generator).
    Keygen,
    /// List or change the local agent's encryption keys and plaintext policy (see
    /// docs/OPERATIONS.md for a rolling rotation, and for turning encryption on).
    Keys(KeysArgs),
    /// Start a small cluster on loopback, crash a node, make one leave, and show how
    /// fast each was detected.
    Demo(DemoArgs),
    /// Print what the render targets would render now, from the local agent's members
    /// (for debugging templates; nothing is written or reloaded).
    Render(render::RenderArgs),
}

/// Runs the parsed command; the exit code is the service's with `rumor agent ... -- CMD`, else 0.
pub(crate) fn run(cli: Cli) -> Result<std::process::ExitCode, CliError> {
    let done = match cli.command {
        Command::Agent(a) => return agent::run(*a),
        Command::Demo(d) => demo::run(d),
        Command::Members(a) => client::members(a),
        Command::Join(a) => client::join(a),
        Command::Leave(a) => client::leave(a),
        Command::ForceLeave(a) => client::force_leave(a),
        Command::Event(a) => client::event(a),
        Command::Monitor(a) => client::monitor(a),
        Command::Tags(a) => client::tags(a),
        Command::Info(a) => client::info(a),
        Command::Version => {
            print!("{}", output::version_text());
            Ok(())
        }
        Command::Keygen => keys::keygen(),
        Command::Keys(a) => keys::keys(a),
        Command::Render(a) => render::run(a),
    };
    done.map(|()| std::process::ExitCode::SUCCESS)
}

/// Timing profile of the protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Profile {
    /// Data centre: probe every 1 s, 500 ms timeout (Serf's default).
    #[default]
    Lan,
    /// Across regions: probe every 5 s, 3 s timeout.
    Wan,
    /// One host or a fast local network: 200 ms probe timeout, quicker gossip.
    Local,
}

impl Profile {
    pub(crate) fn config(self) -> rumor_core::Config {
        match self {
            Profile::Lan => rumor_core::Config::lan(),
            Profile::Wan => rumor_core::Config::wan(),
            Profile::Local => rumor_core::Config::local(),
        }
    }
}

/// Output format of `members`, `info`, `monitor` and `keys`: `text` or `json`, as Serf's
/// `-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned text (`table`, rumor's older name, is accepted too).
    #[default]
    #[value(name = "text", alias = "table")]
    Table,
    /// JSON.
    Json,
}

/// Where the local agent's RPC endpoint is.
#[derive(Args, Debug, Clone)]
pub(crate) struct RpcArgs {
    /// The agent's RPC address: IP:PORT, or unix:PATH for a Unix socket.
    #[arg(long, env = "RUMOR_RPC_ADDR", default_value = DEFAULT_RPC_ADDR, value_name = "ADDR")]
    pub(crate) rpc_addr: String,
    /// The agent's RPC token, if it has one (Serf's `-rpc-auth`; `SERF_RPC_AUTH` too).
    #[arg(
        long,
        alias = "rpc-auth",
        env = "RUMOR_RPC_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) rpc_token: Option<String>,
}

/// `rumor agent` flags. Each one overrides the same setting of `--config`.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct AgentArgs {
    /// TOML config file (see docs/OPERATIONS.md); flags override its settings.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Serf's JSON config (`-config-file` or `-config-dir`, repeatable): a file, or a
    /// directory whose `*.json` files are read in lexical order; merged in order as Serf
    /// merges them, over --config, under the flags.
    #[arg(
        long = "config-file",
        visible_alias = "config-dir",
        value_name = "FILE|DIR"
    )]
    pub(crate) serf_configs: Vec<PathBuf>,
    /// Unique node name [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub(crate) node: Option<String>,
    /// UDP address to gossip on [default: 0.0.0.0:7946].
    #[arg(long, value_name = "IP[:PORT]")]
    pub(crate) bind: Option<String>,
    /// Address to announce to peers, for NAT and containers [default: the bind address,
    /// or the first private IPv4 address when bound to 0.0.0.0].
    #[arg(long, value_name = "IP[:PORT]")]
    pub(crate) advertise: Option<String>,
    /// Seed to join (repeatable); retried until one answers.
    #[arg(long = "join", value_name = "HOST[:PORT]")]
    pub(crate) join: Vec<String>,
    /// Serf's `-retry-join`: the same as --join (rumor retries every seed until one answers).
    #[arg(long = "retry-join", value_name = "HOST[:PORT]")]
    pub(crate) retry_join: Vec<String>,
    /// Longest wait between two join attempts (Serf's `-retry-interval`) [default: 30s
    /// with lan, 60s with wan, 5s with local].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) retry_interval: Option<Duration>,
    /// Serf's `-retry-max`: only 0 (retry until a seed answers), which is what rumor does.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) retry_max: Option<i64>,
    /// Deliver the user events the cluster still buffers to this node's handlers when it
    /// joins (Serf's `-replay`): the seed's newest, at most 8.
    #[arg(long)]
    pub(crate) replay: bool,
    /// Serf's `-rejoin`: accepted, rumor always rejoins the snapshot's peers, even after
    /// a leave.
    #[arg(long)]
    pub(crate) rejoin: bool,
    /// Bind to this network interface's first IPv4 address (Serf's `-iface`); the port is
    /// --bind's [default: 7946].
    #[arg(long, value_name = "NAME")]
    pub(crate) iface: Option<String>,
    /// Deprecated in Serf: the same as --tag role=ROLE.
    #[arg(long, value_name = "ROLE")]
    pub(crate) role: Option<String>,
    /// Serf's `-tags-file`: refused (see docs/OPERATIONS.md).
    #[arg(long, hide = true, value_name = "PATH")]
    pub(crate) tags_file: Option<PathBuf>,
    /// Serf's `-discover` (mDNS): refused.
    #[arg(long, hide = true, value_name = "CLUSTER")]
    pub(crate) discover: Option<String>,
    /// Serf's `-syslog`: refused.
    #[arg(long, hide = true)]
    pub(crate) syslog: bool,
    /// Serf's `-protocol`: refused.
    #[arg(long, hide = true, value_name = "VERSION")]
    pub(crate) protocol: Option<String>,
    /// Tag of this node (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = rumor_std::parse_tag_arg)]
    pub(crate) tags: Vec<(String, String)>,
    /// Timing profile [default: lan].
    #[arg(long, value_enum)]
    pub(crate) profile: Option<Profile>,
    /// File where known peers are saved; a restarted agent rejoins them.
    #[arg(long, value_name = "PATH")]
    pub(crate) snapshot: Option<PathBuf>,
    /// Event handler `[filter,...=]script` (repeatable), run with /bin/sh -c.
    #[arg(long = "event-handler", value_name = "[FILTER=]SCRIPT")]
    pub(crate) event_handlers: Vec<String>,
    /// Render target (repeatable): the keys of a `[[render]]` section as a TOML inline
    /// table, e.g. '{ renderer = "haproxy", dest = "/etc/haproxy/haproxy.cfg" }'.
    #[arg(long = "render", value_name = "SPEC")]
    pub(crate) renders: Vec<String>,
    /// Kill a handler still running after this long [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) handler_timeout: Option<Duration>,
    /// Run handlers once member events have been quiet this long [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) coalesce_quiet: Option<Duration>,
    /// ...or at the latest this long after the first one [default: 3s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) coalesce_max: Option<Duration>,
    /// Run each handler from its own queue, concurrently with the others [default: one
    /// handler at a time, in event order, as Serf].
    #[arg(long)]
    pub(crate) parallel_handlers: bool,
    /// Longest graceful leave before exiting anyway (Serf's `-broadcast-timeout`) [default: 5s].
    #[arg(long, alias = "broadcast-timeout", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) leave_timeout: Option<Duration>,
    /// How long the agent stays once its leave is over, so the cluster (a balancer) can
    /// act on it before the service behind the agent stops [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) leave_propagate_delay: Option<Duration>,
    /// Ignore ICMP port and host unreachable errors: detect crashed members by suspicion
    /// timeouts only (behind a firewall that rejects the gossip port).
    #[arg(long)]
    pub(crate) no_icmp_evidence: bool,
    /// With a service after `--`: how long it keeps serving once the agent's leave has
    /// spread (and the leave-propagate delay has passed), so that the balancer can drain
    /// it before it is signalled [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) drain_time: Option<Duration>,
    /// With a service after `--`: how long it may take to exit once signalled before its
    /// process group is killed [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) stop_timeout: Option<Duration>,
    /// trace, debug, info, warn or error [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,
    /// RPC address for the other verbs: IP:PORT, or unix:PATH for a Unix socket of mode
    /// 0600 [default: 127.0.0.1:7373].
    #[arg(long, env = "RUMOR_RPC_ADDR", value_name = "ADDR")]
    pub(crate) rpc_addr: Option<String>,
    /// Require this token on every RPC request (Serf's `-rpc-auth`).
    #[arg(
        long,
        alias = "rpc-auth",
        env = "RUMOR_RPC_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) rpc_token: Option<String>,
    /// Encrypt and authenticate gossip with this key (base64 of 32 bytes: `rumor keygen`).
    /// With --keyring-file, it only creates the file when there is none.
    #[arg(
        long,
        env = "RUMOR_ENCRYPT",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub(crate) encrypt: Option<String>,
    /// Keyring file (JSON, mode 0600): read at start, created from --encrypt if missing,
    /// saved on every `rumor keys` change so a restarted agent keeps its keys.
    #[arg(long, value_name = "PATH")]
    pub(crate) keyring_file: Option<PathBuf>,
    /// With encryption, what to do about plaintext: refuse, accept (send encrypted, accept
    /// both) or send (send plaintext, accept both), the steps of turning encryption on in a
    /// running cluster (docs/OPERATIONS.md); saved to the keyring file [default: the
    /// keyring file's, else refuse].
    #[arg(long, value_name = "POLICY", value_parser = parse_plaintext)]
    pub(crate) plaintext: Option<rumor_core::Plaintext>,
    /// The service this agent announces, run as its child: `rumor agent [FLAGS] -- CMD
    /// [ARGS...]`. Signals are forwarded to it; SIGTERM, SIGINT or SIGQUIT first make the
    /// agent leave, then wait for --drain-time, then reach the service; the agent exits 0
    /// when that signal ended the service, else with the service's status, and leaves if
    /// the service exits first.
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// `rumor members` flags: Serf's (`-format`, `-detailed`, `-status`, `-name`, `-tag`,
/// `-role`), whose regexes are anchored at both ends (a full match).
#[derive(Args, Debug)]
pub(crate) struct MembersArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// Output format: text (`table` too) or json.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
    /// Also show each member's protocol versions (text output only).
    #[arg(long)]
    pub(crate) detailed: bool,
    /// Only members whose status (alive, suspect, left, failed) matches this regex, e.g.
    /// `alive|failed`; `alive,failed` and a repeated flag also mean either.
    #[arg(long, value_name = "REGEX", value_parser = client::parse_status_filter)]
    pub(crate) status: Vec<regex::Regex>,
    /// Only members whose name matches this regex.
    #[arg(long, value_name = "REGEX", value_parser = client::parse_name_filter)]
    pub(crate) name: Option<regex::Regex>,
    /// Only members whose tag KEY matches this regex (a missing tag counts as empty;
    /// repeatable; all must match).
    #[arg(long = "tag", value_name = "KEY=REGEX", value_parser = client::parse_tag_filter)]
    pub(crate) tags: Vec<(String, regex::Regex)>,
    /// Deprecated (as in Serf): the same as `--tag role=REGEX`.
    #[arg(long, value_name = "REGEX")]
    pub(crate) role: Option<String>,
}

/// `rumor join` flags.
#[derive(Args, Debug)]
pub(crate) struct JoinArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// How long to wait for a seed to answer (0: do not wait).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) wait: Duration,
    /// Seeds: HOST[:PORT] (port 7946 by default).
    // This doc is clap's help text, where brackets are literal, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(required = true, value_name = "ADDR")]
    pub(crate) addrs: Vec<String>,
}

/// `rumor force-leave` flags.
#[derive(Args, Debug)]
pub(crate) struct ForceLeaveArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// The failed member's name.
    #[arg(value_name = "NODE")]
    pub(crate) node: String,
}

/// `rumor event` flags.
#[derive(Args, Debug)]
pub(crate) struct EventArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// Event name (1 to 32 bytes).
    pub(crate) name: String,
    /// Payload (at most 64 bytes).
    #[arg(default_value = "")]
    pub(crate) payload: String,
}

/// `rumor monitor` flags.
#[derive(Args, Debug)]
pub(crate) struct MonitorArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// Show log lines at this level or more severe (the agent's own level is the floor).
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub(crate) log_level: String,
    /// Output format: text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// `rumor tags` flags.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"]))]
pub(crate) struct TagsArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// Set a tag (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = rumor_std::parse_tag_arg)]
    pub(crate) set: Vec<(String, String)>,
    /// Delete a tag (repeatable).
    #[arg(long, value_name = "KEY")]
    pub(crate) delete: Vec<String>,
}

/// `rumor info` flags.
#[derive(Args, Debug)]
pub(crate) struct InfoArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// Output format: text (`table` too; Serf's sections) or json.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// `rumor keys` flags: exactly one of the operations.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("op").required(true).args(["list", "install", "use_key", "remove", "plaintext"]))]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// Show every key (base64), the primary marked, then the plaintext policy.
    #[arg(long)]
    pub(crate) list: bool,
    /// Accept this key on receive too.
    #[arg(long, value_name = "KEY")]
    pub(crate) install: Option<String>,
    /// Seal with this installed key from now on.
    #[arg(long = "use", value_name = "KEY")]
    pub(crate) use_key: Option<String>,
    /// Stop accepting this key (it must not be the primary).
    #[arg(long, value_name = "KEY")]
    pub(crate) remove: Option<String>,
    /// What to do about plaintext from now on: send (step 1 of turning encryption on:
    /// send plaintext, accept both), accept (step 2: send encrypted, accept both) or
    /// refuse (step 3: encrypted only).
    #[arg(long, value_name = "POLICY", value_parser = parse_plaintext)]
    pub(crate) plaintext: Option<rumor_core::Plaintext>,
    /// Output format of the keyring.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// `rumor demo` flags.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Agents in the cluster (4 to 16).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(4..=16))]
    pub(crate) nodes: u8,
    /// Also print the agents' logs (to stderr) at this level.
    #[arg(long, default_value = "off", value_name = "LEVEL")]
    pub(crate) log_level: String,
    /// Show the rendered HAProxy config only, even if `haproxy` is on the PATH.
    #[arg(long)]
    pub(crate) no_haproxy: bool,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 500ms, 5s or 1m: {e}"))
}

pub(crate) fn parse_plaintext(s: &str) -> Result<rumor_core::Plaintext, String> {
    s.parse()
        .map_err(|_| format!("unknown plaintext policy `{s}` (use refuse, accept or send)"))
}

/// A current-thread runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the async runtime: {e}")))
}
