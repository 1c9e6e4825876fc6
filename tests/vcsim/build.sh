#!/bin/sh
# Builds tests/vcsim/vcsim from main.go, offline, with the Go toolchain and
# govmomi sources of Debian's golang-go and golang-github-vmware-govmomi-dev.
# Installs nothing.
set -eu
cd "$(dirname "$0")"
GOPATH=${VCSIM_GOPATH:-/usr/share/gocode}
if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' not found (apt-get install golang-go)" >&2
    exit 2
fi
if [ ! -d "$GOPATH/src/github.com/vmware/govmomi/simulator" ]; then
    echo "build.sh: govmomi sources not found under $GOPATH" \
        "(apt-get install golang-github-vmware-govmomi-dev)" >&2
    exit 2
fi
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ]; then
    export GOCACHE=/tmp/vmpoolerd-go-build-cache
fi
export GOPATH GO111MODULE=off GOFLAGS= GOPROXY=off CGO_ENABLED=0
go build -o "vcsim.tmp.$$" . && mv -f "vcsim.tmp.$$" vcsim
echo "built $(pwd)/vcsim"
