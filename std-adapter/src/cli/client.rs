//! The verbs that talk to the local agent over RPC.

use std::future::Future;

use rumor_std::MemberInfo;
use rumor_std::rpc::{ClientError, RpcClient, RpcCommand, StreamItem};

use super::output::{info_text, member_table};
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

pub(crate) fn members(args: MembersArgs) -> Result<(), CliError> {
    let all = call(&args.rpc, RpcCommand::Members)?
        .members
        .unwrap_or_default();
    let shown: Vec<MemberInfo> = all
        .into_iter()
        .filter(|m| args.status.is_empty() || args.status.contains(&m.status))
        .filter(|m| args.tags.iter().all(|(k, v)| m.tags.get(k) == Some(v)))
        .collect();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&shown)?),
        Format::Table => print!("{}", member_table(&shown)),
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
        Format::Json => println!("{}", serde_json::to_string_pretty(&info)?),
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
