#!/usr/bin/env bash
# Side by side with the peers (docs/performance.md, "Side by side: method"): the same
# comet-bench fan-out, same client and flags, against caddy-comet, the least
# hub Caddy allows (dev/leasthub: the floor of a delivery through Caddy),
# nginx with Nchan, and Centrifugo (its uni_sse; SSE only), in one run. Each
# round runs every server, each started afresh (for its memory figures), in
# an order that rotates from round to round; before each run it waits (a
# bounded time) for the machine's load to drop and records it. It prints
# every run (latency, loss, the publish rate kept, the server's CPU time per
# delivery and memory per reader), then each server's medians and their
# ratios to the least hub's, all from the same run of this script.
#
#   scripts/bench-peers.sh [-- extra comet-bench flags]
#
# Settings, from the environment (defaults in brackets):
#   SERVERS ["comet least nchan centrifugo"]
#                        which servers; one that is not installed (nginx with
#                        Nchan, Centrifugo) is skipped with a message, and so
#                        is Centrifugo for TRANSPORT=longpoll (it has none).
#                        comet-redis is caddy-comet on the Redis store, with
#                        a redis-server of its own (one node, one Redis; its
#                        CPU is Caddy's and Redis's together)
#   ROUNDS [2]           rounds of every server
#   CLIENT [net/http]    comet-bench -client, the same for all: net/http or lean
#   TRANSPORT [longpoll] longpoll or sse
#   SITE [bare]          the Caddyfile of caddy-comet and the least hub: bare
#                        (the handler alone) or deployed (log, encode, header
#                        and handle_path around it)
#   READERS [5000] CHANNELS [10] RATE [20] DURATION [10]
#                        the load: RATE*DURATION messages at RATE per second
#   MAX_LOAD [1.0] LOAD_WAIT [120]
#                        wait up to LOAD_WAIT seconds for a 1-minute load
#                        average under MAX_LOAD before each run
#   CADDY, COMET_BENCH   binaries to use (default: built here, without -race;
#                        CADDY must have least_hub: dev/cmd/caddy-bench)
#   CADDY_ENV            NAME=value words for Caddy's environment only, e.g.
#                        "GODEBUG=adaptivestackstart=0 GOGC=200" (default: none)
#   NCHAN_MODULE         [/usr/lib/nginx/modules/ngx_nchan_module.so]
#   CENTRIFUGO           [centrifugo on the PATH, else $(go env GOPATH)/bin/centrifugo]
#   OUT                  a directory to keep the configs, logs and JSON
#                        reports in (default: a temporary one, removed)
#
# Everything listens on loopback (ports 4491 to 4495); the load is bounded by
# READERS, the message count and comet-bench's timeouts (each run at most
# about 2 minutes of setup, 3 x DURATION of publishing and 10 s of drain).
# Needs Go and jq; nginx with Nchan (Debian: nginx, libnginx-mod-nchan) and
# Centrifugo (go install github.com/centrifugal/centrifugo/v6@v6.9.1) for
# their columns.
set -euo pipefail
cd "$(dirname "$0")/.."

servers=${SERVERS:-comet least nchan centrifugo}
rounds=${ROUNDS:-2}
client=${CLIENT:-net/http}
transport=${TRANSPORT:-longpoll}
site=${SITE:-bare}
readers=${READERS:-5000}
channels=${CHANNELS:-10}
rate=${RATE:-20}
seconds=${DURATION:-10}
max_load=${MAX_LOAD:-1.0}
load_wait=${LOAD_WAIT:-120}
nchan_module=${NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}
extra=()
if [[ ${1:-} == -- ]]; then
	shift
	extra=("$@")
fi
case $site in bare | deployed) ;; *)
	echo "SITE=$site: want bare or deployed" >&2
	exit 1
	;;
esac

caddy_port=4491 nchan_port=4492 admin_port=4493 centrifugo_port=4494 redis_port=4495
redis_pid=
if [[ -n ${OUT:-} ]]; then
	dir=$OUT
	mkdir -p "$dir"
else
	dir=$(mktemp -d)
fi
server_pid=
cleanup() {
	local pid
	for pid in $server_pid $redis_pid; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[[ -n ${OUT:-} ]] || rm -rf "$dir"
}
trap cleanup EXIT

# Every held read is a connection: 20000 open files is the most a process
# gets here, and what each of the three processes gets.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

caddy=${CADDY:-}
caddy_env=${CADDY_ENV:-}
bench=${COMET_BENCH:-}
if [[ -z $caddy ]]; then
	# Caddy with caddy-comet and the least hub, from the development module.
	caddy=$(cd "$dir" && pwd)/caddy-bench
	go build -C dev -o "$caddy" ./cmd/caddy-bench
