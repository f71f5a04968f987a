#!/bin/bash
# Smoke check of the DinD test swarm, shaped like hubdesk's use of JupyterHub's SwarmSpawner:
#   up (1 manager + 2 workers) → attachable overlay network → service jupyter-bob-2dsmith
#   (label hubdesk.user=bob-smith, 1 replica, constraint node.role==worker) runs on a worker →
#   a "hub" container on the manager reaches it over the overlay by service name, as
#   SwarmSpawner(use_internal_ip=True) does (endpoint mode dnsrr: the default VIP needs the
#   kernel's IPVS, which this host lacks; a vip-probe phase reports whether VIP works) → drain that worker
#   → the task moves to the other worker → the drained worker leaves and is removed
#   → the last worker is killed (an EC2 instance gone): time until Down, the task goes pending
#   → down.
# Prints each phase's time; the last line is machine-readable: SMOKE ok phase=ms …
# Env: as swarm.sh (HUBDESK_NODE_IMAGE, HUBDESK_TINY_IMAGE, …), HUBDESK_SWARM_KEEP=1 keeps it up.
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "smoke.sh: $*" >&2; }
die() { log "FAILED in phase ${PHASE:-?}: $*"; exit 1; }
now_ms() { date +%s%3N; }
FIGS=()
T0=$(now_ms); TSTART=$T0; PHASE=start
begin() { PHASE=$1; T0=$(now_ms); }
done_() { local ms=$(( $(now_ms) - T0 )); FIGS+=("$PHASE=$ms"); log "phase $PHASE: ${ms} ms${1:+ ($1)}"; }
wait_for() { # timeout_s description command…: poll every 0.2 s until the command succeeds
	local deadline=$(( $(now_ms) + $1 * 1000 )) what=$2; shift 2
	until "$@" >/dev/null; do
		[ "$(now_ms)" -lt $deadline ] || die "timed out waiting for $what"
		sleep 0.2
	done
}

ID=smoke$$
SVC=jupyter-bob-2dsmith
NET=hubdesk-notebooks

begin up
ENV_LINES=$("$HERE/swarm.sh" up -i "$ID" -w 2)
eval "$ENV_LINES"
done_ "$HUBDESK_SWARM_DOCKER_HOST"
if [ "${HUBDESK_SWARM_KEEP:-0}" != 1 ]; then
	trap '"$HERE/swarm.sh" down "$ID"' EXIT
fi
# Drive the swarm as a test would: the manager's engine over plain TCP from this host.
export DOCKER_HOST=$HUBDESK_SWARM_DOCKER_HOST
D() { docker "$@"; }
node_docker() { docker -H "unix:///var/run/docker.sock" exec "hubdesk-test-$ID-$1" docker "${@:2}"; }

# the running task of the service: "node|state|ip"
task() {
	local t
	t=$(D service ps -q --filter desired-state=running "$SVC" | head -1)
	[ -n "$t" ] || return 0
	D inspect -f "{{.NodeID}}|{{.Status.State}}|{{range .NetworksAttachments}}{{if eq .Network.Spec.Name \"$NET\"}}{{index .Addresses 0}}{{end}}{{end}}" "$t" \
		| { IFS='|' read -r nid st ip; echo "$(D node inspect -f '{{.Description.Hostname}}' "$nid" 2>/dev/null || echo "?")|$st|${ip%/*}"; }
}
running_on_worker() { local t; t=$(task); [[ $t == worker*\|running\|* ]]; }

begin network
D network create -d overlay --attachable "$NET" >/dev/null
done_

begin service-create
D service create --detach --quiet --no-resolve-image --name "$SVC" \
	--label hubdesk.user=bob-smith --container-label hubdesk.user=bob-smith \
	--network "$NET" --replicas 1 --constraint node.role==worker --endpoint-mode dnsrr \
	--env JUPYTERHUB_SERVICE_PREFIX=/user/bob-smith/ \
	"$HUBDESK_TINY_IMAGE" >/dev/null
done_
begin task-running
wait_for 60 "a running task on a worker" running_on_worker
T=$(task); FIRST=${T%%|*}
done_ "$T"
[ "$(D service inspect -f '{{index .Spec.Labels "hubdesk.user"}}' "$SVC")" = bob-smith ] || die "label missing"
[ "$(D service ls -q --filter label=hubdesk.user=bob-smith | wc -l)" = 1 ] || die "label filter finds no service"

