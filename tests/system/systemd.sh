#!/bin/bash
# Nucleus under systemd as PID 1 on a pure cgroup v2 host: the system
# lane's --systemd boot (scripts/system-lane.sh --systemd BUILD systemd).
# Elsewhere (ctest on a host whose PID 1 is not systemd) it is SKIPPED.
#   1. a scope with Delegate=yes: the runtime moves itself into a
#      "supervisor" leaf and the sandbox's cgroup, with its limit, is made
#      in the scope's subtree;
#   2. a service with Delegate=yes, its own cgroup the parent: the same;
#   3. a non-root user inside a delegated scope of its own user manager: the
#      non-root paths get a cgroup there, and strict-agent starts;
#   4. a unit whose syscall filter hides Landlock: strict-agent and
#      production refuse [rule landlock-required], agent runs degraded;
#   5. the daemon as a unit (packaging/systemd/nucleus.service).
# Units, users and files are named with this script's pid and removed.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
lane="scripts/system-lane.sh --systemd BUILD systemd runs it"

[ "$(id -u)" = 0 ] || skip_set "needs root; $lane"
[ "$(cat /proc/1/comm)" = systemd ] || skip_set "needs systemd as PID 1; $lane"
grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null ||
    skip_set "needs a pure cgroup v2 hierarchy with the memory controller at /sys/fs/cgroup; $lane"

work=$(mktemp -d)
mkdir "$work/gate"
chmod -R 0755 "$work"
tag=$$
trap 'rm -rf "$work"' EXIT
# The binaries, where any user may run them: the build's own, unless the
# checkout is private (then copies: nucleus is ~70 MB with its debug info,
# which costs seconds over 9p under emulation).
nucleus=$build/nucleus
checkers=$build/tests/checker
if ! setpriv --reuid 65534 --regid 65534 --clear-groups test -x "$nucleus" -a -x "$checkers/nucleus-check"; then
    mkdir "$work/bin" "$work/checker"
    cp "$nucleus" "$work/bin/"
    cp "$checkers/nucleus-check" "$work/checker/"
    chmod -R a+rX "$work"
    nucleus=$work/bin/nucleus
    checkers=$work/checker
fi

# The workload: waits for the gate to open (so the test can look at it
# while it runs), then allocates 256 MiB.
gated_hog=(-v "$checkers:/checker:ro" -v "$work/gate:/gate:ro" -- /bin/sh -c
    'while [ ! -e /gate/open ]; do sleep 0.1; done; exec /checker/nucleus-check hog 256')

# in_cgroup PID CGROUP: PID's cgroup v2 path is CGROUP.
in_cgroup() { grep -qx "0::$2" "/proc/$1/cgroup"; }
# unit_gone UNIT: its cgroup was removed.
unit_gone() { ! systemctl is-active --quiet "$1" && [ -z "$(find /sys/fs/cgroup -name "$1" -print -quit)" ]; }
# memory_max_of EVENTS: memory.max of the sandbox's cgroup, read while it runs.
memory_max_of() { cat "$(event_field "$1" start cgroup)/memory.max"; }
# refused_by RULE CODE OUTPUT: exit 125, naming the rule.
refused_by() { [ "$2" = 125 ] && grep -qF "[rule $1]" <<<"$3"; }
# ran_without_landlock CODE OUTPUT: exit 0, saying Landlock is missing.
ran_without_landlock() { [ "$1" = 0 ] && grep -q 'degraded: landlock' <<<"$2"; }
# running NAME: the daemon reports the sandbox running.
running() { "$nucleus" inspect "$1" 2>/dev/null | grep -q '"state": *"running"'; }

echo "== 1. a scope with Delegate=yes (at ${SECONDS} s)"
scope=nucleus-test-scope-$tag
events=$work/scope.jsonl
systemd-run --quiet --scope --unit="$scope" --slice=nucleus.slice -p Delegate=yes \
    "$nucleus" run --cgroup-parent "nucleus.slice/$scope.scope/sandboxes" --memory 32m \
    --events-jsonl "$events" "${gated_hog[@]}" &
pid=$!
check "the sandbox starts" wait_until 60 started "$events"
check "the runtime moved itself into the scope's supervisor leaf" in_cgroup "$pid" "/nucleus.slice/$scope.scope/supervisor"
check "the sandbox's cgroup is in the scope" \
    grep -q "^/sys/fs/cgroup/nucleus.slice/$scope.scope/sandboxes/sandbox-" <<<"$(event_field "$events" start cgroup)"
check "its memory.max is 32 MiB" [ "$(memory_max_of "$events")" = 33554432 ]
touch "$work/gate/open"
wait "$pid"
code=$?
check "over its limit it is OOM-killed (exit $code)" [ "$code" = 137 ]
check "the exit event says oom_kill" [ "$(event_field "$events" exit reason)" = oom_kill ]
check "the scope and its subtree are gone" wait_until 20 unit_gone "$scope.scope"
rm -f "$work/gate/open"

echo "== 2. a service with Delegate=yes, its own cgroup the parent (at ${SECONDS} s)"
service=nucleus-test-service-$tag
events=$work/service.jsonl
systemd-run --quiet --unit="$service" -p Delegate=yes \
    "$nucleus" run --cgroup-parent "system.slice/$service.service" --memory 32m \
    --events-jsonl "$events" "${gated_hog[@]}"
