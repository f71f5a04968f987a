#!/bin/bash
# A throw-away multi-node Docker Swarm made of Docker-in-Docker node containers on the local
# engine, for hubdesk's tests. The host engine itself never joins a swarm.
#
#   tests/swarm/swarm.sh up [-w WORKERS] [-i ID]   start manager + WORKERS (default 2) workers
#   tests/swarm/swarm.sh env [ID]                  print the env lines of a running swarm again
#   tests/swarm/swarm.sh status [ID]               containers, inner `docker node ls`
#   tests/swarm/swarm.sh down [ID | --all]         remove everything labelled hubdesk-test=ID
#
# ID defaults to $HUBDESK_SWARM_ID, else (up only) a fresh one. Everything created carries the
# label hubdesk-test=ID: one --internal bridge network hubdesk-test-ID (10.213.N.0/24, the
# first /24 no other local network uses; nodes get .10 (manager), .11, .12, …; no route out),
# containers hubdesk-test-ID-{manager,worker1,…} (hostnames manager, worker1, …) and one
# volume per node for its /var/lib/docker.
# `up` prints, on stdout only, shell-style lines (the last one is HUBDESK_SWARM_DOCKER_HOST):
#   HUBDESK_SWARM_ID  HUBDESK_SWARM_NETWORK  HUBDESK_SWARM_SUBNET  HUBDESK_SWARM_MANAGER
#   HUBDESK_SWARM_MANAGER_IP  HUBDESK_SWARM_NODES ("name=ip …")  HUBDESK_TINY_IMAGE
#   HUBDESK_NODE_IMAGE  HUBDESK_SWARM_DOCKER_HOST (tcp://<manager ip>:2375, plain TCP, reachable
#   from this host and from containers on the network)
# Knobs: HUBDESK_NODE_IMAGE / HUBDESK_TINY_IMAGE (skip images.sh), HUBDESK_SWARM_LOAD_IMAGES
#   (more local images to load into every node), HUBDESK_SWARM_PRIVILEGED=auto|1|0,
#   HUBDESK_SWARM_CAP_DROP (caps to drop in the non-privileged mode), HUBDESK_SWARM_NODE_ENV
#   ("K=V …" passed to every node: HUBDESK_NODE_STORAGE_DRIVER, HUBDESK_NODE_IPTABLES,
#   HUBDESK_NODE_DOCKERD_ARGS), HUBDESK_SWARM_NODE_ENTRYPOINT (a file bind-mounted over the
#   image's entrypoint, to try changes without a rebuild), HUBDESK_SWARM_KEEP_ON_FAILURE=1,
#   HUBDESK_SWARM_INIT_ARGS (more `docker swarm init` flags, e.g. --dispatcher-heartbeat 1s),
#   HUBDESK_SWARM_NODE_VOLUMES ("host_dir:node_dir[:ro] …", bind-mounted into every node: one
#   host directory seen by every node at the same path, how the tests emulate the NFS export).
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${HUBDESK_IMAGE_CACHE:-/var/tmp/hubdesk-images}
LABEL=hubdesk-test
PREFIX=hubdesk-test
NET_BASE=10.213 # 10.213.N.0/24, N in 0..255

log() { echo "swarm.sh: $*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { date +%s%3N; }
T0=$(now_ms)
phase() { # name: log the time since the last phase
	local t; t=$(now_ms)
	log "phase $1: $(( (t - T0) ))ms"
	T0=$t
}

# --- privilege mode ----------------------------------------------------------------------
# `--privileged` grants every capability the engine knows; where the engine's own bounding
# set lacks one (seen here: CAP_SYS_RESOURCE), runc fails with "unable to apply caps:
# operation not permitted". Then run near-privileged: all caps but the missing ones, no
# seccomp/AppArmor, unmasked /proc, every device; the entrypoint makes /sys and cgroups rw.
CAP_NAMES=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
	LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
	SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
	SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
	MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ)
