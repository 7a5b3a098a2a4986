#!/usr/bin/env bash
# The fan-out on the Redis store with and without durable publishes
# (min_replicas 1), alternating, each run on fresh servers: a local primary
# with one local replica, and Caddy on it. 5,000 long-poll readers on 10
# channels, 200 messages at 20/s (docs/performance.md, "Durable publishes").
#
#   scripts/bench-redis-durable.sh [rounds, default 2]
#
# Besides comet-bench's report, each run prints the CPU time Caddy, the
# primary and the replica spent during it (/proc/PID/stat), per delivery.
#
# Everything listens on loopback: Caddy on 4191 (admin 4190), Redis on 4195
# (primary) and 4196 (replica). Needs redis-server and redis-cli.
set -euo pipefail
rounds=${1:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	redis-cli -p 4196 shutdown nosave >/dev/null 2>&1 || true
	redis-cli -p 4195 shutdown nosave >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# cpu prints the CPU time (user + system, in clock ticks) of the processes
# given, summed.
cpu() {
	local total=0 p
	for p in "$@"; do
		read -r -a f <"/proc/$p/stat"
		total=$((total + f[13] + f[14]))
	done
	echo "$total"
}
redis_pid() { redis-cli -p "$1" info server | tr -d '\r' | sed -n 's/^process_id://p'; }
ticks=$(getconf CLK_TCK)
go build -C "$repo" -o "$work/caddy" ./cmd/caddy
go build -C "$repo/dev" -o "$work/comet-bench" ./cmd/comet-bench
export XDG_DATA_HOME=$work/data XDG_CONFIG_HOME=$work/config
for round in $(seq "$rounds"); do
	for mode in plain durable; do
		rm -rf "$work/r1" "$work/r2"
		mkdir -p "$work/r1" "$work/r2"
		redis-server --port 4195 --bind 127.0.0.1 --save "" --appendonly no --dir "$work/r1" \
			--daemonize yes --repl-diskless-sync-delay 0 >/dev/null
		redis-server --port 4196 --bind 127.0.0.1 --save "" --appendonly no --dir "$work/r2" \
			--daemonize yes --replicaof 127.0.0.1 4195 >/dev/null
		until redis-cli -p 4196 info replication | grep -q master_link_status:up; do sleep 0.1; done
		option=""
		[ "$mode" = durable ] && option="min_replicas 1"
		cat >"$work/$mode.Caddyfile" <<CADDYFILE
{
	admin localhost:4190
	grace_period 1s
	persist_config off
}
http://127.0.0.1:4191 {
	bind 127.0.0.1
	comet {
		enable_status
		store redis redis://127.0.0.1:4195/0 {
			$option
		}
	}
}
CADDYFILE
		"$work/caddy" run --config "$work/$mode.Caddyfile" --adapter caddyfile >"$work/caddy-$mode.log" 2>&1 &
		pid=$!
		pids+=("$pid")
		until curl -sf http://127.0.0.1:4191/health.json >/dev/null; do sleep 0.1; done
		echo "== round $round, ${mode/plain/min_replicas 0}${option:+ ($option)}"
		procs=("$pid" "$(redis_pid 4195)" "$(redis_pid 4196)")
		before=$(cpu "${procs[@]}")
		"$work/comet-bench" fanout -target http://127.0.0.1:4191 -readers 5000 -channels 10 \
			-rate 20 -messages 200 -status -pid "$pid" -quiet
		after=$(cpu "${procs[@]}")
		# 200 messages to 500 readers each: 100,000 deliveries.
		echo "  server CPU:  $(( (after - before) * 1000000 / ticks / 100000 )) us per delivery (Caddy, primary and replica)"
		kill "$pid"
		wait "$pid" || true
		redis-cli -p 4196 shutdown nosave >/dev/null || true
		redis-cli -p 4195 shutdown nosave >/dev/null || true
	done
done
