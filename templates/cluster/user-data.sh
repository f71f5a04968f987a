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

# 2. The notebooks' sandbox on this node (ARCHITECTURE.md, "The student is the adversary").
#    a) The engine's defaults for every container: bounded json-file logs (a student printing
#       50 MB keeps at most 30 MB here) and no-new-privileges (a set-uid file gains nothing).
#       An existing daemon.json is kept, with a warning: merge these keys into it by hand.
mkdir -p /etc/docker
if [ ! -s /etc/docker/daemon.json ]; then
	cat > /etc/docker/daemon.json <<'JSON'
{
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "no-new-privileges": true
}
JSON
elif ! grep -q '"no-new-privileges"' /etc/docker/daemon.json; then
	log "WARNING: /etc/docker/daemon.json exists: add log-opts max-size/max-file and no-new-privileges to it"
fi
#    b) The firewall: a notebook container may reach the internet (pip install) and, over its
#       overlay network, the hub; nothing else of the camp. From the containers' bridges
#       (docker0, docker_gwbridge) every private, link-local (the metadata service
#       169.254.169.254) and loopback destination is refused, except DNS to the resolvers this
#       node uses (the VPC's); and no new connection from a container to this node itself (its
#       Docker, swarm and NFS client ports). The node's own traffic (joining the swarm, mounting
#       NFS, reading its metadata) does not pass these chains. Applied before the engine starts
#       and again after (systemd drop-in below), so a reboot or an engine restart never opens a
#       window.
cat > /usr/local/sbin/hubdesk-sandbox-firewall <<'FIREWALL'
#!/bin/sh
# hubdesk: what notebook containers on this worker may reach (see the worker's user-data).
# One iptables-restore transaction replaces both chains at once: no moment without the rules.
set -eu
resolvers() {
	for f in /etc/resolv.conf /run/systemd/resolve/resolv.conf; do
		[ -r "$f" ] && awk '$1 == "nameserver" { print $2 }' "$f"
	done | grep -E '^[0-9.]+$' | grep -v '^127[.]' | sort -u
	echo 169.254.169.253
}
iptables -w 10 -N DOCKER-USER 2>/dev/null || true # the engine's chain for rules like these
{
	echo '*filter'
	echo ':HUBDESK-SANDBOX - [0:0]'
	echo ':HUBDESK-SANDBOX-IN - [0:0]'
	echo '-A HUBDESK-SANDBOX -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN'
	for r in $(resolvers); do
		echo "-A HUBDESK-SANDBOX -d $r/32 -p udp -m udp --dport 53 -j RETURN"
		echo "-A HUBDESK-SANDBOX -d $r/32 -p tcp -m tcp --dport 53 -j RETURN"
	done
	for net in 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.0.0/16 127.0.0.0/8 \
		0.0.0.0/8 192.0.0.0/24 198.18.0.0/15 224.0.0.0/3; do
		echo "-A HUBDESK-SANDBOX -d $net -j REJECT --reject-with icmp-admin-prohibited"
	done
	echo '-A HUBDESK-SANDBOX-IN -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN'
	echo '-A HUBDESK-SANDBOX-IN -j REJECT --reject-with icmp-admin-prohibited'
	echo 'COMMIT'
} | iptables-restore -w 10 --noflush
once() { iptables -w 10 -C "$@" 2>/dev/null || iptables -w 10 -I "$@"; } # insert unless there
once FORWARD -j DOCKER-USER
for br in docker0 docker_gwbridge; do
	once DOCKER-USER -i "$br" -j HUBDESK-SANDBOX
	once INPUT -i "$br" -j HUBDESK-SANDBOX-IN
done
FIREWALL
chmod 0755 /usr/local/sbin/hubdesk-sandbox-firewall
/usr/local/sbin/hubdesk-sandbox-firewall

# 3. The engine prefers local images: notebook images are preloaded on workers, and a swarm
#    worker otherwise asks a registry for every task it starts.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	mkdir -p /etc/systemd/system/docker.service.d
	cat > /etc/systemd/system/docker.service.d/hubdesk.conf <<'UNIT'
[Service]
Environment=DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
ExecStartPre=/usr/local/sbin/hubdesk-sandbox-firewall
ExecStartPost=/usr/local/sbin/hubdesk-sandbox-firewall
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
/usr/local/sbin/hubdesk-sandbox-firewall # the engine's own rules are in place now: ours go first

# 4. Join the swarm as a worker, unless this engine is in one already.
state=$(docker info --format '{% raw %}{{.Swarm.LocalNodeState}}{% endraw %}')
if [ "$state" = active ] || [ "$state" = pending ]; then
	log "already in a swarm ($state)"
	exit 0
fi
log "joining {{ manager_addr }}"
docker swarm join --token '{{ token }}' '{{ manager_addr }}'
log "joined"
