#!/usr/bin/env bash
# Junction vs Mosquitto vs rumqttd, measured in the same run on the same machine with the
# same load tool (`junction bench pubsub|conn`).
#
#   scripts/bench.sh                      # everything: about 6 minutes on 2 cores, plus the build
#   BENCH_BROKERS="junction mosquitto" scripts/bench.sh
#   BENCH_SCENARIOS="p2p-q0 idle-10k" scripts/bench.sh
#   BENCH_DURATION=5 scripts/bench.sh     # shorter timed scenarios
#   BENCH_BROKERS=junction BENCH_SCENARIOS="gw-mqtt gw-stomp gw-mqttsn gw-coap" scripts/bench.sh
#                                         # Junction's gateways: MQTT vs STOMP vs MQTT-SN
#                                         # vs CoAP (p2p; gwin-mqtt gwin-stomp gwin-mqttsn:
#                                         # fan-in; gwout-mqtt gwout-coap: fan-out from an
#                                         # MQTT publisher to MQTT subscribers / CoAP
#                                         # observers)
#   BENCH_BROKERS="junction floor" BENCH_SCENARIOS=p2p-q0 scripts/bench.sh
#                                         # `floor` is scripts/bench-floor.c: one read and
#                                         # one write per message and nothing else, what the
#                                         # kernel charges any broker (built with gcc)
#   JUNCTION_BASE_BIN=/path/to/older/junction BENCH_BROKERS="junction_base junction mosquitto" \
#     BENCH_SCENARIOS="p2p-q0 fanout-q0" scripts/bench.sh
#                                         # before and after a change, in one run: the
#                                         # `junction` binary of another revision
#   BENCH_BROKERS="junction junction_noacl junction_acl1k" BENCH_SCENARIOS="p2p-q0 gw-mqtt" \
#     scripts/bench.sh   (authorization: the default acl.conf, none, 1,000 rules)
#   BENCH_BROKERS="junction junction_ack mosquitto mosquitto_persist" \
#     BENCH_SCENARIOS="mem-q1 persist-q1" scripts/bench.sh
#                                         # QoS 1 to persistent sessions: both durability
#                                         # modes, in memory, and Mosquitto with persistence
#
# Every broker listens on loopback on its own port and is restarted for each scenario, so
# each scenario starts from an empty broker. The load tool reads the broker's CPU time
# (/proc/<pid>/stat utime+stime ÷ CLK_TCK) at the start and the end of the measured phase
# (first publish → last delivery) and its VmRSS around the idle-connection hold.
# Results: a Markdown table on stdout and in target/bench/results.md; raw JSON and logs
# in target/bench/. The binary is built into and run from $CARGO_TARGET_DIR (default
# target/).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/target/bench"
WORK=$(mktemp -d /tmp/junction-bench.XXXXXX)
BROKERS=${BENCH_BROKERS:-"junction junction_1t mosquitto rumqttd floor"}
SCENARIOS=${BENCH_SCENARIOS:-"p2p-q0 p2p-q1 p2p-max-q0 p2p-max-q1 fanout-q0 fanout-max-q0 fanin-q0 fanin-q1 fanin-max-q0 fanin-max-q1 idle-10k"}
DURATION=${BENCH_DURATION:-10}
# Cap of the unthrottled scenarios: they stop after BENCH_MAX_MESSAGES or this many seconds.
MAX_DURATION=${BENCH_MAX_DURATION:-20}
MAX_MESSAGES=${BENCH_MAX_MESSAGES:-2000000}
IDLE_CONNECTIONS=${BENCH_IDLE_CONNECTIONS:-10000}
CLK_TCK=$(getconf CLK_TCK)
JUNCTION="${CARGO_TARGET_DIR:-$ROOT/target}/release/junction"
PERSIST_MESSAGES=${BENCH_PERSIST_MESSAGES:-200000}
declare -A PORT=([junction]=18831 [mosquitto]=18832 [rumqttd]=18833 [junction_1t]=18834
    [junction_ack]=18837 [mosquitto_persist]=18838 [floor]=18839 [junction_base]=18840
    [junction_noacl]=18843 [junction_acl1k]=18844)
FLOOR="$ROOT/target/bench-floor"
# Junction's gateway listeners (gateway.stomp.listeners.tcp.default,
# gateway.mqttsn.listeners.udp.default and gateway.coap.listeners.udp.default), moved off
# their default ports.
STOMP_PORT=18835
MQTTSN_PORT=18836
COAP_PORT=18841
LWM2M_PORT=18842

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.log
BROKER_PID=""
BROKER_LOG=/dev/null
NOTES=()

