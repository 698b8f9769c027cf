#!/usr/bin/env bash
# verify-unit.sh — check systemd/freshcached.service and its companions
# without a running systemd (works in a container):
#
#   tests/systemd/verify-unit.sh [-u UNIT] [-d FRESHCACHED] [-m DOCS_DIR]
#                                [-s SYSUSERS] [-t TMPFILES]
#
#   -u UNIT         the unit, as in the repo (with @sbindir@/@sysconfdir@) or
#                   as configured by meson (default: systemd/freshcached.service)
#   -d FRESHCACHED  the built daemon; replaces ExecStart's program, which
#                   `systemd-analyze verify` requires to exist (default:
#                   build/freshcached, else the installed path if it exists)
#   -m DOCS_DIR     where the *.scd man pages are (default: docs/); rendered
#                   with scdoc so the unit's Documentation=man:... links are
#                   checked too (skipped, with --man=no, without scdoc)
#   -s SYSUSERS     sysusers.d file (default: systemd/freshcache.sysusers)
#   -t TMPFILES     tmpfiles.d file (default: systemd/freshcache.tmpfiles)
#
# Checks, each printed as `ok` or `FAIL`:
#   1. `systemd-analyze verify` prints nothing (no warning at all);
#   2. the settings issue 5 asks for are present (Type=notify, ExecReload,
#      StateDirectory, RuntimeDirectory, User, the hardening list);
#   3. `systemd-analyze security --offline` exposure at most 2.0;
#   4. `systemd-sysusers` accepts the sysusers.d file (into a scratch root);
#   5. as root: `systemd-tmpfiles --create` accepts the tmpfiles.d file
#      (into the same scratch root, owned by the user made in 4).
# Exit 0 when all pass, 1 when one fails, 77 (skip, for meson) when
# systemd-analyze is not installed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
unit=$root/systemd/freshcached.service
daemon=
docs=$root/docs
sysusers=$root/systemd/freshcache.sysusers
tmpfiles=$root/systemd/freshcache.tmpfiles

while getopts "u:d:m:s:t:h" opt; do
    case $opt in
        u) unit=$OPTARG ;;
        d) daemon=$OPTARG ;;
        m) docs=$OPTARG ;;
        s) sysusers=$OPTARG ;;
        t) tmpfiles=$OPTARG ;;
        h) sed -n '2,28s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) exit 2 ;;
    esac
done

if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze not found (apt-get install systemd)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fc-unit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failed=1; }

# --- the unit with paths that exist here ----------------------------------
if [[ -z "$daemon" ]]; then
    if [[ -x $root/build/freshcached ]]; then
        daemon=$root/build/freshcached
    else
        daemon=/usr/sbin/freshcached
    fi
fi
daemon=$(realpath -m "$daemon")
if [[ ! -x "$daemon" ]]; then
    echo "FAIL freshcached not found at $daemon (build it, or pass -d PATH)"
    exit 1
fi
if [[ ! -f "$unit" ]]; then
    echo "FAIL unit file $unit not found"
    exit 1
fi
mkdir -p "$tmp/units"
test_unit=$tmp/units/freshcached.service
sed -e 's|@sbindir@|/usr/sbin|g' -e 's|@sysconfdir@|/etc|g' \
    -e "s|^ExecStart=[^ ]*freshcached\\b|ExecStart=$daemon|" "$unit" >"$test_unit"
if ! grep -q "^ExecStart=$daemon " "$test_unit"; then
    fail "ExecStart= does not run freshcached: $(grep '^ExecStart=' "$unit")"
fi

