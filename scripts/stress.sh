#!/usr/bin/env bash
# Runs the whole test suite the way a loaded CI machine runs it, to shake out
# tests whose outcome depends on the order goroutines happen to run in: race
# detector on, every test twice in one process (-count=2), GOMAXPROCS 1 on odd
# rounds and 2 on even ones, with busy loops taking CPU beside it. It stops at
# the first failure; a hang fails after -timeout with every goroutine's stack.
#
#   scripts/stress.sh [rounds] [hogs] [packages...]   # defaults: 20 2 ./... ./dev/...
#
# Packages under ./dev/ are in the development module (docs/contributing.md,
# "Two modules"): they are tested by a go test of their own, run in dev/.
#
# Set CI=true to make the Redis and Chromium tests run rather than skip.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
hogs=${2:-2}
shift $(($# < 2 ? $# : 2))
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(./... ./dev/...)
root=()
dev=()
for p in "${packages[@]}"; do
	case $p in
	./dev/* | dev/*) dev+=("./${p#*dev/}") ;;
	*) root+=("$p") ;;
	esac
done
# gotest runs go test with the given flags on the packages of each module.
gotest() {
	if [ ${#root[@]} -gt 0 ]; then go test "$@" "${root[@]}" || return; fi
	if [ ${#dev[@]} -gt 0 ]; then go test -C dev "$@" "${dev[@]}" || return; fi
}

hog_pids=()
trap 'kill "${hog_pids[@]}" 2>/dev/null || true' EXIT
for ((i = 0; i < hogs; i++)); do
	(while :; do :; done) &
	hog_pids+=($!)
done

gotest -race -count=1 -run '^$' >/dev/null # build once, outside the timings
total=$SECONDS
for ((round = 1; round <= rounds; round++)); do
	procs=$((2 - round % 2))
	start=$SECONDS
	if ! GOMAXPROCS=$procs gotest -race -count=2 -timeout 5m; then
		echo "stress: round $round/$rounds (GOMAXPROCS=$procs, $hogs hogs) FAILED" >&2
		exit 1
	fi
	echo "stress: round $round/$rounds (GOMAXPROCS=$procs, $hogs hogs) passed in $((SECONDS - start)) s"
done
echo "stress: $rounds rounds passed in a row in $((SECONDS - total)) s"