begin hub-reaches-task
# the stand-in hub: a container on the manager attached to the overlay
D run -d --name hub --network "$NET" --label hubdesk.role=hub "$HUBDESK_TINY_IMAGE" >/dev/null
fetch() { docker exec hub timeout 2 wget -q -O- "http://$1:8888/user/bob-smith/api" 2>/dev/null; }
wait_for 20 "http://$SVC:8888/user/bob-smith/api from the hub" fetch "$SVC"
done_ "by name: $(fetch "$SVC")"
IP=${T##*|}
fetch "$IP" >/dev/null || die "task IP $IP not reachable from the hub"

begin vip-probe
# informational: the same service in the default endpoint mode (VIP, load-balanced by IPVS)
D service create --detach --quiet --no-resolve-image --name vip-probe --network "$NET" \
	--constraint node.role==worker "$HUBDESK_TINY_IMAGE" >/dev/null
vip_running() { D service ps --filter desired-state=running --format '{{.CurrentState}}' vip-probe | grep -q '^Running'; }
wait_for 60 "vip-probe running" vip_running
sleep 1
if docker exec hub timeout 3 wget -q -O- http://vip-probe:8888/ >/dev/null 2>&1; then VIP=works
else VIP="fails (no answer in 3 s via $(docker exec hub nslookup vip-probe 127.0.0.11 2>/dev/null | awk '/^Address/ {a=$NF} END {print a}'))"; fi
D service rm vip-probe >/dev/null
done_ "VIP $VIP"

begin drain
D node update --availability drain "$FIRST" >/dev/null
moved() { local t; t=$(task); [[ $t == worker*\|running\|* && ${t%%|*} != "$FIRST" ]]; }
wait_for 60 "the task to move off $FIRST" moved
T=$(task); SECOND=${T%%|*}
done_ "$FIRST -> $T"
old_gone() { [ -z "$(D service ps -q --filter desired-state=shutdown --filter node="$FIRST" "$SVC" | xargs -r docker inspect -f '{{.Status.State}}' | grep -v -e shutdown -e complete -e failed)" ]; }
wait_for 30 "the old task on $FIRST to stop" old_gone
IP=${T##*|}
by_name_is_new() { fetch "$SVC" | grep -q .; [ "$(docker exec hub nslookup "$SVC" 127.0.0.11 2>/dev/null | awk '/^Address/ {a=$NF} END {print a}')" = "$IP" ]; }
wait_for 20 "$SVC to resolve to the moved task" by_name_is_new

is_down() { [ "$(D node inspect -f '{{.Status.State}}' "$1")" = down ]; }
begin node-leave
node_docker "$FIRST" swarm leave >/dev/null
done_
begin leave-seen-down
wait_for 60 "$FIRST to be down" is_down "$FIRST"
done_
begin node-rm
D node rm "$FIRST" >/dev/null
[ "$(D node ls -q | wc -l)" = 2 ] || die "node count after rm"
done_ "$FIRST removed"

begin worker-killed
# an EC2 worker terminated without notice: how long until the manager says Down, and the
# task (it fits no node now: manager is not a worker) stays pending
docker -H unix:///var/run/docker.sock kill "hubdesk-test-$ID-$SECOND" >/dev/null
wait_for 120 "$SECOND to be down after kill" is_down "$SECOND"
done_ "$SECOND Down"
begin task-pending
pending() { D service ps --filter desired-state=running --format '{{.CurrentState}}' "$SVC" | grep -q '^Pending'; }
wait_for 60 "a pending task" pending
done_ "$(D service ps --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' "$SVC" | head -1)"

D node ls >&2
D service ps "$SVC" >&2
unset DOCKER_HOST
if [ "${HUBDESK_SWARM_KEEP:-0}" != 1 ]; then
	begin down
	trap - EXIT
	"$HERE/swarm.sh" down "$ID"
	done_
fi
log "total $(( $(now_ms) - TSTART )) ms"
echo "SMOKE ok ${FIGS[*]}"
