#!/usr/bin/env bash
# Runs every fuzz target of the module for a short, bounded time each (CI) or longer by hand:
#   test/tools/fuzz.sh 10s      # each target 10 seconds
set -euo pipefail
cd "$(dirname "$0")/../.."
fuzztime=${1:-10s}
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "fuzz: $pkg $target ($fuzztime)"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
	done
done
