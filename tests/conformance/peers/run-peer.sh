#!/usr/bin/env bash
# Run http-cache-tests@0.4.5 against a peer caching proxy on loopback, for
# the comparison table in docs/conformance.md.
#
#   tests/conformance/peers/run-peer.sh PEER [run.py options]
#
# PEER: nginx, varnish, squid, haproxy or trafficserver, from Debian
# (apt-get install nginx-light varnish squid haproxy trafficserver; their
# system services are not used).  Starts the peer with the config here and
# every file it writes in a temporary directory, in front of the suite's
# test server, and lets ../run.py drive the suite through it (--base,
# --no-expectations, so only the summary is printed).  Extra options go to
# run.py, e.g. --json FILE or --id TEST.  The peer is stopped on exit, on
# failure too.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
peer=${1:-}
[[ -n $peer ]] || { sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 2; }
shift

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {   # PORT PID
    for _ in $(seq 1 100); do
        if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5)' "$1" 2>/dev/null; then
            return 0
        fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

tmp=$(mktemp -d -t "freshcache-peer-$peer.XXXXXX")
chmod 755 "$tmp"     # the peers' worker processes drop privileges
peer_pid=
# shellcheck disable=SC2317  # reached through the EXIT trap only
cleanup() {
    if [[ -n $peer_pid ]] && kill -0 "$peer_pid" 2>/dev/null; then
        kill -TERM "$peer_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$peer_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$peer_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

origin_port=$(free_port)
proxy_port=$(free_port)
fill() {
    sed -e "s|@TMPDIR@|$tmp|g" -e "s|@ORIGIN_PORT@|$origin_port|g" \
        -e "s|@PROXY_PORT@|$proxy_port|g" -e "s|@USER_DIRECTIVE@|$user_directive|g" "$1"
}

case $peer in
    nginx)
        command -v nginx >/dev/null || { echo "run-peer: nginx not found (apt-get install nginx-light)" >&2; exit 1; }
        user_directive=
        if ((EUID == 0)); then user_directive='user root;'; fi
        fill "$here/nginx.conf.in" > "$tmp/nginx.conf"
        version=$(nginx -v 2>&1 | sed 's/.*\///')
        nginx -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/error.log" > "$tmp/stdout.log" 2>&1 &
        peer_pid=$!
        ;;
    varnish)
        command -v varnishd >/dev/null || { echo "run-peer: varnishd not found (apt-get install varnish)" >&2; exit 1; }
        user_directive=
        fill "$here/varnish.vcl.in" > "$tmp/default.vcl"
        version=$(varnishd -V 2>&1 | sed -n 's/.*(varnish-\([^ ]*\).*/\1/p' | head -1)
        varnishd -F -n "$tmp/varnish" -a "127.0.0.1:$proxy_port" -f "$tmp/default.vcl" \
            -T none -p default_ttl=0 -p default_grace=0 -p default_keep=3600 -s malloc,64M \
            > "$tmp/stdout.log" 2>&1 &
        peer_pid=$!
        ;;
    squid)
        command -v squid >/dev/null || { echo "run-peer: squid not found (apt-get install squid)" >&2; exit 1; }
        mkdir "$tmp/squid"
        user_directive=
        if ((EUID == 0)); then
            # Squid refuses to run as root: it switches to Debian's proxy
            # user, which must own its log and pid directory.
            user_directive='cache_effective_user proxy'
            chown proxy: "$tmp/squid"
        fi
        fill "$here/squid.conf.in" > "$tmp/squid.conf"
        version=$(squid -v | sed -n 's/.*Version //p')
        # -N: no daemon, no kid processes, so $! is squid itself.  -n: a
        # service name of our own, which names its shared memory segments
        # (/dev/shm/NAME-*.shm), so it cannot meet another Squid's.
        squid -N -n "fcpeer$$" -f "$tmp/squid.conf" > "$tmp/stdout.log" 2>&1 &
        peer_pid=$!
        ;;
    haproxy)
        command -v haproxy >/dev/null || { echo "run-peer: haproxy not found (apt-get install haproxy)" >&2; exit 1; }
        user_directive=
        fill "$here/haproxy.cfg.in" > "$tmp/haproxy.cfg"
        version=$(haproxy -v | sed -n '1s/^HAProxy version \([^ -]*\).*/\1/p')   # without Debian's -1+deb12u4
        # -db: foreground, no daemon, one process ($! is haproxy itself).
        haproxy -db -f "$tmp/haproxy.cfg" > "$tmp/stdout.log" 2>&1 &
        peer_pid=$!
        ;;
    trafficserver)
        command -v traffic_server >/dev/null || { echo "run-peer: traffic_server not found (apt-get install trafficserver)" >&2; exit 1; }
        ts=$tmp/trafficserver
        mkdir -p "$ts/etc" "$ts/var" "$ts/run" "$ts/log" "$ts/cache"
        user_directive='#-1'                  # do not change user
        if ((EUID == 0)); then user_directive=trafficserver; fi
        for f in records.config remap.config storage.config; do
            fill "$here/trafficserver/$f.in" > "$ts/etc/$f"
        done
        cp "$here/trafficserver/ip_allow.yaml" "$ts/etc/"
        # Files it reads that need nothing here (Debian ships them with
        # comments only).
        for f in cache.config hosting.config parent.config plugin.config volume.config; do
            : > "$ts/etc/$f"
        done
        # The runroot: binaries and plugins where Debian put them, every file
        # it reads or writes in the sandbox (never /etc/trafficserver,
        # /var/cache/trafficserver, /var/log/trafficserver, /run/trafficserver).
        printf '%s\n' "prefix: /usr" "exec_prefix: /usr" "bindir: /usr/bin" "sbindir: /usr/sbin" \
            "includedir: /usr/include" "libdir: /usr/lib/trafficserver" \
            "libexecdir: /usr/lib/trafficserver/modules" "sysconfdir: $ts/etc" \
            "datadir: $ts/var" "localstatedir: $ts/var" "runtimedir: $ts/run" \
            "logdir: $ts/log" "cachedir: $ts/cache" > "$ts/runroot.yaml"
        if ((EUID == 0)); then chown -R trafficserver: "$ts"; fi
        # A runroot it cannot read makes traffic_server fall back to the
        # system layout (Debian's config: port 8080 on every interface).
        if [[ $(traffic_layout info --run-root="$ts/runroot.yaml" 2>/dev/null | sed -n 's/^SYSCONFDIR: //p') != "$ts/etc" ]]; then
            echo "run-peer: traffic_server does not take $ts/runroot.yaml; not starting it" >&2; exit 1
        fi
        version=$(traffic_server -V 2>/dev/null | sed -n 's/^Traffic Server \([^ ]*\) .*/\1/p' | head -1)
        # traffic_server alone (no traffic_manager) stays in the foreground,
        # so $! is it; its diagnostics go to $ts/log/diags.log.
        traffic_server --run-root="$ts/runroot.yaml" > "$tmp/stdout.log" 2>&1 &
        peer_pid=$!
        ;;
    *)
        echo "run-peer: unknown peer '$peer' (nginx, varnish, squid, haproxy or trafficserver)" >&2; exit 2 ;;
esac

if ! wait_port "$proxy_port" "$peer_pid"; then
    echo "run-peer: $peer did not start on 127.0.0.1:$proxy_port:" >&2
    cat "$tmp"/*.log >&2 || true
    exit 1
fi
echo "run-peer: $peer $version on 127.0.0.1:$proxy_port, test server on 127.0.0.1:$origin_port" >&2
status=0
python3 "$here/../run.py" --base "http://127.0.0.1:$proxy_port" --origin-port "$origin_port" \
    --no-expectations "$@" || status=$?
exit $status