log() { echo "bench: $*" >&2; }

stop_broker() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    BROKER_PID=""
}
cleanup() {
    stop_broker
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 connections need 10,000 descriptors in the broker and in the load tool.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < IDLE_CONNECTIONS + 100)); then
    NOTES+=("open files limit is $(ulimit -n): the idle scenario may fail to open $IDLE_CONNECTIONS connections")
fi

# ---------------------------------------------------------------- tools
log "building junction (release)"
(cd "$ROOT" && cargo build --release -p junction) >&2
# The revision measured, taken when it is built (read-only git commands).
JUNCTION_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo "no git")
if ! (cd "$ROOT" && git --no-optional-locks diff --quiet HEAD -- 'crates/*/src' 'crates/*/Cargo.toml' Cargo.toml Cargo.lock) 2>/dev/null; then
    JUNCTION_REV="$JUNCTION_REV + uncommitted changes"
fi

if ! command -v mosquitto >/dev/null; then
    log "installing mosquitto"
    (apt-get update && apt-get install -y mosquitto) >&2 || true
fi
if [[ " $BROKERS " == *" mosquitto "* ]] && ! command -v mosquitto >/dev/null; then
    NOTES+=("mosquitto could not be installed: skipped")
    BROKERS=${BROKERS/mosquitto/}
fi

if [[ " $BROKERS " == *" floor "* ]] && ! gcc -O2 -o "$FLOOR" "$ROOT/scripts/bench-floor.c" >&2; then
    NOTES+=("the floor (scripts/bench-floor.c) did not build with gcc: skipped")
    BROKERS=${BROKERS/floor/}
fi

export PATH="$HOME/.cargo/bin:$PATH"
if [[ " $BROKERS " == *" rumqttd "* ]] && ! command -v rumqttd >/dev/null; then
    log "installing rumqttd (cargo install rumqttd --locked)"
    # rumqttd 0.20's lock file pins metrics 0.22.1, which newer compilers reject; without
    # --locked cargo picks the fixed patch release.
    cargo install rumqttd --locked >&2 || cargo install rumqttd >&2 || true
    if ! command -v rumqttd >/dev/null; then
        NOTES+=("rumqttd could not be installed (cargo install rumqttd failed): skipped")
        BROKERS=${BROKERS/rumqttd/}
    fi
fi

