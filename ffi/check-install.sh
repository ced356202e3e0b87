#!/usr/bin/env bash
# CI's check of the install path the README gives: build libshmchan in the
# release profile, install it under a fresh prefix with ffi/install.sh,
# then, with only PKG_CONFIG_PATH pointing there, build the C examples
# (shared and static), a C++ program of shmchan.hpp, and run the C server
# with the C client. Leaves nothing behind: the prefix and the key file are
# removed, and the server removes its channel when the client is gone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -p shmchan-ffi --manifest-path "$root/Cargo.toml"
"$root/ffi/install.sh" --prefix "$work/prefix"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"

for prog in server client; do
    cc -std=c11 -Wall -Wextra -Werror "$root/examples/c/$prog.c" $(pkg-config --cflags --libs shmchan) -o "$work/$prog"
done
cc -std=c11 "$root/examples/c/client.c" -o "$work/client-static" \
    $(pkg-config --cflags shmchan) "$work/prefix/lib/libshmchan.a" $(pkg-config --libs-only-l --static shmchan | sed 's/-lshmchan//')
if ldd "$work/client-static" | grep -q libshmchan; then
    echo "the static client links libshmchan.so" >&2
    exit 1
fi
printf '#include <shmchan.hpp>\nint main() { return shmchan::channel::default_options().size == sizeof(shmchan_options) ? 0 : 1; }\n' > "$work/hpp.cpp"
g++ -std=c++17 -Wall -Wextra -Werror "$work/hpp.cpp" $(pkg-config --cflags --libs shmchan) -o "$work/hpp"
"$work/hpp"

# The server, then (once it says it waits) a client; the server exits when
# the client disconnects. Once with each client.
run_pair() { # CLIENT LINES
    local key="$work/key"
    : > "$key"
    "$work/server" "$key" S > "$work/server.out" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        grep -q "waiting for a client" "$work/server.out" && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    printf "$2" | "$work/$1" "$key" S
    wait "$server_pid"
    server_pid=""
    cat "$work/server.out"
}
run_pair client 'one\ntwo\nthree\n'
grep -q "^\[3\] three$" "$work/server.out"
run_pair client-static 'four\n'
grep -q "^\[1\] four$" "$work/server.out"
echo "install check: 1 passed, 0 failed"