missing_caps() { # caps 0..37 absent from the bounding set of the engine (or of this shell)
	local pid bnd i out=""
	pid=$(pgrep -xo dockerd 2>/dev/null || true)
	bnd=$(awk '/^CapBnd/ {print $2}' "/proc/${pid:-self}/status" 2>/dev/null || awk '/^CapBnd/ {print $2}' /proc/self/status)
	for i in "${!CAP_NAMES[@]}"; do
		(( (0x$bnd >> i) & 1 )) || out="$out ${CAP_NAMES[$i]}"
	done
	echo "${out# }"
}
node_privilege_args() { # $1: tiny image to probe with; sets PRIV_ARGS
	local mode=${HUBDESK_SWARM_PRIVILEGED:-auto} err drops c
	if [ "$mode" = auto ]; then
		if err=$(docker run --rm --privileged --network none "$1" true 2>&1); then mode=1
		else
			log "--privileged fails on this engine: $(echo "$err" | head -1)"
			mode=0
		fi
	fi
	if [ "$mode" = 1 ]; then PRIV_ARGS=(--privileged); return; fi
	drops=${HUBDESK_SWARM_CAP_DROP-$(missing_caps)}
	log "near-privileged nodes: --cap-add ALL${drops:+ --cap-drop ${drops// /,}}"
	PRIV_ARGS=(--cap-add ALL)
	for c in $drops; do PRIV_ARGS+=(--cap-drop "$c"); done
	PRIV_ARGS+=(--security-opt seccomp=unconfined --security-opt apparmor=unconfined
		--security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm')
	[ ! -e /dev/fuse ] || PRIV_ARGS+=(--device /dev/fuse)
}

# --- helpers -----------------------------------------------------------------------------
cname() { echo "$PREFIX-$1-$2"; }   # id, node
nodes_of() { # id -> "name " lines, manager first
	docker ps -a --filter "label=$LABEL=$1" --format '{{.Label "hubdesk-test.node"}}' | sort
}
node_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$PREFIX-$1\").IPAddress}}" "$(cname "$1" "$2")"; }
inner() { local id=$1 n=$2; shift 2; docker exec "$(cname "$id" "$n")" docker "$@"; }
dump_node() { # id node: the tail of the node's own log (entrypoint + inner dockerd)
	log "---- last lines of $(cname "$1" "$2") ----"
	docker logs --tail 40 "$(cname "$1" "$2")" 2>&1 | sed 's/^/    /' >&2 || true
}

pick_subnet() { # prints a free 10.213.N.0/24
	local used n
	# shellcheck disable=SC2046
	used=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' $(docker network ls -q) 2>/dev/null || true)
	used="$used $(ip -4 route show 2>/dev/null | awk '{print $1}')"
	used=$(echo $used) # one space between entries (the lists above are newline-separated)
	for n in $(seq 0 255); do
		case " $used " in *" $NET_BASE.$n.0/24 "* | *" $NET_BASE.0.0/16 "*) continue ;; esac
		echo "$NET_BASE.$n.0/24"; return
	done
	die "no free /24 in $NET_BASE.0.0/16"
}

wait_dockerd() { # id node timeout_s
	local c; c=$(cname "$1" "$2")
	local deadline=$(( SECONDS + $3 ))
	until docker exec "$c" docker version -f '{{.Server.Version}}' >/dev/null 2>&1; do
		if [ "$(docker inspect -f '{{.State.Running}}' "$c" 2>/dev/null)" != true ]; then
			dump_node "$1" "$2"; die "$c exited before its dockerd answered"
		fi
		[ $SECONDS -lt $deadline ] || { dump_node "$1" "$2"; die "$c: dockerd not up after $3 s"; }
		sleep 0.3
	done
}

print_env() { # id
	local id=$1 n ips="" mip
	mip=$(node_ip "$id" manager)
	for n in $(nodes_of "$id"); do ips="$ips $n=$(node_ip "$id" "$n")"; done
	echo "HUBDESK_SWARM_ID=$id"
	echo "HUBDESK_SWARM_NETWORK=$PREFIX-$id"
	echo "HUBDESK_SWARM_SUBNET=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$PREFIX-$id")"
	echo "HUBDESK_SWARM_MANAGER=$(cname "$id" manager)"
	echo "HUBDESK_SWARM_MANAGER_IP=$mip"
	echo "HUBDESK_SWARM_NODES=\"${ips# }\""
	echo "HUBDESK_TINY_IMAGE=$(docker inspect -f '{{index .Config.Labels "hubdesk-test.tiny-image"}}' "$(cname "$id" manager)")"
	echo "HUBDESK_NODE_IMAGE=$(docker inspect -f '{{.Config.Image}}' "$(cname "$id" manager)")"
	echo "HUBDESK_SWARM_DOCKER_HOST=tcp://$mip:2375"
}

