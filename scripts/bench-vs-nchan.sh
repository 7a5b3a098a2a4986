#!/usr/bin/env bash
# Side by side with Nchan (docs/performance.md): the same comet-bench fan-out,
# same client and flags, against caddy-comet and against nginx with Nchan, in
# one run. Each round runs both servers, each started afresh (for its memory
# figures), the first of the two alternating from round to round; before each
# run it waits (a bounded time) for the machine's load to drop and records it.
# It prints every run and the ratios caddy-comet/Nchan of each round, all
# from the same run of this script.
#
#   scripts/bench-vs-nchan.sh [-- extra comet-bench flags]
#
# Settings, from the environment (defaults in brackets):
#   ROUNDS [3]           rounds of both servers
#   CLIENT [net/http]    comet-bench -client, the same for both: net/http or lean
#   TRANSPORT [longpoll] longpoll or sse (comet's /channels/IDS.sse must exist)
#   SITE [bare]          caddy-comet's Caddyfile: bare (comet alone) or deployed
#                        (log, encode, header and handle_path around comet)
#   READERS [5000] CHANNELS [10] RATE [20] DURATION [10]
#                        the load: RATE*DURATION messages at RATE per second
#   MAX_LOAD [1.0] LOAD_WAIT [120]
#                        wait up to LOAD_WAIT seconds for a 1-minute load
#                        average under MAX_LOAD before each run
#   CADDY, COMET_BENCH   binaries to use (default: built here, without -race)
#   CADDY_ENV            NAME=value words for caddy-comet's environment only, e.g.
#                        "GODEBUG=adaptivestackstart=0 GOGC=200" (default: none)
#   NCHAN_MODULE         [/usr/lib/nginx/modules/ngx_nchan_module.so]
#   OUT                  a directory to keep the configs, logs and JSON
#                        reports in (default: a temporary one, removed)
#
# Everything listens on loopback (ports 4491 to 4493); the load is bounded by
# READERS, the message count and comet-bench's timeouts. Needs nginx with
# Nchan (Debian: nginx, libnginx-mod-nchan), Go and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-3}
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

comet_port=4491 nchan_port=4492 admin_port=4493
if [[ -n ${OUT:-} ]]; then
	dir=$OUT
	mkdir -p "$dir"
else
	dir=$(mktemp -d)
