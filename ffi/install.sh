#!/usr/bin/env bash
# Installs libshmchan (the C library built by `cargo build --release -p
# shmchan-ffi`), its headers and a pkg-config file under a prefix:
#
#   cargo build --release -p shmchan-ffi
#   ffi/install.sh --prefix ~/.local
#   export PKG_CONFIG_PATH=~/.local/lib/pkgconfig   # unless the prefix is /usr
#   cc prog.c $(pkg-config --cflags --libs shmchan)
#
# PREFIX/lib gets libshmchan.so and libshmchan.a, PREFIX/include shmchan.h
# and shmchan.hpp, PREFIX/lib/pkgconfig shmchan.pc. For a prefix whose lib
# directory the dynamic loader does not search (anything but /usr and
# /usr/local), the .pc file's Libs carries -Wl,-rpath so that programs find
# the library at run time without LD_LIBRARY_PATH.
#
# Options: --prefix DIR (required), --target-dir DIR (cargo's target
# directory, default target/ at the repository's root), --profile NAME
# (default release), --destdir DIR (staged installs: files go under
# DESTDIR/PREFIX, and the .pc file names PREFIX).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="" target="$root/target" profile=release destdir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --target-dir) target="$2"; shift 2 ;;
        --profile) profile="$2"; shift 2 ;;
        --destdir) destdir="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$prefix" ] || { echo "install.sh: --prefix DIR is required" >&2; exit 2; }
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
built="$target/$profile"
for f in libshmchan.so libshmchan.a; do
    [ -f "$built/$f" ] || {
        echo "install.sh: no $built/$f; build it first: cargo build --profile $profile -p shmchan-ffi" >&2
        exit 1
    }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/ffi/Cargo.toml" | head -n 1)
case "$prefix" in
    /usr|/usr/local) rpath="" ;;
    *) rpath="-Wl,-rpath,\${libdir}" ;;
esac
dest="$destdir$prefix"
install -d "$dest/lib/pkgconfig" "$dest/include"
install -m 0755 "$built/libshmchan.so" "$dest/lib/"
install -m 0644 "$built/libshmchan.a" "$dest/lib/"
install -m 0644 "$root/include/shmchan.h" "$root/include/shmchan.hpp" "$dest/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@RPATH@|$rpath|" \
    "$root/ffi/shmchan.pc.in" > "$dest/lib/pkgconfig/shmchan.pc"
echo "installed libshmchan $version under $dest (pkg-config: $dest/lib/pkgconfig)"