on_up_exit() { # id
	local rc=$?
	[ $rc = 0 ] || { log "up failed (rc $rc): removing swarm $1 (HUBDESK_SWARM_KEEP_ON_FAILURE=1 keeps it)"; cmd_down "$1" >&2; }
}

# --- commands ----------------------------------------------------------------------------
cmd_up() {
	local workers=${HUBDESK_SWARM_WORKERS:-2} id=${HUBDESK_SWARM_ID:-} opt
	while getopts "w:i:" opt; do
		case $opt in w) workers=$OPTARG ;; i) id=$OPTARG ;; *) exit 2 ;; esac
	done
	[ -n "$id" ] || id=$(printf 's%04x%04x' $$ $RANDOM)
	[[ $id =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad id $id"
	[ -z "$(docker ps -aq --filter "label=$LABEL=$id")" ] || die "swarm $id exists (swarm.sh down $id)"
	mkdir -p "$CACHE"

	local node_img=${HUBDESK_NODE_IMAGE:-} tiny_img=${HUBDESK_TINY_IMAGE:-} line
	if [ -z "$node_img" ] || [ -z "$tiny_img" ]; then
		line=$("$HERE/images.sh" | tail -1)
		eval "$line" # NODE_IMAGE=… TINY_IMAGE=…
		node_img=${node_img:-$NODE_IMAGE}; tiny_img=${tiny_img:-$TINY_IMAGE}
	fi
	phase images

	if [ "${HUBDESK_SWARM_KEEP_ON_FAILURE:-0}" != 1 ]; then
		# shellcheck disable=SC2064 # expand $id now
		trap "on_up_exit $id" EXIT
	fi

	local PRIV_ARGS=(); node_privilege_args "$tiny_img"
	phase privilege-probe

	local net=$PREFIX-$id subnet tries=0 err
	while :; do # a parallel `up` may take the same /24 first: pick again
		subnet=$(pick_subnet)
		if err=$(docker network create --driver bridge --internal --subnet "$subnet" --gateway "${subnet%.0/24}.1" \
			--label "$LABEL=$id" "$net" 2>&1 >/dev/null); then break; fi
		tries=$((tries + 1))
		[ $tries -lt 5 ] || die "network create failed: $err"
	done
	log "network $net $subnet (internal)"

	local names=(manager) n k=0 envargs=() ep=()
	for ((i = 1; i <= workers; i++)); do names+=("worker$i"); done
	for n in ${HUBDESK_SWARM_NODE_ENV:-}; do envargs+=(-e "$n"); done
	[ -z "${HUBDESK_SWARM_NODE_ENTRYPOINT:-}" ] || ep=(-v "$(realpath "$HUBDESK_SWARM_NODE_ENTRYPOINT"):/usr/local/bin/node-entrypoint.sh:ro")
	for n in ${HUBDESK_SWARM_NODE_VOLUMES:-}; do
		[ -d "${n%%:*}" ] || die "HUBDESK_SWARM_NODE_VOLUMES: ${n%%:*} is not a directory"
		[[ $n == /*:/* ]] || die "HUBDESK_SWARM_NODE_VOLUMES: $n is not host_dir:node_dir (absolute paths)"
		ep+=(-v "$n")
	done
	for n in "${names[@]}"; do
		docker volume create --label "$LABEL=$id" "$(cname "$id" "$n")-docker" >/dev/null
		docker run -d --name "$(cname "$id" "$n")" --hostname "$n" \
			--label "$LABEL=$id" --label "hubdesk-test.node=$n" --label "hubdesk-test.tiny-image=$tiny_img" \
			--network "$net" --ip "${subnet%.0/24}.$((10 + k))" \
			-v "$(cname "$id" "$n")-docker:/var/lib/docker" "${ep[@]}" \
			"${PRIV_ARGS[@]}" "${envargs[@]}" "$node_img" >/dev/null
		k=$((k + 1))
	done
	phase start-containers
	for n in "${names[@]}"; do wait_dockerd "$id" "$n" 60; done
	phase inner-dockerd-ready

	local mip; mip=$(node_ip "$id" manager)
	# shellcheck disable=SC2086
	inner "$id" manager swarm init --advertise-addr "$mip" --listen-addr "$mip:2377" ${HUBDESK_SWARM_INIT_ARGS:-} >/dev/null
	local token; token=$(inner "$id" manager swarm join-token -q worker)
	phase swarm-init
	local pids=()
	for n in "${names[@]:1}"; do
		inner "$id" "$n" swarm join --token "$token" "$mip:2377" >/dev/null & pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || die "a worker failed to join"; done
	phase swarm-join

	# images: save each once (cached by image id), load into every node in parallel
	local img f imgs=("$tiny_img") pids=()
	for img in ${HUBDESK_SWARM_LOAD_IMAGES:-}; do imgs+=("$img"); done
	for img in "${imgs[@]}"; do
		f=$CACHE/saved-$(docker image inspect -f '{{.Id}}' "$img" | cut -d: -f2 | cut -c1-12).tar
		[ -s "$f" ] || { docker save "$img" > "$f.tmp" && mv "$f.tmp" "$f"; }
		for n in "${names[@]}"; do
			docker exec -i "$(cname "$id" "$n")" docker load -q < "$f" >/dev/null & pids+=($!)
		done
	done
	for i in "${pids[@]}"; do wait "$i" || die "docker load into a node failed"; done
	phase load-images

	local deadline=$(( SECONDS + 60 )) ready
	while :; do
		ready=$(inner "$id" manager node ls --format '{{.Status}}/{{.Availability}}' | grep -c '^Ready/Active$' || true)
		[ "$ready" -lt ${#names[@]} ] || break
		[ $SECONDS -lt $deadline ] || { inner "$id" manager node ls >&2; die "only $ready of ${#names[@]} nodes Ready"; }
		sleep 0.5
	done
	# the manager's engine must answer on tcp from this host (the tests' way in)
	docker -H "tcp://$mip:2375" version -f '{{.Server.Version}}' >/dev/null \
		|| die "tcp://$mip:2375 does not answer from the host"
	phase nodes-ready
	trap - EXIT
	inner "$id" manager node ls >&2
	print_env "$id"
}

cmd_down() { # [id | --all]
	local id=${1:-${HUBDESK_SWARM_ID:-}} filter c v n
	[ -n "$id" ] || die "down: which swarm? (ID or --all)"
	if [ "$id" = --all ]; then filter="label=$LABEL"; else filter="label=$LABEL=$id"; fi
	c=$(docker ps -aq --filter "$filter")
	[ -z "$c" ] || docker rm -f -v $c >/dev/null
	v=$(docker volume ls -q --filter "$filter")
	[ -z "$v" ] || docker volume rm -f $v >/dev/null
	n=$(docker network ls -q --filter "$filter")
	[ -z "$n" ] || docker network rm $n >/dev/null
	log "down $id: $(echo $c | wc -w) containers, $(echo $v | wc -w) volumes, $(echo $n | wc -w) networks removed"
}

cmd_status() {
	local id=${1:-${HUBDESK_SWARM_ID:-}}
	if [ -z "$id" ]; then
		docker ps -a --filter "label=$LABEL" --format 'table {{.Names}}\t{{.Status}}\t{{.Label "hubdesk-test"}}'
		return
	fi
	docker ps -a --filter "label=$LABEL=$id" --format 'table {{.Names}}\t{{.Status}}'
	inner "$id" manager node ls 2>&1 || true
}

cmd=${1:-}; shift || true
case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	env) print_env "${1:-${HUBDESK_SWARM_ID:?which swarm?}}" ;;
	*) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
