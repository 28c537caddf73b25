#!/usr/bin/env bash
# Fails when generated code is stale, go.mod is untidy, or formatting, vet or lint find problems.
# It runs every check, names each failure with its fix, and changes nothing in the checkout:
# generation runs in a temporary copy, so a dirty working tree is checked as it is.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH=$root/.cache/tools/bin:$PATH

failed=()
fail() {
	printf 'verify: FAILED: %s\n  fix: %s\n' "$1" "$2" >&2
	failed+=("$1")
}
step() { printf 'verify: %s\n' "$*" >&2; }

# The checkout's files: tracked and untracked, without ignored ones (.cache, bin) and without
# tracked files deleted in the working tree.
files() { git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done; }

check_generated() {
	step "generated code (test/tools/generate.sh in a temporary copy)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	files | sort -z >"$tmp/before"
	mkdir "$tmp/src"
	tar -C "$root" --null -T "$tmp/before" -cf - | tar -C "$tmp/src" -xf -
	if ! (cd "$tmp/src" && ECKLINK_TOOLS=$root/.cache/tools/bin test/tools/generate.sh) >"$tmp/log" 2>&1; then
		cat "$tmp/log" >&2
		fail "generate.sh failed" "correct the error above, then run: make generate"
		return
	fi
	(cd "$tmp/src" && find . -type f -printf '%P\0' | sort -z) >"$tmp/after"
	local stale=()
	while IFS= read -r -d '' f; do
		if [ ! -e "$tmp/src/$f" ]; then
			stale+=("$f (should not exist)")
		elif [ ! -e "$root/$f" ]; then
			stale+=("$f (missing)")
		elif ! cmp -s "$root/$f" "$tmp/src/$f"; then
			stale+=("$f")
			diff -u --label "$f (in the checkout)" --label "$f (generated)" "$root/$f" "$tmp/src/$f" | head -20 >&2
		fi
	done < <(sort -zu "$tmp/before" "$tmp/after")
	if [ ${#stale[@]} -gt 0 ]; then
		printf '  stale: %s\n' "${stale[@]}" >&2
		fail "generated files are stale" "make generate"
	fi
}

check_tidy() {
	step "go mod tidy"
	if ! go mod tidy -diff >&2; then
		fail "go.mod/go.sum are not tidy" "make fix (runs go mod tidy)"
	fi
}

check_gofmt() {
	step "gofmt"
	local unformatted
	unformatted=$(files | grep -z '\.go$' | grep -zv -e '\.pb\.go$' -e 'zz_generated' | xargs -0r gofmt -l)
	if [ -n "$unformatted" ]; then
		printf '  %s\n' $unformatted >&2
		fail "files are not gofmt-formatted" "make fix (runs gofmt -w)"
	fi
}

check_vet() {
	step "go vet"
	go vet ./... >&2 || fail "go vet found problems" "correct the code go vet names above"
}

check_staticcheck() {
	step "staticcheck"
	if ! command -v staticcheck >/dev/null; then
		fail "staticcheck is not installed" "make tools"
		return
	fi
	staticcheck ./... >&2 || fail "staticcheck found problems" "correct the code staticcheck names above"
}

check_buf() {
	step "buf lint"
	if ! command -v buf >/dev/null; then
		fail "buf is not installed" "make tools"
		return
	fi
	buf lint >&2 || fail "buf lint found problems in proto/" "correct the .proto files, then run: make generate"
}

# check_buf_breaking compares proto/ with the last release commit (the last line of
# test/compat/releases.txt): changes must be additive (docs/compatibility.md). The release's files
# come from `git archive`, which works in any clone that has the commit, worktrees included (their
# .git is a file, which buf's own `.git#ref=` input cannot read). A shallow clone (CI) fetches the
# one commit first.
check_buf_breaking() {
	step "buf breaking (against the last release)"
	if ! command -v buf >/dev/null; then
		fail "buf is not installed" "make tools"
		return
	fi
	local line version sha
	line=$(grep -v '^#' test/compat/releases.txt | grep . | tail -1)
	version=${line%% *}
	sha=${line##* }
	if ! git cat-file -e "$sha^{commit}" 2>/dev/null; then
		step "release $version ($sha) is not in this clone; fetching it"
		git fetch --quiet --depth=1 origin "$sha" >&2 2>&1 || true
	fi
	if ! git cat-file -e "$sha^{commit}" 2>/dev/null; then
		fail "release $version commit $sha is not in this clone" "git fetch --unshallow (or: git fetch origin $sha)"
		return
	fi
	local against
	against=$(mktemp -d)
	git archive "$sha" buf.yaml proto | tar -x -C "$against"
	buf breaking --against "$against" >&2 ||
		fail "proto/ breaks compatibility with release $version ($sha)" "make the change additive (docs/compatibility.md): new fields and messages only, reserve removed ones"
	rm -rf "$against"
}

check_helm() {
	local chart=deploy/helm/ecklink
	if [ ! -f "$chart/Chart.yaml" ]; then
		step "helm lint (skipped: $chart/Chart.yaml does not exist yet)"
		return
	fi
	step "helm lint"
	if ! command -v helm >/dev/null; then
		fail "helm is not installed" "make tools"
		return
	fi
	# environment has no default (values.schema.json requires it), so lint sets one.
	helm lint "$chart" --set environment=lint >&2 || fail "helm lint found problems in $chart" "correct the chart as helm lint says"
}

check_generated
check_tidy
check_gofmt
check_vet
check_staticcheck
check_buf
check_buf_breaking
check_helm

if [ ${#failed[@]} -gt 0 ]; then
	printf 'verify: %d check(s) failed:\n' "${#failed[@]}" >&2
	printf '  - %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "verify: all checks passed" >&2
