# Shell helpers for scripts that run `idpsync serve` (the conformance suites, the load run):
# a free loopback port, a server started in the background and waited for, and its stop.
# Source this file; it sets `server_pid`.

server_pid=""

# Prints a free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server BINARY DATA_DIR PORT LOG_FILE: runs `serve` in the background (warnings only in
# its log) and returns once /healthz answers, or fails after 30 s.
start_server() {
    IDPSYNC_LOG="${IDPSYNC_LOG:-warn}" "$1" --data-dir "$2" serve --listen "127.0.0.1:$3" > "$4" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$3/healthz')" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "idpsync serve did not come up; its log:" >&2
    cat "$4" >&2
    return 1
}

# Stops the server started by start_server, if any, and waits for it.
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
