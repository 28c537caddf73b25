#!/usr/bin/env bash
# Runs every fuzz target of the module for a short, bounded time each (make test, CI) or longer by
# hand:
#   test/tools/fuzz.sh 10s      # each target 10 seconds
#   test/tools/fuzz.sh 5m FuzzRouterUpdate
# Targets are found by name (func Fuzz... in *_test.go); their committed seeds live in
# testdata/fuzz/<target>/ and also run with every plain `go test`.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline exceeded" at the end
# of -fuzztime when a worker is still busy (golang/go#75804, fixed in Go 1.27). Such a failure
# that wrote no new input under testdata/fuzz/<target>/ is reported as a flake, not a failure; a
# crasher is always written there, so real findings still fail the run.
set -uo pipefail
cd "$(dirname "$0")/../.."
fuzztime=${1:-10s}
only=${2:-}
failed=()
while read -r file target; do
	[[ -n "$only" && "$target" != "$only" ]] && continue
	dir=$(dirname "$file")
	pkg="./$dir"
	corpus="$dir/testdata/fuzz/$target"
	before=$(ls "$corpus" 2>/dev/null | sort)
	echo "fuzz: $pkg $target ($fuzztime)"
	out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" 2>&1)
	status=$?
	echo "$out" | tail -n 3
	if [[ $status -ne 0 ]]; then
		after=$(ls "$corpus" 2>/dev/null | sort)
		if [[ "$before" == "$after" ]] && grep -q '^    context deadline exceeded$' <<<"$out"; then
			echo "fuzz: $target: flake of the Go fuzz coordinator at the time limit (golang/go#75804), no crasher written"
			continue
		fi
		echo "$out"
		failed+=("$pkg $target")
	fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' agent internal test | sed 's/:func / /')
if [[ ${#failed[@]} -gt 0 ]]; then
	printf 'fuzz: FAILED %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: every target passed"
