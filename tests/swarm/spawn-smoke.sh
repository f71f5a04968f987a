#!/bin/bash
# The shipped hub config spawning a real notebook on the DinD swarm, without hubdesk:
#   images (notebook + hub, offline) → swarm up (manager + 2 workers; one host directory
#   bind-mounted into every node at /srv/homes, standing in for the NFS export) → attachable
#   overlay → the hub container on the manager (deploy/jupyterhub_config.py copied in,
#   HUB_SPAWNER=swarm, the manager's docker socket, on the overlay, port 8000 published to the
#   host) → through the hub's REST API with an admin service token (HUB_EXTRA_CONFIG): create a
#   user, POST /users/<u>/server, wait until ready → the service jupyter-<escaped> runs on a
#   worker, labelled hubdesk.user=<u>, with /home/jovyan = <host dir>/<u> → a file written
#   through the notebook's contents API (via the hub's proxy, with a user token) is on the host,
#   owned by uid 1000 → stop: the service is gone, the file stays → down.
# Logging in needs hubdesk (OAuth), which this smoke does not run: HUBDESK_URL and the client
# secret are dummies that are never called.
# Prints each phase's time; the last line is machine-readable: SPAWN-SMOKE ok phase=ms …
# Env: as swarm.sh, plus HUBDESK_NOTEBOOK_IMAGE / HUBDESK_HUB_IMAGE (skip images.sh),
#   HUBDESK_SWARM_KEEP=1 (leave the swarm, the hub and the homes dir up for a look),
#   SPAWN_SMOKE_USER (default bob-smith: a dash, so the escaped name jupyter-bob-2dsmith is used).
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
log() { echo "spawn-smoke.sh: $*" >&2; }
die() { log "FAILED in phase ${PHASE:-?}: $*"; dump; exit 1; }
now_ms() { date +%s%3N; }
FIGS=()
T0=$(now_ms); TSTART=$T0; PHASE=start
begin() { PHASE=$1; T0=$(now_ms); }
done_() { local ms=$(( $(now_ms) - T0 )); FIGS+=("$PHASE=$ms"); log "phase $PHASE: ${ms} ms${1:+ ($1)}"; }
wait_for() { # timeout_s description command…: poll every 0.5 s until the command succeeds
	local secs=$1 deadline=$(( $(now_ms) + $1 * 1000 )) what=$2; shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -lt $deadline ] || die "timed out after $secs s waiting for $what"
		sleep 0.5
	done
}
json() { python3 -c 'import json,sys
try: v = json.load(sys.stdin)
except ValueError: sys.exit("not JSON")
for k in sys.argv[1:]: v = v[int(k)] if isinstance(v, list) else (v or {}).get(k)
print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list, bool)) else v))' "$@"; }

