#!/bin/sh
# hubdesk NFS node bootstrap: EC2 user-data, run once as root at first boot (cloud-init).
# `hubdesk aws up` puts the camp's values right below this line; run by hand, set them in the
# environment:  sudo HOMES_VOLUME=vol-0abc EXPORT_CIDR=10.42.0.0/16 sh deploy/nfs-node.sh
#
# Serves the students' homes: the separate EBS volume HOMES_VOLUME (kept by `hubdesk aws down`
# unless --delete-homes) is mounted at /srv/nfs with XFS project quotas and /srv/nfs/homes is
# exported to the camp's network; hubdesk-quota (its script and systemd units ride along as
# gzip+base64 values, or are taken from beside this script) makes each home an XFS project
# with the limit hubdesk sets. Amazon Linux 2023 (dnf) and Ubuntu LTS (apt-get). Safe to re-run.
set -eu
log() { echo "hubdesk-nfs: $*" >&2; }
unpack() { printf '%s' "$1" | base64 -d | gunzip; }
here=$(cd "$(dirname "$0")" 2>/dev/null && pwd || echo /nonexistent)
: "${HOMES_VOLUME:?the homes EBS volume id (vol-…)}"
: "${EXPORT_CIDR:?the network the export is open to (the VPC, e.g. 10.42.0.0/16)}"
HOMES_UID=${HOMES_UID:-1000}
HOMES_GID=${HOMES_GID:-100}

# 1. The NFS server, and xfsprogs (mkfs.xfs, xfs_quota, xfs_io).
if command -v dnf >/dev/null 2>&1; then
	rpm -q nfs-utils xfsprogs >/dev/null 2>&1 || dnf install -y nfs-utils xfsprogs
	server=nfs-server
elif command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	dpkg -s nfs-kernel-server xfsprogs >/dev/null 2>&1 || { apt-get update -q; apt-get install -y -q nfs-kernel-server xfsprogs; }
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
#    or refused, never wiped). A new one is XFS, for its project quotas (a limit per home).
if [ -z "$(blkid -p -o value -s TYPE "$disk" 2>/dev/null)" ] && [ -z "$(blkid -p -o value -s PTTYPE "$disk" 2>/dev/null)" ]; then
	log "new volume: making an xfs filesystem"
	mkfs.xfs -L camp-homes "$disk" # an XFS label has at most 12 characters
fi
uuid=$(blkid -p -o value -s UUID "$disk" || true)
fstype=$(blkid -p -o value -s TYPE "$disk" || true)
[ -n "$uuid" ] || { log "$disk has a partition table or no filesystem UUID: refusing to guess, mount it yourself"; exit 1; }
#    XFS is mounted with prjquota (quotas are switched on at mount time, not on a remount).
#    Any other filesystem (an ext4 volume from an older camp) is mounted without quotas:
#    hubdesk's own guard still holds, but nothing stops a notebook filling the disk.
opts=defaults,nofail,noatime
if [ "$fstype" = xfs ]; then opts=$opts,prjquota; else log "$fstype volume: NO storage limits per home (only XFS has project quotas here)"; fi
mkdir -p /srv/nfs
grep -v "^UUID=$uuid " /etc/fstab > /etc/fstab.hubdesk || true
echo "UUID=$uuid /srv/nfs $fstype $opts 0 2" >> /etc/fstab.hubdesk
mv /etc/fstab.hubdesk /etc/fstab
if [ "$fstype" = xfs ] && mountpoint -q /srv/nfs && ! grep -Eq '^[^ ]+ /srv/nfs xfs [^ ]*(prjquota|pquota)' /proc/mounts; then
	log "/srv/nfs is mounted without project quotas: mounting it again with prjquota"
	exportfs -ua 2>/dev/null || true
	umount /srv/nfs || log "could not unmount /srv/nfs (busy?): quotas start at the next reboot"
fi
quotas=false
[ "$fstype" != xfs ] || quotas=true
if ! mountpoint -q /srv/nfs && ! mount /srv/nfs && [ "$fstype" = xfs ]; then
	# A kernel whose XFS has no quota support (CONFIG_XFS_QUOTA off: "quota support not
	# available in this kernel") refuses prjquota. The homes still come up, without limits
	# per home (hubdesk's own guard still holds): say so loudly rather than serve nothing.
	log "WARNING: this kernel refuses XFS project quotas: mounting the homes WITHOUT storage limits per home"
	sed -i "s|^UUID=$uuid /srv/nfs xfs $opts |UUID=$uuid /srv/nfs xfs ${opts%,prjquota} |" /etc/fstab
	mount /srv/nfs
	quotas=false
fi
mountpoint -q /srv/nfs || { log "/srv/nfs is not mounted"; exit 1; }

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

# 6. Storage limits: hubdesk writes every home's limit to /srv/nfs/homes/.hubdesk-quotas and
#    hubdesk-quota applies them (each home an XFS project; see the script). The path unit runs
#    it when the list changes, the timer every minute (homes reset or restored meanwhile).
if $quotas; then
	install_file() { # name, value from user-data (may be empty), mode, destination
		if [ -n "$2" ]; then unpack "$2" > "$4"; elif [ -f "$here/$1" ]; then cat "$here/$1" > "$4"; else log "no $1 (neither in user-data nor beside this script)"; return 1; fi
		chmod "$3" "$4"
	}
	install_file hubdesk-quota.sh "${HUBDESK_QUOTA_SH:-}" 0755 /usr/local/sbin/hubdesk-quota
	install_file hubdesk-quota.service "${HUBDESK_QUOTA_SERVICE:-}" 0644 /etc/systemd/system/hubdesk-quota.service
	install_file hubdesk-quota.path "${HUBDESK_QUOTA_PATH:-}" 0644 /etc/systemd/system/hubdesk-quota.path
	install_file hubdesk-quota.timer "${HUBDESK_QUOTA_TIMER:-}" 0644 /etc/systemd/system/hubdesk-quota.timer
	systemctl daemon-reload
	systemctl enable --now hubdesk-quota.path hubdesk-quota.timer
	log "storage limits: hubdesk-quota.path and .timer enabled (the first pass runs once hubdesk has written its list)"
fi
