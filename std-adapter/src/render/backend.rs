//! The synced backend of a rendered HAProxy file: its `server` lines, which the runtime
//! API mode keeps HAProxy's live servers equal to, and the rest of the file, whose changes
//! need a reload.

use std::net::SocketAddr;

use super::select::Server;

/// Keywords that start a section of an HAProxy configuration.
const SECTIONS: [&str; 13] = [
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "program",
    "http-errors",
    "ring",
    "cache",
    "mailers",
];

/// One `server NAME IP:PORT [OPTIONS]` line of the synced backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLine {
    /// Its name and address.
    pub server: Server,
    /// The keywords after the address, single-spaced.
    pub options: String,
}

/// A rendered file split for the runtime API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitFile<'a> {
    /// The `server` lines of the synced backend, in file order.
    pub servers: Vec<ServerLine>,
    /// Every other line: a change here needs a reload.
    pub rest: Vec<&'a str>,
}

/// Splits `text` on the `server` lines of `backend`'s section (from `backend NAME` to the
/// next section keyword). An address that is not `IP:PORT` is an error: the runtime API
/// adds servers by address.
pub fn split<'a>(text: &'a str, backend: &str) -> Result<SplitFile<'a>, String> {
    let mut servers = Vec::new();
    let mut rest = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(first) = words.first()
            && SECTIONS.contains(first)
        {
            inside = *first == "backend" && words.get(1) == Some(&backend);
        }
        if inside && words.first() == Some(&"server") {
            servers.push(server_line(&words, line)?);
        } else {
            rest.push(line);
        }
    }
    Ok(SplitFile { servers, rest })
}

fn server_line(words: &[&str], line: &str) -> Result<ServerLine, String> {
    let (Some(name), Some(addr)) = (words.get(1), words.get(2)) else {
        return Err(format!(
            "`{}`: a server line needs a name and an address",
            line.trim()
        ));
    };
    let addr: SocketAddr = addr.parse().map_err(|_| {
        format!(
            "`{}`: the runtime API needs an IP:PORT address, not `{addr}`",
            line.trim()
        )
    })?;
    Ok(ServerLine {
        server: Server {
            name: (*name).to_owned(),
            ip: addr.ip(),
            port: addr.port(),
        },
        options: words[3..].join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
global
    daemon
frontend web
    bind :80
    default_backend nodes
backend nodes
    balance roundrobin
    server static 10.0.0.1:80 check backup
    server s1 10.0.0.11:3000 check
    server s6 [fd00::6]:3000
backend other
    server o1 10.0.1.1:80
";

    #[test]
    fn only_the_synced_backends_servers_are_split_off() {
        let f = split(FILE, "nodes").unwrap();
        let names: Vec<&str> = f.servers.iter().map(|s| s.server.name.as_str()).collect();
        assert_eq!(names, ["static", "s1", "s6"]);
        assert_eq!(f.servers[0].options, "check backup");
        assert_eq!(f.servers[2].server.address(), "[fd00::6]:3000");
        assert_eq!(f.servers[2].options, "");
        // Another backend's servers stay in the rest: changing them needs a reload.
        assert!(f.rest.contains(&"    server o1 10.0.1.1:80"));
        assert!(!f.rest.iter().any(|l| l.contains("s1")));
    }

    #[test]
    fn a_server_without_an_ip_address_is_an_error() {
        let e = split("backend nodes\n    server a web.example:80\n", "nodes").unwrap_err();
        assert!(e.contains("needs an IP:PORT address"), "{e}");
        let e = split("backend nodes\n    server a\n", "nodes").unwrap_err();
        assert!(e.contains("needs a name and an address"), "{e}");
        // A backend name that only starts like ours is another backend.
        assert!(split("backend nodes2\n    server a x\n", "nodes").is_ok());
    }
}
