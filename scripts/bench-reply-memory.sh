#!/usr/bin/env bash
# Measures the server's RSS while readers read full channels at once: 64
# channels of 100 retained messages of 60 KiB (384 MB), and N readers each
# reading all 64 channels from since=0 to the end, paging with since=last_id
# (one reply each on a server without paging). Prints RSS at rest and the
# peak while the readers read, sampled every 50 ms from /proc.
#
#   scripts/bench-reply-memory.sh CADDY_BINARY [readers]   # default 8
#
# Loopback only, on port 4290; the server is started and stopped here.
set -euo pipefail
caddy=$1
readers=${2:-8}
port=4290
base=http://127.0.0.1:$port
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

cat >"$dir/Caddyfile" <<CADDYFILE
{
	admin off
	persist_config off
	storage file_system $dir/data
}
http://127.0.0.1:$port {
	bind 127.0.0.1
	comet {
		# the readers' last request, with nothing left, returns soon
		http_timeout 1s
		inactive_channel_timeout 0
	}
}
CADDYFILE
XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir "$caddy" run --config "$dir/Caddyfile" >"$dir/log" 2>&1 &
pid=$!
until curl -s -o /dev/null "$base/status.json"; do sleep 0.1; done

head -c 61440 /dev/zero | tr '\0' a | sed 's/^/content=/' >"$dir/body"
channels=()
for c in $(seq -w 1 64); do
	channels+=("ch$c")
	curl -s -o /dev/null -d "channel_id=ch$c" "$base/channels.json"
done
for c in "${channels[@]}"; do
	for _ in $(seq 100); do echo "$c"; done
done | xargs -P 4 -I{} curl -s -o /dev/null --data-binary @"$dir/body" "$base/channels/{}.json"

rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
sleep 2
rest=$(rss)
list=$(IFS='|'; echo "${channels[*]}" | sed 's/|/%7C/g')

read_all() {
	local since=0 bytes=0 pages=0 page=$dir/page.$1
	while :; do
		curl -s -o "$page" "$base/channels/$list.json?since=$since"
		bytes=$((bytes + $(stat -c %s "$page")))
		pages=$((pages + 1))
		grep -q '"content"' "$page" || break
		since=$(grep -o '"last_id":[0-9]*' "$page" | cut -d: -f2)
	done
	echo "$pages $bytes" >"$dir/reader.$1"
}
peak=$rest
reader_pids=()
for i in $(seq "$readers"); do
	read_all "$i" &
	reader_pids+=($!)
done
running() { for p in "${reader_pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
	now=$(rss)
	((now > peak)) && peak=$now
	sleep 0.05
done
echo "readers: $readers; replies and bytes per reader: $(cat "$dir"/reader.* | sort -u | tr '\n' ' ')"
echo "RSS at rest: $((rest / 1024)) MiB; peak while reading: $((peak / 1024)) MiB; growth: $(((peak - rest) / 1024)) MiB"