fi
if [[ -z $bench ]]; then
	# The load tool is in the development module, dev/; -C builds it from
	# there, so the output path must not be relative.
	bench=$(cd "$dir" && pwd)/comet-bench
	go build -C dev -o "$bench" ./cmd/comet-bench
fi

# The servers that can run here, in the order asked.
centrifugo=${CENTRIFUGO:-$(command -v centrifugo || echo "$(go env GOPATH)/bin/centrifugo")}
run_servers=()
for server in $servers; do
	case $server in
	comet | least) run_servers+=("$server") ;;
	comet-redis)
		if command -v redis-server >/dev/null; then
			run_servers+=(comet-redis)
		else
			echo "skipping comet-redis: no redis-server (Debian: apt-get install redis-server)" >&2
		fi
		;;
	nchan)
		if command -v nginx >/dev/null && [[ -f $nchan_module ]]; then
			run_servers+=(nchan)
		else
			echo "skipping Nchan: no nginx or no $nchan_module (Debian: apt-get install nginx libnginx-mod-nchan)" >&2
		fi
		;;
	centrifugo)
		if [[ $transport != sse ]]; then
			echo "skipping Centrifugo: it has no long polling (TRANSPORT=sse compares it)" >&2
		elif [[ -x $centrifugo ]]; then
			run_servers+=(centrifugo)
		else
			echo "skipping Centrifugo: not installed (go install github.com/centrifugal/centrifugo/v6@v6.9.1, or set CENTRIFUGO)" >&2
		fi
		;;
	*)
		echo "SERVERS: unknown server $server (want comet, comet-redis, least, nchan or centrifugo)" >&2
		exit 1
		;;
	esac
done
if [[ " ${run_servers[*]} " == *" least "* ]] && ! "$caddy" list-modules | grep -qx http.handlers.least_hub; then
	echo "CADDY=$caddy has no least_hub: build dev/cmd/caddy-bench, or leave CADDY unset" >&2
	exit 1