ID=spawn$$
U=${SPAWN_SMOKE_USER:-bob-smith}
SVC=jupyter-$(python3 -c 'import sys
# escapism.escape(name, safe=ascii letters+digits, escape_char="-").lower(), as DockerSpawner 14
safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
print("".join(c if c in safe else "-%02x" % ord(c) for c in sys.argv[1]).lower())' "$U")
NET=hubdesk-notebooks
HOMES_IN_NODE=/srv/homes
HUB=hub # container name = its DNS name on the overlay = HUB_CONNECT_IP
ADMIN_TOKEN=$(openssl rand -hex 32)
START_TIMEOUT=${SPAWN_SMOKE_START_TIMEOUT:-60} # the no-home phase waits this long for the failure

begin images
if [ -z "${HUBDESK_NOTEBOOK_IMAGE:-}" ] || [ -z "${HUBDESK_HUB_IMAGE:-}" ]; then
	eval "$("$HERE/images.sh" notebook hub | tail -1)" # NOTEBOOK_IMAGE=… HUB_IMAGE=…
	HUBDESK_NOTEBOOK_IMAGE=${HUBDESK_NOTEBOOK_IMAGE:-$NOTEBOOK_IMAGE}
	HUBDESK_HUB_IMAGE=${HUBDESK_HUB_IMAGE:-$HUB_IMAGE}
fi
done_ "$HUBDESK_NOTEBOOK_IMAGE $HUBDESK_HUB_IMAGE"

# The homes root on the host: one directory per student, owned by the notebook uid (hubdesk
# creates these; here the smoke does). Bind-mounted into every node at /srv/homes.
WORK=$(mktemp -d /var/tmp/hubdesk-spawn-smoke.XXXXXX)
HOMES=$WORK/homes
install -d -m 0755 "$HOMES"
install -d -o 1000 -g 100 -m 0755 "$HOMES/$U"
cleanup() {
	local rc=$?
	unset DOCKER_HOST # swarm.sh works on this host's engine
	if [ "${HUBDESK_SWARM_KEEP:-0}" = 1 ]; then
		log "kept: swarm $ID (tests/swarm/swarm.sh down $ID), homes $HOMES (rm -rf $WORK)"
		return
	fi
	"$HERE/swarm.sh" down "$ID" || true
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
DUMPED=0
dump() { # the hub's and the service's logs, once, on failure
	[ $DUMPED = 0 ] || return 0; DUMPED=1
	[ -n "${DOCKER_HOST:-}" ] || return 0
	log "---- hub log (last 60 lines, without the smoke's GET polls) ----"
	docker logs "$HUB" 2>&1 | grep -v -E '200 GET /hub/api/users/[a-z0-9-]+ \(smoke-admin' | tail -60 | sed 's/^/    /' >&2 || true
	log "---- service $SVC ----"; docker service ps --no-trunc "$SVC" >&2 2>&1 || true
	docker service logs --tail 30 "$SVC" 2>&1 | sed 's/^/    /' >&2 || true
}

begin up
ENV_LINES=$(HUBDESK_SWARM_NODE_VOLUMES="$HOMES:$HOMES_IN_NODE ${HUBDESK_SWARM_NODE_VOLUMES:-}" \
	"$HERE/swarm.sh" up -i "$ID" -w 2)
eval "$ENV_LINES"
done_ "$HUBDESK_SWARM_DOCKER_HOST"

begin load-images
# the notebook image on the workers only (the manager never runs a server: the config sets the
# command, so nothing inspects the image there), the hub image on the manager only; in parallel
saved() { # image -> a `docker save` tarball, cached by image id (as swarm.sh does)
	local f
	f=${HUBDESK_IMAGE_CACHE:-/var/tmp/hubdesk-images}/saved-$(docker image inspect -f '{{.Id}}' "$1" | cut -d: -f2 | cut -c1-12).tar
	[ -s "$f" ] || { docker save "$1" > "$f.tmp" && mv "$f.tmp" "$f"; }
	echo "$f"
}
NB_TAR=$(saved "$HUBDESK_NOTEBOOK_IMAGE"); HUB_TAR=$(saved "$HUBDESK_HUB_IMAGE")
pids=()
docker exec -i "$HUBDESK_SWARM_MANAGER" docker load -q < "$HUB_TAR" >/dev/null & pids+=($!)
for n in $HUBDESK_SWARM_NODES; do
	case ${n%%=*} in worker*) docker exec -i "hubdesk-test-$ID-${n%%=*}" docker load -q < "$NB_TAR" >/dev/null & pids+=($!) ;; esac
done
for p in "${pids[@]}"; do wait "$p" || die "docker load into a node failed"; done
done_ "notebook on the workers, hub on the manager"

# From here on, `docker` is the swarm manager's engine (plain TCP from this host).
export DOCKER_HOST=$HUBDESK_SWARM_DOCKER_HOST

begin network
docker network create -d overlay --attachable "$NET" >/dev/null
done_

begin hub-start
# The admin service of this smoke only (the shipped config has no admin service): create the
# user, start/stop the server, issue the user a token.
cat > "$WORK/smoke_extra.py" <<'PY'
import os
c.JupyterHub.services.append({"name": "smoke-admin", "api_token": os.environ["SMOKE_ADMIN_TOKEN"]})
c.JupyterHub.load_roles.append({
    "name": "smoke-admin",
    "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
    "services": ["smoke-admin"],
})
PY
docker create --name "$HUB" --hostname "$HUB" --label hubdesk.role=hub \
	--network "$NET" -p 8000:8000 \
	-v /var/run/docker.sock:/var/run/docker.sock \
	-e HUBDESK_URL=http://hubdesk.invalid -e HUB_OAUTH_CLIENT_SECRET=never-used \
	-e JUPYTERHUB_CRYPT_KEY="$(openssl rand -hex 32)" \
	-e HUB_BIND_URL=http://0.0.0.0:8000 -e HUB_INTERNAL_IP=0.0.0.0 -e HUB_CONNECT_IP="$HUB" \
	-e HUB_SPAWNER=swarm -e HUB_NOTEBOOK_IMAGE="$HUBDESK_NOTEBOOK_IMAGE" -e HUB_SWARM_NETWORK="$NET" \
	-e HUB_SWARM_ENDPOINT_MODE="${HUB_SWARM_ENDPOINT_MODE:-dnsrr}" \
	-e HUB_HOMES_VOLUME=bind -e HUB_HOMES_ROOT="$HOMES_IN_NODE" \
	-e HUB_MEM_LIMIT=1G -e HUB_MEM_GUARANTEE=256M -e HUB_SPAWN_START_TIMEOUT="$START_TIMEOUT" \
	-e HUB_EXTRA_CONFIG=/etc/jupyterhub/smoke_extra.py -e SMOKE_ADMIN_TOKEN="$ADMIN_TOKEN" \
	"$HUBDESK_HUB_IMAGE" >/dev/null
docker cp "$ROOT/deploy/jupyterhub_config.py" "$HUB:/etc/jupyterhub/jupyterhub_config.py"
docker cp "$ROOT/deploy/hub/hubdesk_spawner.py" "$HUB:/etc/jupyterhub/hubdesk_spawner.py"
docker cp "$WORK/smoke_extra.py" "$HUB:/etc/jupyterhub/smoke_extra.py"
docker start "$HUB" >/dev/null
HUB_URL=http://$HUBDESK_SWARM_MANAGER_IP:8000
BODY_FILE=$WORK/body
api() { # method path [json body]: the admin service's call; body in $BODY_FILE, status in $STATUS
	STATUS=$(curl -sS -m 20 -o "$BODY_FILE" -w '%{http_code}' -X "$1" -H "Authorization: token $ADMIN_TOKEN" \
		${3:+-H 'Content-Type: application/json' --data "$3"} "$HUB_URL/hub/api$2") || STATUS=000
}
hub_up() { [ "$(curl -s -m 3 -o /dev/null -w '%{http_code}' "$HUB_URL/hub/api/")" = 200 ]; }
wait_for 90 "the hub at $HUB_URL/hub/api/ (from this host, through the proxy)" hub_up
done_ "$HUB_URL, jupyterhub $(curl -s "$HUB_URL/hub/api/" | json version)"

begin user-create
api POST "/users/$U"
[ "$STATUS" = 201 ] || die "POST /users/$U: $STATUS"
done_

begin spawn
api POST "/users/$U/server"
[ "$STATUS" = 201 ] || [ "$STATUS" = 202 ] || die "POST /users/$U/server: $STATUS"
ready() { api GET "/users/$U"; [ "$(json servers "" ready <"$BODY_FILE")" = true ]; }
wait_for 240 "$U's server ready" ready
done_ "POST → ready ($STATUS)"

begin service-checks
[ "$(docker service ls -q --filter name="$SVC" | wc -l)" = 1 ] || die "no service $SVC"
[ "$(docker service inspect -f '{{index .Spec.Labels "hubdesk.user"}}' "$SVC")" = "$U" ] || die "service label hubdesk.user != $U"
[ "$(docker service ls -q --filter label=hubdesk.user="$U" | wc -l)" = 1 ] || die "label filter does not find $SVC"
TASK=$(docker service ps -q --filter desired-state=running "$SVC" | head -1)
NODE=$(docker node inspect -f '{{.Description.Hostname}}' "$(docker inspect -f '{{.NodeID}}' "$TASK")")
[[ $NODE == worker* ]] || die "task runs on $NODE, not on a worker"
MOUNT=$(docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Mounts}}' "$SVC")
[ "$(json 0 Target <<<"$MOUNT")" = /home/jovyan ] || die "mount target: $MOUNT"
[ "$(json 0 VolumeOptions DriverConfig Options device <<<"$MOUNT")" = "$HOMES_IN_NODE/$U" ] || die "mount device: $MOUNT"
VOL=$(json 0 Source <<<"$MOUNT")
[[ $VOL == home-* ]] || die "volume name $VOL"
ENDPOINT=$(docker service inspect -f '{{.Spec.EndpointSpec.Mode}}' "$SVC")
CONSTRAINTS=$(docker service inspect -f '{{json .Spec.TaskTemplate.Placement.Constraints}}' "$SVC")
RES=$(docker service inspect -f '{{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}}/{{.Spec.TaskTemplate.Resources.Reservations.MemoryBytes}}' "$SVC")
[ "$RES" = "$((1024 ** 3))/$((256 * 1024 ** 2))" ] || die "memory limit/reservation $RES"
# the worker's engine: the container's labels, and the volume with the bind options
NODE_ENGINE=tcp://$(tr ' ' '\n' <<<"$HUBDESK_SWARM_NODES" | sed -n "s/^$NODE=//p"):2375
CID=$(docker -H "$NODE_ENGINE" ps -q --filter label=com.docker.swarm.service.name="$SVC")
[ "$(docker -H "$NODE_ENGINE" inspect -f '{{index .Config.Labels "hubdesk.user"}}' "$CID")" = "$U" ] || die "container label"
[ "$(docker -H "$NODE_ENGINE" volume inspect -f '{{.Driver}} {{index .Options "type"}} {{index .Options "o"}} {{index .Options "device"}}' "$VOL")" = "local none bind $HOMES_IN_NODE/$U" ] \
	|| die "volume $VOL on $NODE: $(docker -H "$NODE_ENGINE" volume inspect "$VOL")"
