#!/bin/sh
# hubdesk test swarm node: prepare the container for a nested dockerd, then exec it.
# Runs under tini (PID 1) in a --privileged (or, where the engine cannot grant every capability,
# near-privileged: see ../swarm.sh) container whose /var/lib/docker is a volume (overlay2 on the
# container's own overlay/fuse-overlayfs rootfs fails: "failed to mount overlay: invalid argument").
# Knobs (environment):
#   HUBDESK_NODE_STORAGE_DRIVER  overlay2 | fuse-overlayfs | vfs   (default: dockerd's own choice)
#   HUBDESK_NODE_IPTABLES        nft | legacy                       (default: Debian's, nft)
#   HUBDESK_NODE_DOCKERD_ARGS    extra dockerd arguments (word-split)
#   HUBDESK_NODE_TCP             tcp listen address, "" to disable   (default 0.0.0.0:2375)
# Extra container arguments are passed to dockerd as well.
set -eu

log() { echo "hubdesk-node: $*" >&2; }

# Without --privileged (hosts whose engine lacks a capability; see swarm.sh) /sys and the cgroup
# mounts come read-only: make them writable (needs CAP_SYS_ADMIN and no AppArmor/seccomp).
remount_rw() { # $1: mount point
	mount -o remount,rw "$1" 2>/dev/null || mount -o remount,bind,rw "$1" 2>/dev/null || log "could not make $1 writable"
}
awk '$2 == "/sys" || $2 ~ "^/sys/fs/cgroup" {print $2, $4}' /proc/self/mounts | while read -r mp opts; do
	case ",$opts," in *,ro,*) remount_rw "$mp" ;; esac
done

# securityfs (AppArmor probes it); harmless where absent.
if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security; then
	mount -t securityfs none /sys/kernel/security 2>/dev/null || log "securityfs not mounted (ignored)"
fi

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	# cgroup v2 (unified): a cgroup with processes cannot delegate controllers, so move every
	# process of the container's root cgroup into a leaf first, then enable all controllers.
	log "cgroup v2: nesting"
	mkdir -p /sys/fs/cgroup/init
	for pid in $(cat /sys/fs/cgroup/cgroup.procs); do
		echo "$pid" > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
	done
	ctrls=""
	for c in $(cat /sys/fs/cgroup/cgroup.controllers); do ctrls="$ctrls +$c"; done
	[ -z "$ctrls" ] || echo "$ctrls" > /sys/fs/cgroup/cgroup.subtree_control || log "subtree_control: could not enable$ctrls"
elif mountpoint -q /sys/fs/cgroup; then
	# cgroup v1: the outer runtime mounted the container's own part of each hierarchy the host
	# mounts. Do NOT mount the others (net_cls, hugetlb, … when the host leaves them unmounted):
	# that would bind those controllers to new v1 hierarchies for the whole host.
	log "cgroup v1: $(cd /sys/fs/cgroup && echo *)"
else
	log "no /sys/fs/cgroup mount: nested containers will fail"
fi

case "${HUBDESK_NODE_IPTABLES:-}" in
	legacy) update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
		update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null ;;
	nft) update-alternatives --set iptables /usr/sbin/iptables-nft >/dev/null
		update-alternatives --set ip6tables /usr/sbin/ip6tables-nft >/dev/null ;;
	"") ;;
	*) log "HUBDESK_NODE_IPTABLES must be nft or legacy"; exit 2 ;;
esac

# A restarted container keeps its writable layer: drop the stale pid files.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid

set -- --host=unix:///var/run/docker.sock "$@"
tcp=${HUBDESK_NODE_TCP-0.0.0.0:2375}
[ -z "$tcp" ] || set -- --host="tcp://$tcp" --tls=false "$@"
[ -z "${HUBDESK_NODE_STORAGE_DRIVER:-}" ] || set -- --storage-driver="$HUBDESK_NODE_STORAGE_DRIVER" "$@"
# shellcheck disable=SC2086
set -- ${HUBDESK_NODE_DOCKERD_ARGS:-} "$@"

log "exec dockerd $*"
# Without this a swarm worker tries to pull every service image (there is no registry).
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
exec dockerd "$@"