check "the sandbox starts" wait_until 60 started "$events"
main=$(systemctl show -p MainPID --value "$service")
check "the runtime moved itself into the service's supervisor leaf" in_cgroup "$main" "/system.slice/$service.service/supervisor"
check "the sandbox's cgroup is in the service's" \
    grep -q "^/sys/fs/cgroup/system.slice/$service.service/sandbox-" <<<"$(event_field "$events" start cgroup)"
check "its memory.max is 32 MiB" [ "$(memory_max_of "$events")" = 33554432 ]
touch "$work/gate/open"
check "the service ends" wait_until 60 unit_gone "$service.service"
check "its main process exited 137" [ "$(systemctl show -p ExecMainStatus --value "$service")" = 137 ]
check "the exit event says oom_kill" [ "$(event_field "$events" exit reason)" = oom_kill ]
systemctl reset-failed "$service" 2>/dev/null
rm -f "$work/gate/open"

echo "== 3. a non-root user in a delegated scope of its user manager (at ${SECONDS} s)"
user=nucleus-test-$tag
useradd --create-home --shell /bin/sh "$user"
uid=$(id -u "$user")
systemctl start "user@$uid.service"
check "the user's manager runs" systemctl is-active --quiet "user@$uid.service"
home=$(getent passwd "$user" | cut -d: -f6)
events=$home/user.jsonl
runuser -u "$user" -- env XDG_RUNTIME_DIR="/run/user/$uid" systemd-run --user --quiet --scope -p Delegate=yes \
    --unit="nucleus-test-user-scope" "$nucleus" run --strict-agent --memory 32m --pids 32 \
    --events-jsonl "$events" -v "$checkers:/checker:ro" -- /checker/nucleus-check hog 256
code=$?
check "strict-agent starts, and over its limit the sandbox is OOM-killed (exit $code)" [ "$code" = 137 ]
check "the sandbox's cgroup is in the user's scope" \
    grep -q "^/sys/fs/cgroup/user.slice/user-$uid.slice/user@$uid.service/app.slice/nucleus-test-user-scope.scope/sandbox-" \
    <<<"$(event_field "$events" start cgroup)"
check "its limits were applied, nothing degraded" \
    grep -q '"degraded":\[\].*"limits":{"memory_max":33554432,"pids_max":32}' "$events"
systemctl stop "user@$uid.service"
userdel --remove "$user" 2>/dev/null

echo "== 4. a unit whose syscall filter hides Landlock (at ${SECONDS} s)"
hide_landlock=(-p "SystemCallFilter=~landlock_create_ruleset landlock_add_rule landlock_restrict_self"
    -p SystemCallErrorNumber=ENOSYS)
for mode in strict-agent production; do
    out=$(systemd-run --quiet --wait --pipe "${hide_landlock[@]}" "$nucleus" run --service-mode "$mode" \
        -- /bin/true 2>&1)
    code=$?
    echo "$out"
    check "$mode refuses (exit $code) [rule landlock-required]" refused_by landlock-required "$code" "$out"
done
out=$(systemd-run --quiet --wait --pipe "${hide_landlock[@]}" "$nucleus" run -- /bin/true 2>&1)
code=$?
echo "$out"
check "agent runs (exit $code) and says Landlock is missing" ran_without_landlock "$code" "$out"

echo "== 5. the daemon as a unit (at ${SECONDS} s)"
units=/etc/systemd/system
cp "$root/packaging/systemd/nucleus.service" "$units/nucleus.service"
mkdir -p "$units/nucleus.service.d"
printf '[Service]\nExecStart=\nExecStart=%s daemon\n' "$nucleus" >"$units/nucleus.service.d/lane.conf"
systemctl daemon-reload
systemctl start nucleus.service
check "the daemon's unit is active" systemctl is-active --quiet nucleus.service
check "it answers on its socket" wait_until 30 "$nucleus" ps
"$nucleus" create --cgroup-parent system.slice/nucleus.service/sandboxes --memory 32m \
    -v "$checkers:/checker:ro" -- /checker/nucleus-check hog 256
code=$?
check "a sandbox in the unit's delegated subtree is OOM-killed over its limit (exit $code)" [ "$code" = 137 ]
main=$(systemctl show -p MainPID --value nucleus.service)
check "the daemon moved itself into the unit's supervisor leaf" in_cgroup "$main" /system.slice/nucleus.service/supervisor
"$nucleus" create -d --name "keep-$tag" -- sleep 600 >/dev/null
systemctl restart nucleus.service
check "after a restart, a sandbox outside the unit is re-adopted and running" wait_until 30 running "keep-$tag"
"$nucleus" rm --force "keep-$tag" >/dev/null
systemctl stop nucleus.service
check "the daemon stops cleanly on SIGTERM" [ "$(systemctl show -p Result --value nucleus.service)" = success ]
check "the unit's cgroup is gone" unit_gone nucleus.service
rm -rf "$units/nucleus.service" "$units/nucleus.service.d"
systemctl daemon-reload

echo "(done at ${SECONDS} s)"
finish