# --- 1. systemd-analyze verify --------------------------------------------
verify_opts=()
if command -v scdoc >/dev/null && command -v man >/dev/null && [[ -d "$docs" ]]; then
    for src in "$docs"/*.scd; do
        page=$(basename "$src" .scd)                 # freshcached.8
        section=${page##*.}
        mkdir -p "$tmp/man/man$section"
        if ! scdoc <"$src" >"$tmp/man/man$section/$page"; then
            fail "scdoc cannot render $src"
        fi
    done
    export MANPATH=$tmp/man
else
    echo "note: scdoc or man missing: Documentation= links not checked"
    verify_opts+=(--man=no)
fi
out=$(systemd-analyze verify "${verify_opts[@]}" "$test_unit" 2>&1)
rc=$?
if [[ $rc -eq 0 && -z "$out" ]]; then
    ok "systemd-analyze verify: clean"
else
    fail "systemd-analyze verify (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/     /'
fi

# --- 2. what issue 5 asks for ---------------------------------------------
# The value systemd will use: the last assignment of a key in [Service].
setting() {
    awk -v key="$1" '
        /^\[/ { sec = $0; next }
        sec == "[Service]" && index($0, key "=") == 1 { v = substr($0, length(key) + 2) }
        END { print v }' "$test_unit"
}
expect() {
    local key=$1 want=$2 got
    got=$(setting "$key")
    if [[ "$got" == "$want" ]]; then
        ok "$key=$want"
    else
        fail "$key: expected '$want', got '${got:-<unset>}'"
    fi
}
expect Type notify
expect ExecReload '/bin/kill -HUP $MAINPID'
expect User freshcache
expect Group freshcache
expect StateDirectory freshcache
expect RuntimeDirectory freshcache
expect NoNewPrivileges yes
expect ProtectSystem strict
expect ProtectHome yes
expect PrivateTmp yes
expect PrivateDevices yes
expect RestrictAddressFamilies 'AF_UNIX AF_INET AF_INET6'
expect CapabilityBoundingSet CAP_NET_BIND_SERVICE
expect AmbientCapabilities CAP_NET_BIND_SERVICE
expect SystemCallArchitectures native
expect MemoryDenyWriteExecute yes
expect LockPersonality yes
expect RestrictRealtime yes
expect RestrictNamespaces yes
expect ProtectKernelTunables yes
expect ProtectKernelModules yes
expect ProtectControlGroups yes
expect LimitNOFILE 65536
expect TimeoutStopSec 30
expect Restart on-failure
if grep -q '^SystemCallFilter=@system-service$' "$test_unit"; then
    ok "SystemCallFilter=@system-service"
else
    fail "SystemCallFilter=@system-service missing"
fi
# @sysconfdir@ is /etc in the repo's unit; a configured one may say
# /usr/local/etc: any absolute SYSCONFDIR/freshcache/freshcache.yaml.
if grep -Eq '^ExecStart=[^ ]+ -c /[^ ]*/freshcache/freshcache\.yaml$' "$test_unit"; then
    ok "ExecStart: $(grep '^ExecStart=' "$unit" | sed 's/^ExecStart=//')"
else
    fail "ExecStart does not pass -c SYSCONFDIR/freshcache/freshcache.yaml"
fi

# --- 3. exposure ------------------------------------------------------------
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    sec=$(systemd-analyze security --offline=yes "$test_unit" 2>&1)
    level=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [[ -n "$level" ]] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
        ok "systemd-analyze security: exposure $level"
    else
        fail "systemd-analyze security: exposure ${level:-unknown}, expected at most 2.0"
        printf '%s\n' "$sec" | grep '✗' | sed 's/^/     /'
    fi
else
    echo "note: systemd-analyze security --offline unavailable, exposure not checked"
fi

# --- 4. sysusers.d ----------------------------------------------------------
sysroot=$tmp/root
mkdir -p "$sysroot/etc"
if ! command -v systemd-sysusers >/dev/null; then
    echo "note: systemd-sysusers not found, $sysusers not checked"
elif out=$(systemd-sysusers --root="$sysroot" "$sysusers" 2>&1) &&
        grep -q '^freshcache:x:[0-9]*:[0-9]*:.*:/var/lib/freshcache:/usr/sbin/nologin$' \
            "$sysroot/etc/passwd" && grep -q '^freshcache:x:' "$sysroot/etc/group"; then
    ok "sysusers.d: user and group freshcache"
else
    fail "systemd-sysusers $sysusers:"
    printf '%s\n' "$out" | sed 's/^/     /'
fi

# --- 5. tmpfiles.d ----------------------------------------------------------
if ! command -v systemd-tmpfiles >/dev/null; then
    echo "note: systemd-tmpfiles not found, $tmpfiles not checked"
elif [[ $(id -u) -ne 0 ]]; then
    echo "note: not root, $tmpfiles not applied (chown needs root)"
elif out=$(systemd-tmpfiles --root="$sysroot" --create "$tmpfiles" 2>&1) && [[ -z "$out" ]] &&
        [[ $(stat -c %a "$sysroot/var/lib/freshcache") == 750 ]] &&
        [[ $(stat -c %u "$sysroot/var/lib/freshcache") == \
           $(awk -F: '$1 == "freshcache" { print $3 }' "$sysroot/etc/passwd") ]]; then
    ok "tmpfiles.d: /var/lib/freshcache 0750 freshcache"
else
    fail "systemd-tmpfiles $tmpfiles:"
    printf '%s\n' "$out" | sed 's/^/     /'
fi

if [[ $failed -ne 0 ]]; then
    echo "verify-unit: FAILED"
    exit 1
fi
echo "verify-unit: all checks passed"