# ---------------------------------------------------------------- brokers
wait_port() { # port seconds
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# Settings chosen so that no broker drops messages in these scenarios: queues of 100,000
# messages per client, 32 QoS 1/2 messages in flight per client (Junction's and EMQX's
# default; Mosquitto's default is 20), no persistence, errors-only logging.
start_junction() {
    local port=$1
    # A fresh data file for every run: no session or retained message carries over.
    rm -rf "$WORK/junction-data"
    mkdir -p "$WORK/junction-data"
    RUST_LOG=warn \
        JUNCTION_NODE__DATA_DIR="$WORK/junction-data" \
        JUNCTION_LISTENERS__TCP__DEFAULT__BIND="127.0.0.1:$port" \
        JUNCTION_LISTENERS__WS__DEFAULT__ENABLE=false \
        JUNCTION_SYS_TOPICS__SYS_MSG_INTERVAL=disabled \
        JUNCTION_MQTT__MAX_MQUEUE_LEN=100000 \
        JUNCTION_MQTT__MAX_INFLIGHT=32 \
        JUNCTION_GATEWAY__STOMP__LISTENERS__TCP__DEFAULT__BIND="127.0.0.1:$STOMP_PORT" \
        JUNCTION_GATEWAY__MQTTSN__LISTENERS__UDP__DEFAULT__BIND="127.0.0.1:$MQTTSN_PORT" \
        JUNCTION_GATEWAY__COAP__LISTENERS__UDP__DEFAULT__BIND="127.0.0.1:$COAP_PORT" \
        JUNCTION_GATEWAY__LWM2M__LISTENERS__UDP__DEFAULT__BIND="127.0.0.1:$LWM2M_PORT" \
        JUNCTION_GATEWAY__LWM2M__LISTENERS__UDP__DEFAULT__MAX_CONNECTIONS=100000 \
        JUNCTION_GATEWAY__LWM2M__LISTENERS__UDP__DEFAULT__MAX_CONN_RATE=1000000 \
        "${JUNCTION_RUN_BIN:-$JUNCTION}" start >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    local deadline=$((SECONDS + 20))
    until grep -q "junction: started" "$BROKER_LOG" 2>/dev/null; do
        kill -0 "$BROKER_PID" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# The same binary on one worker thread (node.worker_threads = 1), as Mosquitto runs: the
# fairest per-CPU comparison on a 2-core machine that also runs the load tool.
start_junction_1t() {
    JUNCTION_NODE__WORKER_THREADS=1 start_junction "$@"
}

# Another revision's binary (JUNCTION_BASE_BIN), for a before/after comparison in one run.
start_junction_base() {
    [[ -x "${JUNCTION_BASE_BIN:-}" ]] || return 1
    JUNCTION_RUN_BIN="$JUNCTION_BASE_BIN" start_junction "$@"
}

# Junction committing before every PUBACK/PUBREC (durable_sessions.commit_before_ack);
# plain `junction` commits in batches every 10 ms (the default).
start_junction_ack() {
    JUNCTION_DURABLE_SESSIONS__COMMIT_BEFORE_ACK=true start_junction "$@"
}

# Junction without authorization sources (`authorization.sources = []`): plain
# `junction` runs the default acl.conf on every publish and subscribe.
start_junction_noacl() {
    JUNCTION_AUTHORIZATION__SOURCES='[]' start_junction "$@"
}

# Junction with an acl.conf of 1,000 rules (per user name, none matching the load's
# clients) and a last `{allow, all}`: every publish is checked against all of them.
start_junction_acl1k() {
    local acl="$WORK/acl1k.conf"
    for i in $(seq 1 1000); do
        echo "{allow, {username, \"user-$i\"}, publish, [\"devices/$i/#\"]}."
    done >"$acl"
    echo "{allow, all}." >>"$acl"
    JUNCTION_AUTHORIZATION__SOURCES="[{type = file, path = \"$acl\"}]" start_junction "$@"
}

# Mosquitto with its persistence on: it keeps everything in memory and writes the whole
# database to mosquitto.db every autosave_interval seconds (here 1) and at exit; nothing
# is written per message.
start_mosquitto_persist() {
    MOSQUITTO_PERSISTENCE=true start_mosquitto "$@"
}

start_mosquitto() {
    local port=$1 persistence=${MOSQUITTO_PERSISTENCE:-false}
    rm -rf "$WORK/mosquitto-data"
    mkdir -p "$WORK/mosquitto-data"
    cat >"$WORK/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence $persistence
persistence_location $WORK/mosquitto-data/
autosave_interval 1
max_connections -1
max_queued_messages 100000
max_queued_bytes 0
max_inflight_messages 32
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
EOF
    mosquitto -c "$WORK/mosquitto.conf" >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    wait_port "$port" 10
}

# Not a broker: the least one can do per message (scripts/bench-floor.c). Its figures are
# the kernel's cost of one read and one write per message on loopback.
start_floor() {
    local port=$1
    "$FLOOR" "$port" >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    wait_port "$port" 10
}

start_rumqttd() {
    local port=$1
    # rumqttd 0.20 (rumqttd/rumqttd.toml): one v4 (MQTT 3.1.1) listener. Segments of
    # 100 MB × 10 per filter keep every message in these runs; a client may have 32
    # messages in flight and 200 outgoing packets buffered per router iteration.
    cat >"$WORK/rumqttd.toml" <<EOF
id = 0

[router]
id = 0
max_connections = 20010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$port"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 32
    dynamic_filters = true
EOF
    RUST_LOG=error rumqttd -c "$WORK/rumqttd.toml" >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    wait_port "$port" 10
}

# ---------------------------------------------------------------- scenarios
# Prints the `junction bench` arguments of a scenario on a broker.
scenario_args() { # scenario broker
    case $1 in
    p2p-q0 | p2p-q1)
        echo "pubsub --pubs 100 --subs 100 -t bench/p2p/%i -s 64 -q ${1: -1} --rate 10000 --duration $DURATION" ;;
    p2p-max-q0 | p2p-max-q1)
        echo "pubsub --pubs 100 --subs 100 -t bench/p2p/%i -s 64 -q ${1: -1} -I 0 -L $MAX_MESSAGES --duration $MAX_DURATION" ;;
    fanout-q0)
        echo "pubsub --pubs 1 --subs 1000 -t bench/fanout -s 64 -q 0 --rate 50 --duration $DURATION" ;;
    # The publisher sends MAX_MESSAGES / 1000 messages as fast as it can: MAX_MESSAGES
    # deliveries.
    fanout-max-q0)
        echo "pubsub --pubs 1 --subs 1000 -t bench/fanout -s 64 -q 0 -I 0 -L $((MAX_MESSAGES / 1000)) --duration $MAX_DURATION" ;;
    fanin-q0 | fanin-q1)
        echo "pubsub --pubs 1000 --subs 1 -t bench/fanin/%i --sub-topic bench/fanin/+ -s 64 -q ${1: -1} --rate 10000 --duration $DURATION" ;;
    fanin-max-q0)
        echo "pubsub --pubs 1000 --subs 1 -t bench/fanin/%i --sub-topic bench/fanin/+ -s 64 -q 0 -I 0 -L $((MAX_MESSAGES / 2)) --duration $MAX_DURATION" ;;
    # One QoS 1 subscriber takes at most 32 messages per round trip while 1,000 publishers
    # are acknowledged at once: the backlog builds in the broker. 100,000 messages fit the
    # subscriber's queue (max_queued_messages / mqtt.max_mqueue_len), so none is dropped;
    # more would measure the queue limit, not the broker.
    fanin-max-q1)
        echo "pubsub --pubs 1000 --subs 1 -t bench/fanin/%i --sub-topic bench/fanin/+ -s 64 -q 1 -I 0 -L 100000 --duration $MAX_DURATION" ;;
    idle-10k)
        echo "conn -c $IDLE_CONNECTIONS --duration $DURATION" ;;
    # QoS 1 at full speed to 100 MQTT 5 subscribers, with clean sessions (mem-q1) and with
    # persistent ones (persist-q1: Session Expiry Interval 1 h, so every delivery and
    # acknowledgement changes state the broker persists).
    mem-q1)
        echo "pubsub -V 5 --pubs 100 --subs 100 -t bench/p2p/%i -s 64 -q 1 -I 0 -L $PERSIST_MESSAGES --duration $MAX_DURATION" ;;
    persist-q1)
        echo "pubsub -V 5 --pubs 100 --subs 100 -t bench/p2p/%i -s 64 -q 1 -I 0 -L $PERSIST_MESSAGES --duration $MAX_DURATION --sub-session-expiry 3600" ;;
    # Junction only: the p2p-q0 load through the MQTT listener, the STOMP gateway, the
    # MQTT-SN gateway and the CoAP gateway (UDP: one socket per client; CoAP publishers
    # send NON POST /ps/{topic}, subscribers observe with one CON GET each).
    gw-mqtt | gw-stomp | gw-mqttsn | gw-coap)
        echo "pubsub --proto ${1#gw-} --pubs 100 --subs 100 -t bench/gw/%i -s 64 -q 0 --rate 10000 --duration $DURATION" ;;
    # Junction only: fan-in through each protocol, 200 publishers → 1 wildcard subscriber
    # (MQTT-SN: the gateway REGISTERs each of the 200 topics with the subscriber).
    gwin-mqtt | gwin-stomp | gwin-mqttsn)
        echo "pubsub --proto ${1#gwin-} --pubs 200 --subs 1 -t bench/gwin/%i --sub-topic bench/gwin/+ -s 64 -q 0 --rate 10000 --duration $DURATION" ;;
    # Junction only: fan-out, 1 MQTT publisher (on the broker's MQTT port) → 1,000 MQTT
    # subscribers or 1,000 CoAP observers (one datagram per delivery, under the CoAP
    # listener's default max_connections of 1024). 10 msgs/s published: 10,000
    # deliveries/s, as in the p2p gateway scenarios.
    gwout-mqtt | gwout-coap)
        echo "pubsub --proto ${1#gwout-} --pub-proto mqtt --pub-port ${PORT[$2]} --pubs 1 --subs 1000 -t bench/gwout -s 64 -q 0 --rate 10 --duration $DURATION" ;;
    # Junction only: 500,000 MQTT-SN CONNECTs from 5,000 spoofed loopback addresses at the
    # UDP listener, whose peer table (max_connections 1024, max_conn_rate 1000/s) discards
    # nearly all of them: what a discarded datagram costs the broker.
    flood-mqttsn)
        echo "flood -L 500000 --sources 5000 --duration $MAX_DURATION" ;;
    # Junction only: IDLE_CONNECTIONS LwM2M devices, each its own loopback address,
    # REGISTER with 200 in flight; RSS read 2 s after the last one (compare idle-10k).
    reg-lwm2m)
        echo "lwm2m -c $IDLE_CONNECTIONS --window 200 --hold 2" ;;
    *) return 1 ;;
    esac
}

