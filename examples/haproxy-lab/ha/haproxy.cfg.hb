# The lab's ha/config/haproxy.cfg.hb, rendered by rumor: `members` are the live members
# tagged role=backend, sorted by name; `address` is a member's IP with the port from its
# `port` tag, `server` its name as an HAProxy identifier. (The lab's own block over
# `addresses`, with `host` and `ip`, renders unchanged too.) LAB_RUN, set by start.sh,
# is the runtime directory. The backend adds to the lab's: a request that meets a server
# that just died is retried on another one (retries, redispatch, retry-on), a dead server
# is out of rotation after two failed checks a second apart (docs/OPERATIONS.md).
global
    stats socket "${LAB_RUN}/haproxy.sock" mode 600 level admin
    stats timeout 30s

defaults
    mode http
    option dontlognull
    timeout connect 5000
    timeout client  50000
    timeout server  50000

listen stats
    bind *:1936
    stats enable
    stats uri /
    stats hide-version

frontend localnodes
    bind *:80
    default_backend nodes

backend nodes
    option httpchk HEAD /
    balance roundrobin
    option forwardfor
    http-request set-header X-Forwarded-Port %[dst_port]
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    timeout connect 1s
{{#each members}}
    server {{server}} {{address}} check inter 1s fall 2 rise 2
{{/each}}
