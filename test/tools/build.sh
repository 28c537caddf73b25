#!/usr/bin/env bash
# Builds the test bed's real binaries (kube-apiserver, etcd, the ECK operators 3.5 and 3.2) and
# the developer tools (helm, buf, protoc plugins) from the Go module proxy, caching them under
# .cache/ keyed by version, so a warm machine skips the build. These are test tools only: they are
# never committed, vendored or shipped in the image or chart (ECK is under the Elastic License 2.0).
#
# Usage: test/tools/build.sh [testbed|tools|all]   (default: all)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${ECKLINK_CACHE:-$root/.cache}
bindir=$cache/testbed/bin
toolbin=$cache/tools/bin
mkdir -p "$bindir" "$toolbin"

log() { printf 'testbed: %s\n' "$*" >&2; }

# modversion DIR MODULE prints the version DIR's go.mod requires for MODULE.
modversion() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }

# build NAME DIR VERSION [go build args...] builds DIR into a versioned file and links bin/NAME
# (bin/$LINK when LINK is set).
build() {
	local name=$1 dir=$2 version=$3 link=${LINK:-$1}
	shift 3
	local target=$cache/testbed/$name-$version
	if [ ! -x "$target" ]; then
		log "building $name $version (cold builds take minutes; cached afterwards)"
		local start=$SECONDS
		(cd "$dir" && go build -trimpath -o "$target.tmp" "$@" .)
		mv "$target.tmp" "$target"
		log "built $name $version in $((SECONDS - start))s"
	fi
	ln -sfn "$target" "$bindir/$link"
}

# eck DIR LINK CRDS builds the ECK operator that DIR's go.mod requires as bin/LINK, and installs
# the CRDs users install with it (the trimmed, deployed ones, straight from the module's source) as
# bin/CRDS.
eck() {
	local dir=$1 link=$2 crds=$3 version moddir
	version=$(modversion "$dir" github.com/elastic/cloud-on-k8s/v3)
	LINK=$link build elastic-operator "$dir" "$version"
	moddir=$(cd "$dir" && go list -m -f '{{.Dir}}' github.com/elastic/cloud-on-k8s/v3)
	install -m 0644 "$moddir/config/crds/v1/all-crds.yaml" "$cache/testbed/eck-crds-$version.yaml"
	ln -sfn "$cache/testbed/eck-crds-$version.yaml" "$bindir/$crds"
}

testbed() {
	local kube etcd
	kube=$(modversion "$root/test/tools/kube-apiserver" k8s.io/kubernetes)
	etcd=$(modversion "$root/test/tools/etcd" go.etcd.io/etcd/server/v3)
	local minor=${kube#v1.}
	minor=${minor%%.*}
	build kube-apiserver "$root/test/tools/kube-apiserver" "$kube" -ldflags \
		"-X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
	build etcd "$root/test/tools/etcd" "$etcd"
	# The ECK every suite runs, and the oldest ECK tested (3.2: no remoteClusterServer.service,
	# test/e2e/eck32).
	eck "$root/test/tools/eck" elastic-operator eck-crds.yaml
	eck "$root/test/tools/eck32" elastic-operator-3.2 eck-crds-3.2.yaml
}

# goinstall NAME PKG@VERSION installs a developer tool into .cache/tools, keyed by version.
goinstall() {
	local name=$1 pkg=$2
	local version=${pkg##*@}
	local target=$cache/tools/$name-$version
	if [ ! -x "$target" ]; then
		log "installing $name $version"
		local tmp
		tmp=$(mktemp -d)
		GOBIN=$tmp go install "$pkg"
		mv "$tmp/$name" "$target"
		rm -rf "$tmp"
	fi
	ln -sfn "$target" "$toolbin/$name"
}

tools() {
	goinstall helm helm.sh/helm/v3/cmd/helm@v3.22.0
	goinstall buf github.com/bufbuild/buf/cmd/buf@v1.75.0
	goinstall protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	goinstall protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	goinstall staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
	goinstall controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
}

case ${1:-all} in
testbed) testbed ;;
tools) tools ;;
all) testbed && tools ;;
*) echo "usage: $0 [testbed|tools|all]" >&2; exit 2 ;;
esac
