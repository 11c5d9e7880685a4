#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, then runs unit,
# per-plugin integration and end-to-end tests (the demo included).
# Root is needed for everything but the unit tests; under CI=true a test
# that would skip for lack of root fails instead.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
	"$root/scripts/install-deps.sh" --clients
else
	echo "test: not root: the unit tests run, the rest skip (run as root for the full suite)"
fi
start=$(date +%s)
make -C "$root" --no-print-directory test
echo "test: whole suite took $(( $(date +%s) - start ))s"
