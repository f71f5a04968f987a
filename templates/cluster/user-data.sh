#!/bin/sh
# hubdesk worker bootstrap: EC2 user-data, run once as root at first boot (cloud-init).
# Launch {{ launch_id }} of cluster {{ cluster }}; joins the swarm whose manager is {{ manager_addr }}.
# Works on Amazon Linux 2023 (dnf) and Ubuntu/Debian (apt-get); every step is skipped where it is
# already done, so a rerun (or an image with Docker baked in) is harmless.
set -eu
log() { echo "hubdesk-worker: $*" >&2; }

# 1. Docker and the NFS client (notebook homes are NFS volumes), only if missing.
has_nfs() { command -v mount.nfs >/dev/null 2>&1 || [ -x /sbin/mount.nfs ] || [ -x /usr/sbin/mount.nfs ]; }
want_docker=0; want_nfs=0
command -v dockerd >/dev/null 2>&1 || want_docker=1
has_nfs || want_nfs=1
if [ $want_docker = 1 ] || [ $want_nfs = 1 ]; then
	if command -v dnf >/dev/null 2>&1; then
		pkgs=""
		[ $want_docker = 0 ] || pkgs="$pkgs docker"
		[ $want_nfs = 0 ] || pkgs="$pkgs nfs-utils"
		log "installing$pkgs (dnf)"
		dnf install -y $pkgs
	elif command -v apt-get >/dev/null 2>&1; then
		pkgs=""
		[ $want_docker = 0 ] || pkgs="$pkgs docker.io"
		[ $want_nfs = 0 ] || pkgs="$pkgs nfs-common"
		log "installing$pkgs (apt-get)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q
		apt-get install -y -q $pkgs
	else
		log "neither dnf nor apt-get: install Docker and the NFS client in the image"
		exit 1
	fi
fi

# 2. The engine prefers local images: notebook images are preloaded on workers, and a swarm
#    worker otherwise asks a registry for every task it starts.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	mkdir -p /etc/systemd/system/docker.service.d
	cat > /etc/systemd/system/docker.service.d/hubdesk.conf <<'UNIT'
[Service]
Environment=DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
UNIT
	systemctl daemon-reload
	systemctl enable docker >/dev/null 2>&1 || true
	systemctl restart docker
elif ! docker info >/dev/null 2>&1; then
	# No systemd (a container standing in for an instance): start the engine ourselves.
	DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nohup dockerd >/var/log/hubdesk-dockerd.log 2>&1 &
fi
i=0
until docker info >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 120 ] || { log "the Docker engine did not start"; exit 1; }
	sleep 1
done

# 3. Join the swarm as a worker, unless this engine is in one already.
state=$(docker info --format '{% raw %}{{.Swarm.LocalNodeState}}{% endraw %}')
if [ "$state" = active ] || [ "$state" = pending ]; then
	log "already in a swarm ($state)"
	exit 0
fi
log "joining {{ manager_addr }}"
docker swarm join --token '{{ token }}' '{{ manager_addr }}'
log "joined"
