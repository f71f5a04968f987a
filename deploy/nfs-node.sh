#!/bin/sh
# hubdesk NFS node bootstrap: EC2 user-data, run once as root at first boot (cloud-init).
# `hubdesk aws up` puts the camp's values right below this line; run by hand, set them in the
# environment:  sudo HOMES_VOLUME=vol-0abc EXPORT_CIDR=10.42.0.0/16 sh deploy/nfs-node.sh
#
# Serves the students' homes: the separate EBS volume HOMES_VOLUME (kept by `hubdesk aws down`
# unless --delete-homes) is mounted at /srv/nfs and /srv/nfs/homes is exported to the camp's
# network. Amazon Linux 2023 (dnf) and Ubuntu LTS (apt-get). Safe to re-run.
set -eu
log() { echo "hubdesk-nfs: $*" >&2; }
: "${HOMES_VOLUME:?the homes EBS volume id (vol-…)}"
: "${EXPORT_CIDR:?the network the export is open to (the VPC, e.g. 10.42.0.0/16)}"
HOMES_UID=${HOMES_UID:-1000}
HOMES_GID=${HOMES_GID:-100}

# 1. The NFS server.
if command -v dnf >/dev/null 2>&1; then
	rpm -q nfs-utils >/dev/null 2>&1 || dnf install -y nfs-utils
	server=nfs-server
elif command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	dpkg -s nfs-kernel-server >/dev/null 2>&1 || { apt-get update -q; apt-get install -y -q nfs-kernel-server; }
	server=nfs-kernel-server
else
	log "neither dnf nor apt-get: install an NFS server yourself"; exit 1
fi

# 2. Find the homes volume. On Nitro instances an EBS volume is an NVMe disk whatever device
#    name it was attached as; its serial is the volume id without the dash (vol0abc…). On Xen
#    (t2 and older) it is /dev/xvdf or /dev/sdf. The volume is attached by `hubdesk aws up` right
#    after launch, so it may appear a little after this script starts: wait up to 10 minutes.
serial=$(echo "$HOMES_VOLUME" | tr -d -)
find_disk() {
	for d in /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"$serial" /dev/disk/by-id/nvme-nvme.*"$serial"*; do
		[ -b "$d" ] && { readlink -f "$d"; return 0; }
	done
	if command -v lsblk >/dev/null 2>&1; then
		d=$(lsblk -dno NAME,SERIAL | awk -v s="$serial" '$2 == s { print "/dev/" $1; exit }')
		[ -n "$d" ] && [ -b "$d" ] && { echo "$d"; return 0; }
	fi
	for d in /dev/xvdf /dev/sdf; do [ -b "$d" ] && { readlink -f "$d"; return 0; }; done
	return 1
}
i=0
until disk=$(find_disk); do
	i=$((i + 1)); [ $i -lt 120 ] || { log "volume $HOMES_VOLUME never appeared"; exit 1; }
	sleep 5
done
log "homes volume $HOMES_VOLUME is $disk"

# 3. A filesystem only if the disk has none: blkid -p probes the disk itself (no cache) and
#    reports a filesystem or a partition table. Anything found means students' files may be on
#    it, so it is never formatted again (an existing xfs, ext4 or partitioned disk is mounted
#    or refused, never wiped).
if [ -z "$(blkid -p -o value -s TYPE "$disk" 2>/dev/null)" ] && [ -z "$(blkid -p -o value -s PTTYPE "$disk" 2>/dev/null)" ]; then
	log "new volume: making an xfs filesystem"
	mkfs.xfs -L hubdesk-homes "$disk" 2>/dev/null || mkfs.ext4 -L hubdesk-homes "$disk"
fi
uuid=$(blkid -p -o value -s UUID "$disk" || true)
[ -n "$uuid" ] || { log "$disk has a partition table or no filesystem UUID: refusing to guess, mount it yourself"; exit 1; }
mkdir -p /srv/nfs
grep -q "UUID=$uuid" /etc/fstab || echo "UUID=$uuid /srv/nfs auto defaults,nofail,noatime 0 2" >> /etc/fstab
mountpoint -q /srv/nfs || mount /srv/nfs

# 4. The homes directory belongs to the notebook user (jovyan, 1000:100 in the images): hubdesk
#    runs as that uid on the hub node and creates every home, the notebooks write as it.
mkdir -p /srv/nfs/homes
chown "$HOMES_UID:$HOMES_GID" /srv/nfs/homes
chmod 0755 /srv/nfs/homes

# 5. The export. root_squash (the default, written out): nothing needs root over NFS, because
#    hubdesk manages the homes as their owner uid rather than as root, and the workers' Docker
#    mounts the volumes as root but the notebooks then read and write as uid 1000. Squashing
#    root means a compromised node cannot chown or plant setuid files in a home as root.
#    (AUTH_SYS still trusts client uids: the security group keeps 2049 to camp nodes only.)
#    sync: a write is on disk before it is acknowledged; no_subtree_check: renames of open
#    files (a home reset is a rename into the archive) do not break clients' handles.
mkdir -p /etc/exports.d
echo "/srv/nfs/homes $EXPORT_CIDR(rw,sync,no_subtree_check,root_squash)" > /etc/exports.d/hubdesk.exports
systemctl enable --now "$server"
exportfs -ra
log "exporting /srv/nfs/homes to $EXPORT_CIDR"
