#!/bin/sh
# Installs the Debian packages a make target needs, and nothing when all of
# them are present. usage: scripts/deps.sh GROUP...  (build test bench lint fuzz)
set -eu

pkgs_build="gcc make pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev"
pkgs_test="libcmocka-dev python3 curl procps prometheus nginx chromium wrk"
pkgs_bench="wrk python3-aiohttp gnuplot-nox"
pkgs_lint="clang-format"
pkgs_fuzz="clang libclang-rt-14-dev"

want=""
for group in "$@"; do
    eval "want=\"\$want \$pkgs_$group\""
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# The browser tests need node and npm; any install of them will do.
case " $* " in
*" test "*)
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
    ;;
esac
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "deps: need root (or sudo) to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
