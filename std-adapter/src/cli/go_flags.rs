//! Go flag spellings (Serf's): `-flag=v`, `-flag v`, `--flag=v` and `--flag v` are one
//! flag, and a boolean is `-flag`, `-flag=true` or `-flag=false`.
//!
//! [`normalize`] rewrites the command line before clap sees it: `-name[=v]` becomes
//! `--name[=v]` when `name` is a long flag (or alias) of the chosen verb, and a boolean's
//! `=true` / `=false` becomes the bare flag / nothing; an unknown `-name` becomes
//! `--name` too, so that clap's error names it whole. Short flags (`-h`), negative
//! numbers, values (the argument after a flag that takes one, even one starting with
//! `-`) and everything after `--` (a child's own arguments) are left as they are.

use std::ffi::{OsStr, OsString};

use clap::{Arg, ArgAction, Command};

/// The rewritten command line: `args[0]` is the program, then the verb (and sub-verbs),
/// then its flags, in Go's spellings or clap's.
pub(crate) fn normalize(cmd: &Command, args: Vec<OsString>) -> Vec<OsString> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut out = Vec::with_capacity(args.len());
    let mut rest = args.into_iter();
    // The program name.
    if let Some(program) = rest.next() {
        out.push(program);
    }
    let mut current = &cmd;
    // The value of the previous flag: passed on as it is.
    let mut value_next = false;
    let mut after_dashes = false;
    for arg in rest {
        if after_dashes || value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            after_dashes = true;
            out.push(arg);
            continue;
        }
        if !text.starts_with('-') || text == "-" {
            // A verb (which brings its own flags) or a positional argument.
            if let Some(sub) = current.find_subcommand(OsStr::new(text)) {
                current = sub;
            }
            out.push(arg);
            continue;
        }
        let (dashes, body) = match text.strip_prefix("--") {
            Some(body) => ("--", body),
            None => ("-", &text[1..]),
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(flag) = long_flag(current, name) else {
            if dashes == "-"
                && let Some(short) = short_flag(current, body)
            {
                // A short flag, maybe with its value attached.
                value_next = takes_value(short) && body.chars().count() == 1;
                out.push(arg);
            } else if dashes == "-" && is_unknown_long(name) {
                // Unknown: clap names it as Go would (`--nope`), not as a short `-n`.
                out.push(format!("-{text}").into());
            } else {
                // A negative number, or unknown already spelled with two dashes.
                out.push(arg);
            }
            continue;
        };
        match (value, is_switch(flag)) {
            (None, switch) => {
                value_next = !switch && takes_value(flag);
                out.push(format!("--{name}").into());
            }
            (Some(v), true) => match parse_go_bool(v) {
                Some(true) => out.push(format!("--{name}").into()),
                Some(false) => {}
                // Not a Go boolean: clap says the flag takes no value.
                None => out.push(format!("--{name}={v}").into()),
            },
            (Some(v), false) => out.push(format!("--{name}={v}").into()),
        }
    }
    out
}

/// The argument of `cmd` whose long name or alias is `name`.
fn long_flag<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    if name.is_empty() {
        return None;
    }
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

/// Whether `-name` reads as an unknown long flag: two characters or more, starting with
/// a letter (not a negative number).
fn is_unknown_long(name: &str) -> bool {
    name.chars().count() > 1 && name.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// The argument of `cmd` whose short name is the first character of `body`.
fn short_flag<'a>(cmd: &'a Command, body: &str) -> Option<&'a Arg> {
    let c = body.chars().next()?;
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