[ "$(docker -H "$NODE_ENGINE" exec "$CID" id -u)" = 1000 ] || die "server does not run as uid 1000"
done_ "$SVC on $NODE, endpoint $ENDPOINT, constraints $CONSTRAINTS, mem $RES, volume $VOL"

begin contents-write
# a token of the user's own (not the admin's): the proxy → the server → the hub checks it
api POST "/users/$U/tokens" '{"note": "spawn-smoke", "expires_in": 600}'
TOKEN=$(json token <"$BODY_FILE")
[ "$STATUS" = 201 ] && [ -n "$TOKEN" ] || die "POST /users/$U/tokens: $STATUS"
STAMP="written by spawn-smoke $(date -u +%FT%TZ) $RANDOM"
BODY=$(python3 -c 'import json,sys; print(json.dumps({"type": "file", "format": "text", "content": sys.argv[1]}))' "$STAMP")
code=$(curl -sS -m 30 -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: token $TOKEN" \
	-H 'Content-Type: application/json' --data "$BODY" "$HUB_URL/user/$U/api/contents/hello.txt")
[ "$code" = 201 ] || [ "$code" = 200 ] || die "PUT /user/$U/api/contents/hello.txt: $code"
F=$HOMES/$U/hello.txt
[ -f "$F" ] || die "$F not on the host"
[ "$(cat "$F")" = "$STAMP" ] || die "$F content: $(cat "$F")"
[ "$(stat -c %u:%g "$F")" = 1000:100 ] || die "$F owned by $(stat -c %u:%g "$F"), not 1000:100"
read_back() { # GET through the proxy, as the user
	local code
	code=$(curl -sS -m 20 -o "$WORK/get" -w '%{http_code}' -H "Authorization: token $TOKEN" "$HUB_URL/user/$U/api/contents/hello.txt")
	[ "$code" = 200 ] && [ "$(json content <"$WORK/get")" = "$STAMP" ] || { echo "GET contents: $code $(head -c 300 "$WORK/get")"; return 1; }
}
read_back >&2 || die "the server does not read back what it wrote"
done_ "$F $(stat -c '%U(%u):%g %s bytes' "$F")"

begin culler-role
# the idle culler runs as a hub-managed service with its own role; its first pass lists the
# users (list:users, read:users:activity, read:servers) and must not be refused
culler_listed() { docker logs "$HUB" 2>&1 | grep -E 'GET /hub/api/users.*\(idle-culler@' >"$WORK/culler"; }
wait_for 30 "the idle culler's first GET /hub/api/users" culler_listed
grep -q -E '^\[I .* 200 GET /hub/api/users' "$WORK/culler" || die "the idle culler was refused: $(cat "$WORK/culler")"
done_ "$(head -1 "$WORK/culler" | sed "s/^\[[^]]*\] //")"