fi
if ((${#run_servers[@]} == 0)); then
	echo "no server to run" >&2
	exit 1
fi

# caddy-comet: comet's defaults (http_timeout 30s, 100 messages retained per
# channel), enable_status for comet-bench -status.
# caddy-comet and the least hub: the same site, the handler differing.
caddy_base=http://127.0.0.1:$caddy_port
# caddyfile NAME HANDLER writes $dir/NAME.Caddyfile with HANDLER (one line)
# as the site's handler, bare or deployed.
caddyfile() {
	local site
	case $site_kind in
	bare)
		site="	$2"
		;;
	deployed)
		site="	log {
		output discard
	}
	encode
	header X-Content-Type-Options nosniff
	handle_path /$1/* {
		$2
	}"
		;;
	esac
	cat >"$dir/$1.Caddyfile" <<CADDYFILE
{
	admin localhost:$admin_port
	persist_config off
	grace_period 1s
	storage file_system $dir/caddy-data
}

http://127.0.0.1:$caddy_port {
	bind 127.0.0.1
$site
}
CADDYFILE
}
site_kind=$site
# comet's defaults otherwise (http_timeout 30s, 100 messages retained per
# channel); enable_status for comet-bench -status. The least hub answers
# /status.json always, and holds reads for 30 s, comet's http_timeout.
caddyfile comet "comet {
		enable_status
	}"
caddyfile least "least_hub"
caddyfile comet-redis "comet {
		enable_status
		store redis redis://127.0.0.1:$redis_port
	}"
caddy_target() { # NAME
	if [[ $site == deployed ]]; then echo "$caddy_base/$1"; else echo "$caddy_base"; fi
}

# Nchan: two workers; the subscriber location serves long-poll and, for
# Accept: text/event-stream, EventSource; its timeout and message buffer are
# comet's http_timeout and messages_per_channel; reuseport spreads the
# connections over both workers (without it, whichever worker wakes first
# takes them, often most of them).
mkdir -p "$dir/nginx"
cat >"$dir/nginx.conf" <<NGINX
load_module $nchan_module;
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events {
	worker_connections 16384;
}
http {
	access_log off;
	client_body_temp_path $dir/nginx/body;
	proxy_temp_path $dir/nginx/proxy;
	fastcgi_temp_path $dir/nginx/fastcgi;
	uwsgi_temp_path $dir/nginx/uwsgi;
	scgi_temp_path $dir/nginx/scgi;
	# nginx closes a kept-alive connection after 1000 requests by default;
	# Caddy has no such limit.
	keepalive_requests 1000000;
	nchan_shared_memory_size 256M;
	nchan_message_buffer_length 100;
	nchan_message_timeout 1h;
	server {
		listen 127.0.0.1:$nchan_port reuseport;
		location = /sub {
			nchan_subscriber longpoll eventsource;
			nchan_channel_id \$arg_id;
			nchan_subscriber_timeout 30s;
		}
		location = /pub {
			nchan_publisher;
			nchan_channel_id \$arg_id;
		}
		location = /nchan_status {
			nchan_stub_status;
		}
	}
}
NGINX

# Centrifugo: its uni_sse, HS256 connection tokens, the server API on the
# same port, and channels (without a namespace) keeping 100 messages for an
# hour and forcing recovery: readers start from a marker on each channel and
# recover after a reconnection, as comet's and Nchan's readers do (see
# dev/cmd/comet-bench/api_centrifugo.go). /health tells the script it is up.
centrifugo_secret=bench-token-secret centrifugo_key=bench-api-key
cat >"$dir/centrifugo.json" <<CENTRIFUGO
{
  "http_server": {"address": "127.0.0.1", "port": "$centrifugo_port"},
  "log": {"level": "warn"},
  "usage_stats": {"disabled": true},
  "health": {"enabled": true},
  "client": {"token": {"hmac_secret_key": "$centrifugo_secret"}},
  "http_api": {"key": "$centrifugo_key"},
  "uni_sse": {"enabled": true},
  "channel": {"without_namespace": {"history_size": 100, "history_ttl": "1h", "force_recovery": true}}
}
CENTRIFUGO

# wait_until URL: until it answers, for at most 10 s.
wait_until() {
	for _ in $(seq 100); do
		curl -sf -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}

# start_caddy NAME, start_nchan and start_centrifugo start a server afresh
# and set server_pid and pids (the processes whose memory and CPU count,
# comma-separated).
start_caddy() {
	if [[ $1 == comet-redis ]]; then
		start_redis
	fi
	rm -rf "$dir/caddy-data"
	# shellcheck disable=SC2086 # CADDY_ENV is a list of NAME=value words
	env $caddy_env XDG_DATA_HOME="$dir" XDG_CONFIG_HOME="$dir" "$caddy" run --config "$dir/$1.Caddyfile" --adapter caddyfile \
		>"$dir/caddy-$1.log" 2>&1 &
	server_pid=$!
	wait_until "$(caddy_target "$1")/status.json"
	pids=$server_pid
	if [[ -n $redis_pid ]]; then
		pids=$server_pid,$redis_pid
	fi
}
# start_redis starts an empty redis-server for comet-redis, without
# persistence, stopped with the Caddy that uses it.
start_redis() {
	rm -rf "$dir/redis"
	mkdir -p "$dir/redis"
	redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$dir/redis" \
		>"$dir/redis/redis.log" 2>&1 &
	redis_pid=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "redis-server did not start on $redis_port" >&2
	return 1
}
start_centrifugo() {
	(cd "$dir" && exec "$centrifugo" --config "$dir/centrifugo.json") >"$dir/centrifugo.log" 2>&1 &
	server_pid=$!
	wait_until "http://127.0.0.1:$centrifugo_port/health"
	pids=$server_pid
	# A go install build calls itself v0.0.0; its module version is the one.
	centrifugo_version=$(go version -m "$centrifugo" 2>/dev/null | awk '$1 == "mod" {print $3}')
	[[ -n $centrifugo_version ]] || centrifugo_version=$("$centrifugo" version | awk '{print $2}')
}
start_nchan() {
	nginx -c "$dir/nginx.conf" -p "$dir/nginx" -e "$dir/nginx/error.log" &
	server_pid=$!
	wait_until "http://127.0.0.1:$nchan_port/nchan_status"
	local workers
	workers=$(pgrep -P "$server_pid" | paste -sd, -)
	pids=$server_pid,$workers
	nchan_version=$(curl -s "http://127.0.0.1:$nchan_port/nchan_status" | awk -F': ' '/^nchan version/ {print $2}')
}
stop_server() {
	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=
	if [[ -n $redis_pid ]]; then
		kill "$redis_pid"
		wait "$redis_pid" 2>/dev/null || true
		redis_pid=
	fi
}

# wait_load waits, at most load_wait seconds, for the 1-minute load average
# to drop under max_load.
wait_load() {
	local waited=0
	while awk -v max="$max_load" '{exit !($1 >= max)}' /proc/loadavg && ((waited < load_wait)); do
		sleep 5
		waited=$((waited + 5))
	done
}

messages=$((rate * seconds))
run_one() { # server round
	local server=$1 round=$2 load
	local flags=()
	wait_load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	case $server in
	comet | least | comet-redis)
		start_caddy "$server"
		flags=(-api comet -target "$(caddy_target "$server")")
		;;
	nchan)
		start_nchan
		flags=(-api nchan -target "http://127.0.0.1:$nchan_port")
		;;
	centrifugo)
		start_centrifugo
		flags=(-api centrifugo -target "http://127.0.0.1:$centrifugo_port"
			-centrifugo-token-secret "$centrifugo_secret" -centrifugo-api-key "$centrifugo_key")
		;;
	esac
	local report=$dir/round$round-$server.json
	# Exit status 2 (something lost) is a result, not a failure of the run.
	"$bench" fanout "${flags[@]}" -transport "$transport" -client "$client" \
		-readers "$readers" -channels "$channels" -rate "$rate" -messages "$messages" \
		-duration $((seconds * 3))s -drain 10s -setup-timeout 2m -status -pid "$pids" -quiet -json \
		"${extra[@]}" >"$report" || [[ $? == 2 ]]
	stop_server
	jq --arg load "$load" '. + {load: $load}' "$report" >"$report.tmp" && mv "$report.tmp" "$report"
}

nchan_version= centrifugo_version=
n=${#run_servers[@]}
for round in $(seq "$rounds"); do
	# Each round starts one server later than the one before.
	for i in $(seq 0 $((n - 1))); do
		run_one "${run_servers[$(((i + round - 1) % n))]}" "$round"
	done
done

names=()
for server in "${run_servers[@]}"; do
	case $server in
	comet) names+=("comet: caddy-comet on the $site Caddyfile") ;;
	comet-redis) names+=("comet-redis: caddy-comet on the $site Caddyfile, Redis store (CPU: Caddy's and Redis's)") ;;
	least) names+=("least: the least hub Caddy allows, on the $site Caddyfile") ;;
	nchan) names+=("nchan: Nchan $nchan_version, 2 workers") ;;
	centrifugo) names+=("centrifugo: Centrifugo $centrifugo_version, uni_sse") ;;
	esac
done
echo "comet-bench fanout -client $client -transport $transport: $readers readers, $channels channels, $rate/s for ${seconds}s; $rounds rounds"
printf '  %s\n' "${names[@]}"

# A row per run. pub/s is the publish rate kept: a server (or machine)
# slower than RATE makes the schedule slip, and -duration (3 x DURATION) may
# cut it short. cpu_us is the server's CPU time (every process: nginx's
# master and workers) from the first publish to the end of the drain, over
# the deliveries.
row='def r1: . * 10 | round / 10;
	[.latency.p50_ms, .latency.p99_ms, .lost, .duplicated, (.achieved_rate | r1), .published,
	 (.cpu.per_delivery_us // 0 | r1),
	 (.memory.per_held_read_kib | r1), ((.memory.end_kib - .memory.before_kib) / .readers | r1), .load]'
printf '\n%-6s %-10s %9s %9s %6s %5s %8s %9s %8s %12s %12s  %s\n' \
	round server p50_ms p99_ms lost dup pub/s published cpu_us held_KiB/rd end_KiB/rd "load (1, 5, 15 min) before"
for round in $(seq "$rounds"); do
	for server in "${run_servers[@]}"; do
		jq -r --arg r "$round" --arg s "$server" "$row"' | [$r, $s] + . | @tsv' "$dir/round$round-$server.json" |
			awk -F'\t' '{printf "%-6s %-10s %9.2f %9.2f %6d %5d %8.1f %9d %8.1f %12.1f %12.1f  %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12}'
	done
done

# Each server's medians over the rounds, and the ratios of its p99 and CPU
# per delivery to the least hub's medians.
medians=$(for server in "${run_servers[@]}"; do
	jq -s -r --arg s "$server" '
		def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		[$s, (map(.latency.p50_ms) | median), (map(.latency.p99_ms) | median), (map(.achieved_rate) | median),
		 (map(.cpu.per_delivery_us // 0) | median), (map(.lost) | add), (map(.duplicated) | add)] | @tsv' \
		"$dir"/round*-"$server".json
done)
printf '\nmedians over %s rounds (lost and dup: totals):\n%-10s %9s %9s %8s %8s %8s %6s %9s %9s\n' \
	"$rounds" server p50_ms p99_ms pub/s cpu_us lost dup p99/least cpu/least
awk -F'\t' '
	{ row[NR] = $0; if ($1 == "least") { lp99 = $3; lcpu = $5 } }
	END {
		for (i = 1; i <= NR; i++) {
			split(row[i], f, "\t")
			p = lp99 > 0 ? sprintf("%9.2f", f[3] / lp99) : sprintf("%9s", "-")
			c = lcpu > 0 ? sprintf("%9.2f", f[5] / lcpu) : sprintf("%9s", "-")
			printf "%-10s %9.2f %9.2f %8.1f %8.1f %8d %6d %s %s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], p, c
		}
	}' <<<"$medians"
if [[ -n ${OUT:-} ]]; then
	echo "reports, configs and logs in $dir"
fi