fi
server_pid=
cleanup() {
	if [[ -n $server_pid ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
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
	caddy=$dir/caddy
	go build -o "$caddy" ./cmd/caddy
fi
if [[ -z $bench ]]; then
	# The load tool is in the development module, dev/; -C builds it from
	# there, so the output path must not be relative.
	bench=$(cd "$dir" && pwd)/comet-bench
	go build -C dev -o "$bench" ./cmd/comet-bench
fi

# caddy-comet: comet's defaults (http_timeout 30s, 100 messages retained per
# channel), enable_status for comet-bench -status.
comet_base=http://127.0.0.1:$comet_port
case $site in
bare)
	comet_target=$comet_base
	comet_site="	comet {
		enable_status
	}"
	;;
deployed)
	comet_target=$comet_base/comet
	comet_site="	log {
		output discard
	}
	encode
	header X-Content-Type-Options nosniff
	handle_path /comet/* {
		comet {
			enable_status
		}
	}"
	;;
esac
cat >"$dir/Caddyfile" <<CADDYFILE
{
	admin localhost:$admin_port
	persist_config off
	grace_period 1s
	storage file_system $dir/caddy-data
}

http://127.0.0.1:$comet_port {
	bind 127.0.0.1
$comet_site
}
CADDYFILE

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

# wait_until URL: until it answers, for at most 10 s.
wait_until() {
	for _ in $(seq 100); do
		curl -sf -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}

# start_comet and start_nchan start a server afresh and set server_pid and
# pids (the processes whose memory counts, comma-separated).
start_comet() {
	rm -rf "$dir/caddy-data"
	# shellcheck disable=SC2086 # CADDY_ENV is a list of NAME=value words
	env $caddy_env XDG_DATA_HOME="$dir" XDG_CONFIG_HOME="$dir" "$caddy" run --config "$dir/Caddyfile" --adapter caddyfile \
		>"$dir/caddy.log" 2>&1 &
	server_pid=$!
	wait_until "$comet_target/status.json"
	pids=$server_pid
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
	local server=$1 round=$2 target api load
	wait_load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	if [[ $server == comet ]]; then
		start_comet
		target=$comet_target api=comet
	else
		start_nchan
		target=http://127.0.0.1:$nchan_port api=nchan
	fi
	local report=$dir/round$round-$server.json
	# Exit status 2 (something lost) is a result, not a failure of the run.
	"$bench" fanout -api "$api" -target "$target" -transport "$transport" -client "$client" \
		-readers "$readers" -channels "$channels" -rate "$rate" -messages "$messages" \
		-duration $((seconds * 3))s -drain 10s -setup-timeout 2m -status -pid "$pids" -quiet -json \
		"${extra[@]}" >"$report" || [[ $? == 2 ]]
	stop_server
	jq --arg load "$load" '. + {load: $load}' "$report" >"$report.tmp" && mv "$report.tmp" "$report"
}

nchan_version=
for round in $(seq "$rounds"); do
	if ((round % 2)); then order=(comet nchan); else order=(nchan comet); fi
	for server in "${order[@]}"; do
		run_one "$server" "$round"
	done
done

echo "comet-bench fanout -client $client -transport $transport: $readers readers, $channels channels, $rate/s for ${seconds}s;"
echo "caddy-comet on the $site Caddyfile, Nchan $nchan_version with 2 workers; $rounds rounds"

# A row per run, then the ratios of each round and their medians.
row='def kib: . * 10 | round / 10;
	[.latency.p50_ms, .latency.p99_ms, .lost, .duplicated,
	 (.memory.per_held_read_kib | kib), ((.memory.end_kib - .memory.before_kib) / .readers | kib),
	 (.achieved_rate | kib), .published, .load]'
# published/s is the rate kept: a server (or machine) slower than RATE makes
# the schedule slip, and -duration (3 x DURATION) may cut it short.
printf '\n%-6s %-6s %9s %9s %6s %5s %12s %12s %8s %9s  %s\n' round server p50_ms p99_ms lost dup held_KiB/rd end_KiB/rd pub/s published "load (1, 5, 15 min) before"
for round in $(seq "$rounds"); do
	for server in comet nchan; do
		jq -r --arg r "$round" --arg s "$server" "$row"' | [$r, $s] + . | @tsv' "$dir/round$round-$server.json" |
			awk -F'\t' '{printf "%-6s %-6s %9.2f %9.2f %6d %5d %12.1f %12.1f %8.1f %9d  %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}'
	done
done

ratios=$(for round in $(seq "$rounds"); do
	jq -n -r --slurpfile c "$dir/round$round-comet.json" --slurpfile n "$dir/round$round-nchan.json" --arg r "$round" '
		def ratio(a; b): if b > 0 then a / b else null end;
		def endkib(x): (x.memory.end_kib - x.memory.before_kib) / x.readers;
		[$r, ratio($c[0].latency.p50_ms; $n[0].latency.p50_ms), ratio($c[0].latency.p99_ms; $n[0].latency.p99_ms),
		 "\($c[0].lost) vs \($n[0].lost)",
		 ratio($c[0].memory.per_held_read_kib; $n[0].memory.per_held_read_kib), ratio(endkib($c[0]); endkib($n[0]))] | @tsv'
done)
printf '\ncaddy-comet/Nchan, same round:\n%-6s %7s %7s %14s %12s %12s\n' round p50 p99 lost held_KiB/rd end_KiB/rd
awk -F'\t' '{printf "%-6s %7.2f %7.2f %14s %12.2f %12.2f\n", $1, $2, $3, $4, $5, $6}' <<<"$ratios"
awk -F'\t' '
	{ for (i = 2; i <= 6; i++) if (i != 4) v[i, NR] = $i }
	END {
		n = NR
		printf "%-6s", "median"
		for (i = 2; i <= 6; i++) {
			if (i == 4) { printf " %14s", ""; continue }
			for (j = 1; j <= n; j++) a[j] = v[i, j]
			for (j = 1; j <= n; j++) for (k = j + 1; k <= n; k++) if (a[k] < a[j]) { t = a[j]; a[j] = a[k]; a[k] = t }
			m = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			printf i == 2 || i == 3 ? " %7.2f" : " %12.2f", m
		}
		printf "\n"
	}' <<<"$ratios"
if [[ -n ${OUT:-} ]]; then
	echo "reports, configs and logs in $dir"
fi
