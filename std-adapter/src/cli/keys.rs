//! `rumor keygen` and `rumor keys`: make a key, and list or change the local agent's
//! keyring and plaintext policy over RPC. Keys are checked here first, so a mistyped one is
//! reported against its flag; no message ever repeats a key.

use rumor_core::Plaintext;
use rumor_std::keyring::{encode_key, generate_key, parse_key};
use rumor_std::rpc::{KeyOp, KeyText, KeyringInfo, RpcCommand};

use super::client::call;
use super::{CliError, Format, KeysArgs};

/// Prints a new key.
pub(crate) fn keygen() -> Result<(), CliError> {
    let key = generate_key().map_err(|e| CliError(format!("cannot make a key: {e}")))?;
    println!("{}", encode_key(&key));
    Ok(())
}

/// Runs the one operation of `args` on the local agent and reports the keyring.
pub(crate) fn keys(args: KeysArgs) -> Result<(), CliError> {
    let (op, key) = operation(&args)?;
    let plaintext = args.plaintext;
    let keyring = call(&args.rpc, RpcCommand::Keys { op, key, plaintext })?
        .keyring
        .ok_or_else(|| CliError("the agent sent no keyring".into()))?;
    match (op, args.format) {
        (_, Format::Json) => println!("{}", serde_json::to_string_pretty(&keyring)?),
        (KeyOp::List, Format::Table) => print!("{}", key_list(&keyring)),
        (op, Format::Table) => println!("{}", change_summary(op, &keyring)),
    }
    Ok(())
}

/// The operation and its key, checked.
fn operation(args: &KeysArgs) -> Result<(KeyOp, Option<KeyText>), CliError> {
    if args.plaintext.is_some() {
        return Ok((KeyOp::Plaintext, None));
    }
    let (op, flag, text) = match (&args.install, &args.use_key, &args.remove) {
        (Some(k), _, _) => (KeyOp::Install, "--install", k),
        (_, Some(k), _) => (KeyOp::Use, "--use", k),
        (_, _, Some(k)) => (KeyOp::Remove, "--remove", k),
        _ => return Ok((KeyOp::List, None)),
    };
    parse_key(text).map_err(|e| CliError(format!("{flag}: {e}")))?;
    Ok((op, Some(KeyText(text.trim().to_owned()))))
}

/// One key per line, the primary first and marked, then the plaintext policy.
fn key_list(keyring: &KeyringInfo) -> String {
    let mut out: String = keyring
        .keys
        .iter()
        .map(|k| {
            if *k == keyring.primary {
                format!("{k} (primary)\n")
            } else {
                format!("{k}\n")
            }
        })
        .collect();
    out.push_str(&format!("plaintext: {}\n", keyring.plaintext));
    out
}

/// What a plaintext policy means, in a few words.
fn policy_meaning(p: Plaintext) -> &'static str {
    match p {
        Plaintext::Send => "sends plaintext, accepts plaintext and encrypted",
        Plaintext::Accept => "sends encrypted, still accepts plaintext",
        Plaintext::Refuse => "encrypted only",
    }
}

/// What a change did, and where it was saved.
fn change_summary(op: KeyOp, keyring: &KeyringInfo) -> String {
    let n = keyring.keys.len();
    let what = match op {
        KeyOp::List => "keyring unchanged",
        KeyOp::Install => "key installed",
        KeyOp::Use => "primary key set",
        KeyOp::Remove => "key removed",
        KeyOp::Plaintext => "plaintext policy set",
    };
    let plural = if n == 1 { "" } else { "s" };
    let saved = match &keyring.file {
        Some(path) => format!("saved to {path}"),
        None => "not saved: the agent has no --keyring-file, so a restart forgets it".into(),
    };
    if op == KeyOp::Plaintext {
        let p = keyring.plaintext;
        return format!("{what}: {p} ({}); {saved}", policy_meaning(p));
    }
    format!("{what}; the agent accepts {n} key{plural}; {saved}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_key_list_marks_the_primary_and_names_the_policy() {
        let mut info = KeyringInfo {
            primary: "AAA=".into(),
            keys: vec!["AAA=".into(), "BBB=".into()],
            file: None,
            plaintext: Plaintext::Refuse,
        };
        assert_eq!(key_list(&info), "AAA= (primary)\nBBB=\nplaintext: refuse\n");
        let s = change_summary(KeyOp::Install, &info);
        assert!(
            s.starts_with("key installed; the agent accepts 2 keys; not saved"),
            "{s}"
        );
        info.plaintext = Plaintext::Accept;
        info.file = Some("/k.json".into());
        assert_eq!(
            change_summary(KeyOp::Plaintext, &info),
            "plaintext policy set: accept (sends encrypted, still accepts plaintext); saved \
             to /k.json"
        );
    }

    fn parse(a: &[&str]) -> Result<crate::cli::Cli, clap::Error> {
        use clap::Parser;
        crate::cli::Cli::try_parse_from([&["rumor", "keys"][..], a].concat())
    }

    fn keys_args(a: &[&str]) -> KeysArgs {
        match parse(a).unwrap().command {
            crate::cli::Command::Keys(k) => k,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn encrypt_keys_plaintext_is_one_operation() {
        let args = keys_args(&["--plaintext", "send"]);
        assert_eq!(args.plaintext, Some(Plaintext::Send));
        assert_eq!(operation(&args).unwrap(), (KeyOp::Plaintext, None));
        let args = keys_args(&["--list"]);
        assert_eq!(operation(&args).unwrap(), (KeyOp::List, None));

        let e = parse(&["--plaintext", "off"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        let first = e.to_string();
        let first = first.lines().next().unwrap();
        assert!(first.contains("use refuse, accept or send"), "{first}");
        // One operation at a time.
        let e = parse(&["--plaintext", "accept", "--list"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
