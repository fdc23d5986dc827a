#!/usr/bin/env bash
# Builds the MinIO server that pkg/export's tests run (a real S3 store, never
# a fake) into the Go bin directory, once: later runs find it there. The
# version is pinned; a build takes about two minutes.
set -euo pipefail
version=v0.0.0-20260212201848-7aac2a2c5b7c
bin=$(go env GOBIN)
[ -n "$bin" ] || bin=$(go env GOPATH)/bin
stamp=$bin/.minio-$version
if [ -x "$bin/minio" ] && [ -e "$stamp" ]; then
  exit 0
fi
echo "deps: building minio $version into $bin (cached for later runs)"
GOBIN=$bin go install "github.com/minio/minio@$version"
touch "$stamp"
