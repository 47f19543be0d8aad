# Shared by bench/run.sh and bench/cpu.sh (sourced): starting, watching and
# stopping the servers under test. Needs START_TIMEOUT_S and STOP_TIMEOUT_S.

# alive PID: the child is running (a zombie has exited already).
alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# stop_server PID NAME: SIGTERM, wait at most STOP_TIMEOUT_S, then SIGKILL.
# Sets stopped_rc to the exit status. Not in a subshell: wait needs the
# server to be a child of this shell.
stopped_rc=0
stop_server() {
    local pid=$1 name=$2 waited=0
    stopped_rc=0
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if [ "$waited" -ge $((STOP_TIMEOUT_S * 10)) ]; then
            echo "bench: $name (pid $pid) ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" || stopped_rc=$?
}

# listen_port PID: the port of PID's listening socket on 127.0.0.1, from
# /proc (for a conlab whose --log-level hides the "listening on" line).
listen_port() {
    local fd inodes=""
    for fd in /proc/"$1"/fd/*; do
        fd=$(readlink "$fd" 2>/dev/null) || continue
        case $fd in
        socket:*) inodes="$inodes ${fd//[^0-9]/}" ;;
        esac
    done
    [ -n "$inodes" ] || return 0
    local hex
    hex=$(awk -v inodes="$inodes" '
        BEGIN { n = split(inodes, list, " ")
                for (i = 1; i <= n; i++) want[list[i]] = 1 }
        $4 == "0A" && ($10 in want) && $2 ~ /^0100007F:/ {
            print substr($2, 10); exit
        }' /proc/net/tcp)
    [ -z "$hex" ] || echo $((16#$hex))
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# wait_listening PID LOG NAME: prints the port from the "listening on" line
# (or from /proc) once the server answers GET /health with 200.
wait_listening() {
    local pid=$1 log=$2 name=$3 port="" tries=0
    while [ "$tries" -lt $((START_TIMEOUT_S * 10)) ]; do
        if ! alive "$pid"; then
            echo "bench: $name exited during start-up; end of its log:" >&2
            tail -n 20 "$log" | sed 's/^/    /' >&2
            return 1
        fi
        if [ -z "$port" ]; then
            port=$(sed -n \
                's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' \
                "$log" | head -n 1)
            [ -n "$port" ] || port=$(listen_port "$pid")
        fi
        if [ -n "$port" ] &&
            curl -fsS -o /dev/null --max-time 2 \
                "http://127.0.0.1:$port/health" 2>/dev/null; then
            echo "$port"
            return 0
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
    echo "bench: $name did not answer within ${START_TIMEOUT_S}s;" \
        "end of its log:" >&2
    tail -n 20 "$log" | sed 's/^/    /' >&2
    return 1
}

# require_tools TOOL...: exits 1, naming the first one missing.
require_tools() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "bench: $tool is not installed (scripts/deps.sh bench test)" >&2
            exit 1
        fi
    done
}

# clear_conlab_env: only the options a script gives count; a CONLAB_*
# variable in the caller's environment would silently change what is
# measured.
clear_conlab_env() {
    local var
    while read -r var; do
        unset "$var"
    done < <(env | sed -n 's/^\(CONLAB_[A-Z_]*\)=.*/\1/p')
}
