//! The verbs that talk to the local agent over RPC.

use std::future::Future;

use regex::Regex;
use rumor_std::MemberInfo;
use rumor_std::rpc::{ClientError, RpcClient, RpcCommand, StreamItem};

use super::output::{info_json, info_text, members_json, members_text};
use super::{
    CliError, EventArgs, ForceLeaveArgs, Format, InfoArgs, JoinArgs, MembersArgs, MonitorArgs,
    RpcArgs, TagsArgs, runtime,
};

/// Connects, then runs `f` with the client, on a fresh runtime.
fn with_client<T, F, Fut>(rpc: &RpcArgs, f: F) -> Result<T, CliError>
where
    F: FnOnce(RpcClient) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    runtime()?
        .block_on(async {
            let client = RpcClient::connect(&rpc.rpc_addr, rpc.rpc_token.clone()).await?;
            f(client).await
        })
        .map_err(CliError::from)
}

pub(crate) fn call(
    rpc: &RpcArgs,
    command: RpcCommand,
) -> Result<rumor_std::rpc::Response, CliError> {
    with_client(rpc, |mut c| async move { c.call(command).await })
}

/// Status names `--status` accepts as plain words: rumor's, and Serf's `leaving` and
/// `none` (which no rumor member has, so they match nothing, as they would in Serf on
/// a cluster without such members).
const STATUS_WORDS: [&str; 6] = ["alive", "suspect", "leaving", "left", "failed", "none"];

/// Compiles `expr` anchored at both ends, as Serf does (`^(?:expr)$`: a full match).
pub(crate) fn anchored(expr: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{expr})$")).map_err(|e| {
        // A syntax error spans lines (the pattern, a caret); its last line says what.
        let text = e.to_string();
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        format!("invalid regex `{expr}`: {}", why.trim())
    })
}

/// Splits at the commas outside brackets, braces and parentheses, so that `alive,failed`
/// is two alternatives but `a{1,2}` stays one.
fn split_top_level_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `--status REGEX`: Serf's anchored regex on the status, plus rumor's older form, a
/// comma-separated list (`alive,failed` is `alive|failed`). A plain word that is no
/// status name (`sleeping`) can never match and is refused as a typo.
pub(crate) fn parse_status_filter(s: &str) -> Result<Regex, String> {
    let parts = split_top_level_commas(s);
    if let Some(word) = parts.iter().find(|p| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphabetic()) && !STATUS_WORDS.contains(p)
    }) {
        return Err(format!(
            "unknown status `{word}` (use alive, suspect, left or failed, or a regex)"
        ));
    }
    anchored(&parts.join("|"))
}

/// `--name REGEX`: Serf's anchored regex on the node name.
pub(crate) fn parse_name_filter(s: &str) -> Result<Regex, String> {
    anchored(s)
}

/// `--tag KEY=REGEX`: Serf's anchored regex on a tag's value.
pub(crate) fn parse_tag_filter(s: &str) -> Result<(String, Regex), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), anchored(v)?)),
        _ => Err(format!("expected key=regex, got `{s}`")),
    }
}

/// Whether `m` passes every filter of `args`, as Serf's agent filters: any `--status`
/// regex matches the status (no flag: any status), the `--name` regex the name, and each
/// `--tag` regex the tag's value (a missing tag counts as the empty string).
fn shown(m: &MemberInfo, args: &MembersArgs, tags: &[(String, Regex)]) -> bool {
    (args.status.is_empty() || args.status.iter().any(|re| re.is_match(m.status.as_str())))
        && args.name.as_ref().is_none_or(|re| re.is_match(&m.name))
        && tags
            .iter()
            .all(|(k, re)| re.is_match(m.tags.get(k).map_or("", String::as_str)))
}

/// `rumor members`: the agent's members, filtered, as `serf members` prints them.
pub(crate) fn members(args: MembersArgs) -> Result<(), CliError> {
    let mut tags = args.tags.clone();
    if let Some(role) = &args.role {
        // Serf prints this warning on stdout; stderr keeps JSON output parseable.
        eprintln!("Deprecation warning: 'Role' has been replaced with 'Tags'");
        tags.push(("role".to_owned(), anchored(role).map_err(CliError)?));
    }
    let all = call(&args.rpc, RpcCommand::Members)?
        .members
        .unwrap_or_default();
    let kept: Vec<MemberInfo> = all.into_iter().filter(|m| shown(m, &args, &tags)).collect();
    match args.format {
        Format::Json => println!("{}", members_json(&kept)?),
        Format::Table => print!("{}", members_text(&kept, args.detailed)),
    }
    Ok(())
}

pub(crate) fn join(args: JoinArgs) -> Result<(), CliError> {
    let wait_ms = Some(args.wait.as_millis() as u64);
    let r = call(
        &args.rpc,
        RpcCommand::Join {
            addrs: args.addrs,
            wait_ms,
        },
    )?;
    match r.joined_via {
        Some(via) => println!("joined the cluster via {via}"),
        None => println!("joining in the background"),
    }
    Ok(())
}

pub(crate) fn leave(rpc: RpcArgs) -> Result<(), CliError> {
    let r = call(&rpc, RpcCommand::Leave)?;
    match r.leave {
        Some(rumor_std::LeaveOutcome::Complete) | None => {
            println!("left the cluster; the agent stopped")
        }
        Some(other) => {
            println!("the agent stopped");
            eprintln!("warning: leave {other:?}: peers may see a failure instead of a leave");
        }
    }
    Ok(())
}

pub(crate) fn force_leave(args: ForceLeaveArgs) -> Result<(), CliError> {
    let name = args.node.clone();
    call(&args.rpc, RpcCommand::ForceLeave { name: args.node })?;
    println!("{name} is marked left; the cluster is told");
    Ok(())
}

pub(crate) fn event(args: EventArgs) -> Result<(), CliError> {
    let name = args.name.clone();
    call(
        &args.rpc,
        RpcCommand::Event {
            name: args.name,
            payload: args.payload,
        },
    )?;
    println!("event {name} dispatched");
    Ok(())
}

pub(crate) fn tags(args: TagsArgs) -> Result<(), CliError> {
    let command = RpcCommand::Tags {
        set: args.set.into_iter().collect(),
        delete: args.delete,
    };
    let tags = call(&args.rpc, command)?.tags.unwrap_or_default();
    let joined: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("tags: {}", joined.join(","));
    Ok(())
}

pub(crate) fn info(args: InfoArgs) -> Result<(), CliError> {
    let info = call(&args.rpc, RpcCommand::Info)?
        .info
        .ok_or_else(|| CliError("the agent sent no info".into()))?;
    match args.format {
        Format::Json => println!("{}", info_json(&info)?),
        Format::Table => print!("{}", info_text(&info)),
    }
    Ok(())
}

pub(crate) fn monitor(args: MonitorArgs) -> Result<(), CliError> {
    let log_level = Some(args.log_level.clone());
    let format = args.format;
    with_client(&args.rpc, |mut c| async move {
        c.call(RpcCommand::Monitor { log_level }).await?;
        while let Some(item) = c.next_item().await? {
            let line = match (format, &item) {
                (Format::Json, _) => serde_json::to_string(&item)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?,
                (Format::Table, StreamItem::Event(e)) => format!("EVENT {e}"),
                (Format::Table, StreamItem::Log(l)) => {
                    format!("[{}] {}: {}", l.level, l.target, l.message)
                }
            };
            println!("{line}");
        }
        eprintln!("the agent closed the stream");
        Ok(())
    })
}