# The port a scenario's load tool connects to on `broker`.
scenario_port() { # broker scenario
    case $2 in
    gw-stomp | gwin-stomp) echo "$STOMP_PORT" ;;
    gw-mqttsn | gwin-mqttsn | flood-mqttsn) echo "$MQTTSN_PORT" ;;
    gw-coap | gwout-coap) echo "$COAP_PORT" ;;
    reg-lwm2m) echo "$LWM2M_PORT" ;;
    *) echo "${PORT[$1]}" ;;
    esac
}

run_scenario() { # broker scenario
    local broker=$1 scenario=$2 port=${PORT[$1]} args
    args=$(scenario_args "$scenario" "$broker") || { log "unknown scenario $scenario"; return 1; }
    if [[ ($scenario == gw* || $scenario == flood* || $scenario == reg-*) && $broker != junction* ]]; then
        return 0 # the gateway scenarios are Junction's own
    fi
    if [[ $broker == floor && $scenario != p2p-* && $scenario != fan* ]]; then
        return 0 # the floor speaks MQTT 3.1.1 pub/sub and nothing else
    fi
    BROKER_LOG="$OUT/$broker.$scenario.log"
    if ! "start_$broker" "$port"; then
        NOTES+=("$broker did not start for $scenario (see target/bench/$broker.$scenario.log)")
        stop_broker
        return 0
    fi
    log "$broker: $scenario"
    local json="$OUT/$broker.$scenario.json"
    # shellcheck disable=SC2086 # args is a word list on purpose
    if ! "$JUNCTION" bench $args -p "$(scenario_port "$broker" "$scenario")" --name "$scenario" \
        --broker-pid "$BROKER_PID" --clk-tck "$CLK_TCK" \
        >"$json" 2> >(tee -a "$OUT/bench-client.log" | sed "s/^/  [$broker] /" >&2); then
        NOTES+=("$broker $scenario: the load tool failed (see target/bench/bench-client.log)")
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        NOTES+=("$broker exited during $scenario (see target/bench/$broker.$scenario.log)")
    fi
    stop_broker
}

