//! `rumor render --once`: prints what the render targets would render from the local
//! agent's members right now, to debug templates. Nothing is written or reloaded.

use std::path::PathBuf;

use clap::Args;
use rumor_std::render::sorted_by_name;
use rumor_std::rpc::{RpcClient, RpcCommand};

use super::settings::{file_render_specs, render_targets};
use super::{CliError, RpcArgs, runtime};

/// `rumor render` flags.
#[derive(Args, Debug)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    pub(crate) rpc: RpcArgs,
    /// Render once and print (the running agent is what renders continuously).
    #[arg(long, required = true)]
    pub(crate) once: bool,
    /// Agent config file whose `[[render]]` sections to render.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Render target, as for `rumor agent --render` (repeatable).
    #[arg(long = "render", value_name = "SPEC")]
    pub(crate) renders: Vec<String>,
}

pub(crate) fn run(args: RenderArgs) -> Result<(), CliError> {
    let specs = match &args.config {
        Some(path) => file_render_specs(path)?,
        None => Vec::new(),
    };
    let targets = render_targets(&specs, &args.renders)?;
    if targets.is_empty() {
        return Err(CliError(
            "no render target: pass --config with [[render]] sections, or --render".into(),
        ));
    }
    let rpc = &args.rpc;
    let members = runtime()?.block_on(async {
        let mut client = RpcClient::connect(&rpc.rpc_addr, rpc.rpc_token.clone()).await?;
        client.call(RpcCommand::Members).await
    })?;
    let members = sorted_by_name(&members.members.unwrap_or_default());
    let mut failed = 0;
    for t in &targets {
        if targets.len() > 1 {
            eprintln!("==> {} <==", t.dest.display());
        }
        match t.renderer.render_members(&members) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("{}: render failed: {e}", t.dest.display());
                failed += 1;
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(CliError(format!(
            "{n} of {} targets failed to render",
            targets.len()
        ))),
    }
}