/// Whether the flag is a boolean switch (present: true).
fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// Whether the flag takes a value (the next argument when not attached with `=`).
fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True; 0, f, F, FALSE, false, False.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verb with the kinds of flags that matter.
    fn cmd() -> Command {
        Command::new("rumor")
            .subcommand(
                Command::new("agent")
                    .arg(Arg::new("node").long("node"))
                    .arg(Arg::new("join").long("join").action(ArgAction::Append))
                    .arg(Arg::new("rpc-token").long("rpc-token").alias("rpc-auth"))
                    .arg(Arg::new("replay").long("replay").action(ArgAction::SetTrue))
                    .arg(Arg::new("retry-max").long("retry-max"))
                    .arg(Arg::new("quiet").short('q').action(ArgAction::SetTrue))
                    .arg(Arg::new("out").short('o'))
                    .arg(Arg::new("command").num_args(0..).last(true)),
            )
            .subcommand(Command::new("event").arg(Arg::new("name")))
    }

    fn norm(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("rumor")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        normalize(&cmd(), args)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn one_and_two_dashes_with_or_without_equals_are_one_flag() {
        assert_eq!(norm(&["agent", "-node=web1"]), ["agent", "--node=web1"]);
        assert_eq!(
            norm(&["agent", "-node", "web1"]),
            ["agent", "--node", "web1"]
        );
        assert_eq!(norm(&["agent", "--node=web1"]), ["agent", "--node=web1"]);
        assert_eq!(
            norm(&["agent", "--node", "web1"]),
            ["agent", "--node", "web1"]
        );
        // An alias too.
        assert_eq!(norm(&["agent", "-rpc-auth=s"]), ["agent", "--rpc-auth=s"]);
    }

    #[test]
    fn a_value_starting_with_a_dash_or_holding_equals_is_left_alone() {
        assert_eq!(
            norm(&["agent", "-rpc-token", "-node=x"]),
            ["agent", "--rpc-token", "-node=x"]
        );
        assert_eq!(
            norm(&["agent", "-join=a=b", "-node", "--"]),
            ["agent", "--join=a=b", "--node", "--"]
        );
        assert_eq!(
            norm(&["agent", "-retry-max", "-1"]),
            ["agent", "--retry-max", "-1"]
        );
        assert_eq!(
            norm(&["agent", "-retry-max=-1"]),
            ["agent", "--retry-max=-1"]
        );
    }

    #[test]
    fn booleans_take_go_values() {
        assert_eq!(norm(&["agent", "-replay"]), ["agent", "--replay"]);
        assert_eq!(norm(&["agent", "-replay=true"]), ["agent", "--replay"]);
        assert_eq!(norm(&["agent", "--replay=1"]), ["agent", "--replay"]);
        assert_eq!(
            norm(&["agent", "-replay=false", "-node=a"]),
            ["agent", "--node=a"]
        );
        // Not a boolean: clap refuses it.
        assert_eq!(
            norm(&["agent", "-replay=maybe"]),
            ["agent", "--replay=maybe"]
        );
        // A boolean takes no separate value: the next argument is a flag again.
        assert_eq!(
            norm(&["agent", "-replay", "-node", "a"]),
            ["agent", "--replay", "--node", "a"]
        );
    }

    #[test]
    fn everything_after_dashes_belongs_to_the_child() {
        assert_eq!(
            norm(&[
                "agent", "-node=a", "--", "nginx", "-g", "-node=x", "--", "-replay"
            ]),
            [
                "agent", "--node=a", "--", "nginx", "-g", "-node=x", "--", "-replay"
            ]
        );
    }

    #[test]
    fn short_negative_and_unknown_arguments() {
        assert_eq!(
            norm(&["agent", "-q", "-o", "-x"]),
            ["agent", "-q", "-o", "-x"]
        );
        assert_eq!(
            norm(&["agent", "-ofile", "-node=a"]),
            ["agent", "-ofile", "--node=a"]
        );
        // Unknown long flags get two dashes, so clap's error names them whole.
        assert_eq!(norm(&["agent", "-nope=1"]), ["agent", "--nope=1"]);
        assert_eq!(norm(&["agent", "--nope"]), ["agent", "--nope"]);
        assert_eq!(norm(&["agent", "-5"]), ["agent", "-5"]);
        assert_eq!(norm(&["agent", "-"]), ["agent", "-"]);
        assert_eq!(norm(&["agent", "-="]), ["agent", "-="]);
        // Flags of another verb are not this verb's.
        assert_eq!(
            norm(&["event", "-node=a", "deploy"]),
            ["event", "--node=a", "deploy"]
        );
        // Before the verb there is no verb's flag to find.
        assert_eq!(norm(&["-node=a", "agent"]), ["--node=a", "agent"]);
    }

    #[test]
    fn the_real_command_line_parses() {
        use clap::CommandFactory;
        let cli = super::super::Cli::command();
        let args = [
            "rumor",
            "agent",
            "-node=web1",
            "-bind",
            "127.0.0.1:7946",
            "--replay",
            "-tag",
            "role=backend",
            "-replay=false",
            "--",
            "sh",
            "-c",
            "exit 0",
        ]
        .map(OsString::from)
        .to_vec();
        let out = normalize(&cli, args);
        let m = cli.try_get_matches_from(out).unwrap();
        let (_, agent) = m.subcommand().unwrap();
        assert_eq!(agent.get_one::<String>("node").unwrap(), "web1");
        let child: Vec<&String> = agent.get_many("command").unwrap().collect();
        assert_eq!(child, ["sh", "-c", "exit 0"]);
    }
}
