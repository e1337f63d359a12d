# The lab's template as the Serf lab had it: its backend lines only (no retry on another
# server, HAProxy's default checks: every 2 s, out after 3 failures), for measure.sh
# --template, to compare rumor with Serf on the same HAProxy config. Otherwise the same as
# ha/haproxy.cfg.hb.
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
{{#each members}}
    server {{server}} {{address}} check
{{/each}}
