#!/bin/sh
# The shared preamble of the conformance scripts (conformance/README.md): it puts gw04
# between a script's clients and its `server s1`. POSIX sh: Debian's /bin/sh is dash.
#
#   gw.sh start UPSTREAM LISTEN [SECTION.KEY=VALUE ...]    in a `process pgw` block
#       Writes gw.yaml in the test's own directory (one http listener on LISTEN, one route
#       for every path to one upstream, UPSTREAM) and becomes the gateway (exec), so that
#       varnishtest owns the process: `process pgw -kill TERM -wait` sends SIGTERM and
#       expects exit 0 (a sanitizer report or a crash fails the script), and a failing
#       script has it killed at reset. SECTION is http (the listener's http keys), route
#       (the route's keys) or upstream (the upstream's keys); VALUE is YAML as written:
#       http.max_body=16  http.forward_trailers=[X-Sum]  upstream.keepalive={max_idle: 0}
#   gw.sh ready PID STDERR                                  in a `shell` block
#       Polls the gateway's stderr (varnishtest's ${pgw_err}) for its `ready` line, which
#       it logs once every listener of every worker accepts; fails at once, with the log,
#       if the gateway exits first, and after a deadline otherwise. No guessed sleeps.
#
# Environment (scripts/conformance.py sets them): GW_BIN, the binary (default: this tree's
# build/bin/gw04); GW_WORKERS, `workers` (default 2); GW_SANITIZER, non-empty for a
# sanitizer build (the deadline x5).
set -eu

here=$(cd "$(dirname "$0")" && pwd)

die() {
    echo "gw.sh: $*" >&2
    exit 1
}

# keys SECTION INDENT ARGS...: one "INDENTkey: value" line per SECTION.key=value argument.
keys() {
    sec=$1
    ind=$2
    shift 2
    for a in "$@"; do
        case $a in
        "$sec".*=*)
            kv=${a#"$sec".}
            printf '%s%s: %s\n' "$ind" "${kv%%=*}" "${kv#*=}"
            ;;
        esac
    done
}

start() {
    [ $# -ge 2 ] || die "usage: gw.sh start UPSTREAM LISTEN [SECTION.KEY=VALUE ...]"
    up=$1
    listen=$2
    shift 2
    has_http=
    for a in "$@"; do
        case $a in
        http.*=*) has_http=1 ;;
        route.*=* | upstream.*=*) ;;
        *) die "'$a': expected http.KEY=VALUE, route.KEY=VALUE or upstream.KEY=VALUE" ;;
        esac
    done
    {
        echo "workers: ${GW_WORKERS:-2}"
        echo "drain_timeout: 5s"
        echo "log: {level: info, format: plain}"
        echo "listeners:"
        echo "  - name: edge"
        echo "    address: \"$listen\""
        echo "    protocol: http"
        if [ -n "$has_http" ]; then
            echo "    http:"
            keys http "      " "$@"
        fi
        echo "    routes:"
        echo "      - name: default"
        echo "        match: {path_prefix: /}"
        echo "        upstream: app"
        keys route "        " "$@"
        echo "upstreams:"
        echo "  app:"
        keys upstream "    " "$@"
        echo "    backends: [{address: \"$up\"}]"
    } >gw.yaml
    exec "${GW_BIN:-$here/../build/bin/gw04}" -c gw.yaml
}

ready() {
    [ $# -eq 2 ] || die "usage: gw.sh ready PID STDERR"
    pid=$1
    err=$2
    limit=10
    [ -z "${GW_SANITIZER:-}" ] || limit=50
    end=$(($(date +%s) + limit))
    while :; do
        if [ -f "$err" ] && grep -q '\] ready: ' "$err"; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "gw.sh: the gateway exited before it was ready; its log:"
            cat "$err" || true
            exit 1
        fi
        if [ "$(date +%s)" -ge "$end" ]; then
            echo "gw.sh: no 'ready' line from the gateway within ${limit}s; its log:"
            cat "$err" || true
            exit 1
        fi
        sleep 0.02
    done
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
start) start "$@" ;;
ready) ready "$@" ;;
*) die "usage: gw.sh start UPSTREAM LISTEN [SECTION.KEY=VALUE ...] | gw.sh ready PID STDERR" ;;
esac
