#!/usr/bin/env bash
# duplicates.sh [REV]: lists the repeated code in agent/ with the `duplicates` command of the
# developers' tool library (not part of this repo; the script says so when it is missing).
#
# The tool's README says import lines are passed over, but it reads the quoted paths inside a Go
# `import ( ... )` block as code, so two files that import the same six packages make a pair. This
# script runs it twice on agent/ at REV (default: the working tree's tracked files): as it is, and
# with every import block blanked (line numbers kept), and prints the first line of each plus the
# rows of the second. Compare two commits with `make duplicates REV=<old>` and `make duplicates`.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v duplicates >/dev/null; then
	echo "duplicates.sh: the duplicates command is not on PATH (it comes with the developers' tool library)" >&2
	exit 1
fi
rev=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$rev" ]; then
	git archive "$rev" agent | tar -x -C "$tmp"
else
	git ls-files -z agent | tar --null -T - -c | tar -x -C "$tmp"
fi
raw=$(cd "$tmp/agent" && duplicates --repo . --most 1 --seconds 120 | head -n 1)
find "$tmp/agent" -name '*.go' -print0 | while IFS= read -r -d '' f; do
	awk '/^import \($/ { b = 1; print ""; next }
	     b && /^\)$/  { b = 0; print ""; next }
	     b            { print ""; next }
	                  { print }' "$f" >"$f.blanked"
	mv "$f.blanked" "$f"
done
echo "agent/ at ${rev:-the working tree}"
echo "as read by the tool:        $raw"
echo "import blocks blanked:      $(cd "$tmp/agent" && duplicates --repo . --most 200 --seconds 120 | tee "$tmp/rows" | head -n 1)"
tail -n +2 "$tmp/rows"
