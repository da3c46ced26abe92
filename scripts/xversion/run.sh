#!/usr/bin/env bash
# Cross-version check of the rolling upgrade from the host layout (not a CI
# test): the previous version's own Publisher and Source (git 65424f4^, the
# last commit writing the host layout) against this tree's, on one embedded
# etcd that this tree's test starts. Two scenarios: "both" (an old host and
# an upgraded one see each other) and "inplace" (an old host is upgraded in
# place while an old reader must never lose its endpoint).
# Usage: scripts/xversion/run.sh both|inplace   (from the repository root)
set -euo pipefail
scenario=${1:?both or inplace}
root=$(pwd)
old=$(mktemp -d)
trap 'rm -rf "$old" "$root/pkg/cluster/etcd/xversion_scratch_test.go" /tmp/xversion-* /tmp/xv2-*' EXIT
git archive 65424f4^ | tar -x -C "$old"
cp "scripts/xversion/old_${scenario}_test.go.txt" "$old/pkg/cluster/etcd/xversion_scratch_test.go"
cp "scripts/xversion/new_${scenario}_test.go.txt" pkg/cluster/etcd/xversion_scratch_test.go
rm -f /tmp/xversion-endpoint /tmp/xv2-endpoint
XVERSION=1 go test ./pkg/cluster/etcd/ -run 'TestXVersion.*New' -count=1 -v > "$old/new.log" 2>&1 &
newpid=$!
for _ in $(seq 120); do [ -f /tmp/xversion-endpoint ] || [ -f /tmp/xv2-endpoint ] && break; sleep 1; done
(cd "$old" && go test ./pkg/cluster/etcd/ -run 'TestXVersion.*Old' -count=1 -v) | grep -v '^{'
wait "$newpid"; rc=$?
grep -v '^{\|^time=' "$old/new.log" | tail -5
exit $rc