begin stop
api DELETE "/users/$U/server"
DELETED=$STATUS
[ "$STATUS" = 204 ] || [ "$STATUS" = 202 ] || die "DELETE /users/$U/server: $STATUS"
stopped() { api GET "/users/$U"; [ "$(json servers "" <"$BODY_FILE")" = "" ] && [ -z "$(docker service ls -q --filter name="$SVC")" ]; }
wait_for 60 "$U's server stopped and $SVC removed" stopped
[ -f "$F" ] || die "$F gone after the stop"
done_ "DELETE $DELETED, service removed, home kept"

begin respawn
# the same home again (the volume of that name on whichever worker is reused)
api POST "/users/$U/server"
wait_for 240 "$U's server ready again" ready
wait_for 30 "the file read back after the respawn" read_back
TASK=$(docker service ps -q --filter desired-state=running "$SVC" | head -1)
NODE2=$(docker node inspect -f '{{.Description.Hostname}}' "$(docker inspect -f '{{.NodeID}}' "$TASK")")
api DELETE "/users/$U/server"
wait_for 60 "$U's server stopped again" stopped
done_ "on $NODE2 (first: $NODE), file read back"

begin no-home
# a student whose home does not exist: the task fails (the bind device is missing), the spawn
# fails with the engine's reason, the service is removed, and nothing is created
U2=nohome
api POST "/users/$U2"
api POST "/users/$U2/server"
# 500: the task failed within the hub's 10 s slow-spawn window and the hub says why; 202: it
# fails later (a rejected task retries until HUB_SPAWN_START_TIMEOUT)
case $STATUS in 500 | 202) ;; *) die "POST /users/$U2/server: $STATUS (expected a failure)" ;; esac
NOHOME_STATUS=$STATUS
spawn_over() { api GET "/users/$U2"; [ "$(json servers "" <"$BODY_FILE")" = "" ] && [ -z "$(docker service ls -q --filter name=jupyter-$U2)" ]; }
wait_for $((START_TIMEOUT + 60)) "$U2's failed spawn to be cleaned up" spawn_over
[ ! -e "$HOMES/$U2" ] || die "$HOMES/$U2 was created"
WHY=$(docker logs "$HUB" 2>&1 | grep -m1 -o -E "error while mounting volume|invalid mount config" || true)
[ -n "$WHY" ] || WHY=$(docker logs "$HUB" 2>&1 | grep -m1 -E "$U2.*(failed|timeout|Timeout)" | cut -c1-200 || true)
[ -n "$WHY" ] || die "no reason for $U2's failed spawn in the hub's log"
done_ "POST $NOHOME_STATUS, failed as expected: $WHY"

unset DOCKER_HOST
begin down
if [ "${HUBDESK_SWARM_KEEP:-0}" != 1 ]; then
	trap - EXIT
	"$HERE/swarm.sh" down "$ID"
	rm -rf "$WORK"
fi
done_
log "total $(( $(now_ms) - TSTART )) ms"
echo "SPAWN-SMOKE ok ${FIGS[*]}"
