#!/usr/bin/env bash
# Regenerates every generated file from its source, deterministically (a second run changes
# nothing):
#   proto/**/*.pb.go                          buf generate (buf.yaml, buf.gen.yaml)
#   agent/api/*/zz_generated.deepcopy.go      controller-gen object
#   deploy/helm/ecklink/files/crds/*.yaml     controller-gen crd, one file per CRD (templates/crds.yaml renders them)
# The tools come from test/tools/build.sh tools (.cache/tools/bin); `make generate` installs them.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# Tools are looked up in the checkout being generated first, then in ECKLINK_TOOLS (verify.sh
# generates in a temporary copy that has no .cache of its own).
export PATH=$root/.cache/tools/bin:${ECKLINK_TOOLS:+$ECKLINK_TOOLS:}$PATH

for tool in buf protoc-gen-go protoc-gen-go-grpc controller-gen; do
	if ! command -v "$tool" >/dev/null; then
		echo "generate: $tool not found; run: make tools" >&2
		exit 1
	fi
done

crds=deploy/helm/ecklink/files/crds

buf generate

# Stale outputs of removed types would otherwise survive: controller-gen only writes.
rm -f agent/api/*/zz_generated.deepcopy.go
mkdir -p "$crds"
rm -f "$crds"/ecklink.io_*.yaml

controller-gen \
	object:headerFile=test/tools/boilerplate.go.txt \
	crd \
	paths=./agent/api/... \
	output:crd:artifacts:config="$crds"