for scenario in $SCENARIOS; do
    for broker in $BROKERS; do
        run_scenario "$broker" "$scenario"
    done
done

# ---------------------------------------------------------------- report
versions() {
    echo "- junction: $("$JUNCTION" --version 2>/dev/null || echo unknown) ($JUNCTION_REV)"
    if command -v mosquitto >/dev/null; then
        echo "- mosquitto: $(mosquitto -h 2>/dev/null | head -1)"
    fi
    if command -v rumqttd >/dev/null; then
        echo "- rumqttd: $(rumqttd --version 2>/dev/null || echo installed)"
    fi
}

{
    echo "# Junction benchmark results"
    echo
    echo "- command: \`scripts/bench.sh\` (BENCH_DURATION=$DURATION, BENCH_MAX_MESSAGES=$MAX_MESSAGES, BENCH_MAX_DURATION=$MAX_DURATION)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -m | awk '/^Mem:/{print $2}') MiB RAM, Linux $(uname -r)"
    versions
    for note in "${NOTES[@]+"${NOTES[@]}"}"; do echo "- note: $note"; done
    echo
    python3 - "$OUT" "$BROKERS" "$SCENARIOS" <<'PY'
import json, os, sys

out, brokers, scenarios = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
titles = {
    "p2p-q0": "p2p: 100 publisher/subscriber pairs, QoS 0, 64 B, 10,000 msgs/s total",
    "p2p-q1": "p2p: 100 publisher/subscriber pairs, QoS 1, 64 B, 10,000 msgs/s total",
    "p2p-max-q0": "p2p max throughput: 100 pairs, QoS 0, 64 B, unthrottled, fixed count",
    "p2p-max-q1": "p2p max throughput: 100 pairs, QoS 1, 64 B, unthrottled, fixed count",
    "fanout-q0": "fan-out: 1 publisher → 1,000 subscribers, QoS 0, 50 msgs/s published",
    "fanout-max-q0": "fan-out max throughput: 1 publisher → 1,000 subscribers, QoS 0, 64 B, unthrottled, fixed count",
    "fanin-max-q0": "fan-in max throughput: 1,000 publishers → 1 subscriber, QoS 0, 64 B, unthrottled, fixed count",
    "fanin-max-q1": "fan-in max throughput: 1,000 publishers → 1 subscriber, QoS 1, 64 B, unthrottled, fixed count",
    "fanin-q0": "fan-in: 1,000 publishers → 1 subscriber, QoS 0, 10,000 msgs/s total",
    "fanin-q1": "fan-in: 1,000 publishers → 1 subscriber, QoS 1, 10,000 msgs/s total",
    "idle-10k": "10,000 idle connections",
    "mem-q1": "QoS 1 max throughput, clean sessions: 100 MQTT 5 pairs, 64 B, unthrottled, fixed count",
    "persist-q1": "QoS 1 max throughput to persistent sessions: 100 MQTT 5 pairs (subscribers with Session Expiry Interval 1 h), 64 B, unthrottled, fixed count",
}
gateways = [s for s in scenarios if s.startswith("gw-")]
gateways_in = [s for s in scenarios if s.startswith("gwin-")]
gateways_out = [s for s in scenarios if s.startswith("gwout-")]
floods = [s for s in scenarios if s.startswith("flood")]
registrations = [s for s in scenarios if s.startswith("reg-")]
scenarios = [s for s in scenarios if not s.startswith(("gw", "flood", "reg-"))]

def load(broker, scenario):
    try:
        with open(os.path.join(out, f"{broker}.{scenario}.json")) as f:
            lines = [l for l in f.read().splitlines() if l.strip().startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None

def num(v, fmt="{:,.0f}"):
    return "–" if v is None else fmt.format(v)

def ratio(a, b):
    return "–" if not a or not b else f"{a / b:.2f}×"

for s in scenarios:
    print(f"## {titles.get(s, s)}\n")
    rows = {b: load(b, s) for b in brokers}
    if rows.get("floor") is None:
        rows.pop("floor", None)  # the floor runs the pub/sub scenarios only
    base = rows.get("mosquitto_persist" if s == "persist-q1" and "mosquitto_persist" in rows else "mosquitto") or {}
    if s.startswith("idle"):
        print("| broker | connected | failed | connects/s | RSS before (KiB) | RSS after (KiB) | KiB per connection | ÷ Mosquitto |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for b, r in rows.items():
            if r is None:
                print(f"| {b} | no result | | | | | | |")
                continue
            print(f"| {b} | {num(r.get('connected'))} | {num(r.get('connect_failures'))} | {num(r.get('connects_per_sec'))} "
                  f"| {num(r.get('rss_before_kib'))} | {num(r.get('rss_after_kib'))} | {num(r.get('rss_kib_per_conn'), '{:.2f}')} "
                  f"| {ratio(r.get('rss_kib_per_conn'), base.get('rss_kib_per_conn'))} |")
    else:
        print("| broker | delivered msgs/s | p50 ms | p99 ms | max ms | sent | delivered | lost | dup | msgs per read | broker CPU s (user / sys) | msgs per broker CPU-s | ÷ Mosquitto (msgs/CPU-s) | load tool CPU s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b, r in rows.items():
            if r is None:
                print(f"| {b} | no result | | | | | | | | | | | | |")
                continue
            ms = lambda k: None if r.get(k) is None else r[k] / 1000
            cpu = num(r.get('broker_cpu_s'), '{:.2f}')
            if r.get('broker_user_s') is not None:
                cpu += f" ({r['broker_user_s']:.2f} / {r['broker_sys_s']:.2f})"
            print(f"| {b} | {num(r.get('msgs_per_sec'))} | {num(ms('p50_us'), '{:.2f}')} | {num(ms('p99_us'), '{:.2f}')} "
                  f"| {num(ms('max_us'), '{:.1f}')} | {num(r.get('sent'))} | {num(r.get('unique'))} | {num(r.get('lost'))} "
                  f"| {num(r.get('dup'))} | {num(r.get('msgs_per_read'), '{:.1f}')} | {cpu} | {num(r.get('msgs_per_broker_cpu_s'))} "
                  f"| {ratio(r.get('msgs_per_broker_cpu_s'), base.get('msgs_per_broker_cpu_s'))} | {num(r.get('client_cpu_s'), '{:.2f}')} |")
    errors = [(b, r.get("error")) for b, r in rows.items() if r and r.get("error")]
    for b, e in errors:
        print(f"\n{b}: {e}")
    print()

for gateways, first, title in [
    (gateways, "gw-mqtt", "p2p through each protocol (100 pairs, QoS 0, 64 B, 10,000 msgs/s total)"),
    (gateways_in, "gwin-mqtt", "fan-in through each protocol (200 publishers → 1 wildcard subscriber, QoS 0, 64 B, 10,000 msgs/s total)"),
    (gateways_out, "gwout-mqtt", "fan-out through each protocol (1 MQTT publisher → 1,000 subscribers, QoS 0, 64 B, 10 msgs/s published: 10,000 deliveries/s)"),
]:
    if not gateways:
        continue
    print(f"## gateways: {title}\n")
    print(f"| broker | protocol | delivered msgs/s | p50 ms | p99 ms | sent | delivered | lost | broker CPU s | msgs per broker CPU-s | ÷ {first} (msgs/CPU-s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in brokers:
        if not b.startswith("junction"):
            continue
        base = load(b, first) or {}
        for s in gateways:
            r = load(b, s)
            if r is None:
                print(f"| {b} | {s} | no result | | | | | | | | |")
                continue
            ms = lambda k: None if r.get(k) is None else r[k] / 1000
            print(f"| {b} | {s} | {num(r.get('msgs_per_sec'))} | {num(ms('p50_us'), '{:.2f}')} | {num(ms('p99_us'), '{:.2f}')} "
                  f"| {num(r.get('sent'))} | {num(r.get('unique'))} | {num(r.get('lost'))} "
                  f"| {num(r.get('broker_cpu_s'), '{:.2f}')} | {num(r.get('msgs_per_broker_cpu_s'))} "
                  f"| {ratio(r.get('msgs_per_broker_cpu_s'), base.get('msgs_per_broker_cpu_s'))} |")
        for s in gateways:
            r = load(b, s)
            if r and r.get("error"):
                print(f"\n{b} {s}: {r['error']}")
    print()

if floods:
    print("## UDP flood: MQTT-SN CONNECTs from 5,000 spoofed addresses, discarded by the peer table\n")
    print("| broker | scenario | sent | sent/s | broker CPU s (user / sys) | datagrams per broker CPU-s |")
    print("|---|---|---:|---:|---:|---:|")
    for b in brokers:
        if not b.startswith("junction"):
            continue
        for s in floods:
            r = load(b, s)
            if r is None:
                print(f"| {b} | {s} | no result | | | |")
                continue
            cpu = num(r.get('broker_cpu_s'), '{:.2f}')
            if r.get('broker_user_s') is not None:
                cpu += f" ({r['broker_user_s']:.2f} / {r['broker_sys_s']:.2f})"
            print(f"| {b} | {s} | {num(r.get('sent'))} | {num(r.get('sent_per_sec'))} | {cpu} | {num(r.get('datagrams_per_broker_cpu_s'))} |")
    print()

if registrations:
    print("## LwM2M registrations: devices REGISTER (200 in flight) and stay registered\n")
    print("| broker | scenario | registered | failed | registrations/s | broker CPU s | registrations per broker CPU-s | RSS before (KiB) | RSS after (KiB) | KiB per device | ÷ MQTT connection (same broker, idle-10k) | ÷ Mosquitto MQTT connection |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    mosq = (load("mosquitto", "idle-10k") or {}).get("rss_kib_per_conn")
    for b in brokers:
        if not b.startswith("junction"):
            continue
        own = (load(b, "idle-10k") or {}).get("rss_kib_per_conn")
        for s in registrations:
            r = load(b, s)
            if r is None:
                print(f"| {b} | {s} | no result | | | | | | | | | |")
                continue
            per = r.get("rss_kib_per_device")
            print(f"| {b} | {s} | {num(r.get('registered'))} | {num(r.get('failed'))} | {num(r.get('registrations_per_sec'))} "
                  f"| {num(r.get('broker_cpu_s'), '{:.2f}')} | {num(r.get('registrations_per_broker_cpu_s'))} "
                  f"| {num(r.get('rss_before_kib'))} | {num(r.get('rss_after_kib'))} | {num(per, '{:.2f}')} "
                  f"| {ratio(per, own)} | {ratio(per, mosq)} |")
    print()
PY
} | tee "$OUT/results.md"
log "results written to target/bench/results.md"
