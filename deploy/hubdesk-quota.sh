#!/bin/sh
# hubdesk-quota: applies hubdesk's storage limits on the NFS node (root; run by
# hubdesk-quota.service, which hubdesk-quota.path starts when hubdesk rewrites its list and
# hubdesk-quota.timer every minute). Installed by deploy/nfs-node.sh as /usr/local/sbin/hubdesk-quota.
#
# hubdesk (on the hub node, as uid 1000 over NFS) writes the complete list of limits to
# $EXPORT/.hubdesk-quotas, atomically (temp file + rename):
#     default 5368709120          bytes for a home that is not listed (0 = no limit)
#     archive .archive 0          the archive directory in the export, and its limit
#     home ana 5368709120         one line per student
#     end 1                       the number of home lines: a list without it is refused whole
# Each home becomes an XFS project of its own (project id kept in $STATE/projid, never reused
# or changed: the id is written into every inode of the home) with a hard block limit; the
# archive is one more project. A notebook mounts only $EXPORT/<user>, so no student sees the
# list; it is parsed as untrusted input all the same: names [a-z][a-z0-9-]{0,31}, canonical
# decimal bytes up to 16 TiB, anything else refused with a log line (never echoed). A list that
# is refused whole (no end record, a wrong count: a torn write) changes nothing.
#
# Why the archive is tagged this way (XFS semantics, fs/xfs/xfs_inode.c, xfs_rename): a rename
# INTO a directory that has the project-inherit flag fails with EXDEV unless the renamed inode
# has that directory's project id ("else the tree quota mechanism would be circumvented").
# hubdesk moves homes with renames: a reset renames $EXPORT/<user> (project P_user) into
# $EXPORT/.archive/<user>/<id>, a restore renames it back, and a new home is prepared under a
# temporary name in $EXPORT and renamed into place. So:
#   - $EXPORT, the archive and its per-user directories never get the inherit flag (this script
#     never tags them): renames into them are allowed whatever the project.
#   - A home is tagged with `xfs_quota project -s` (project id on every inode, inherit flag on
#     every directory), so everything the student creates is charged to P_user.
#   - An archived home (an entry whose top directory still has the inherit flag from its life
#     as a home) is re-tagged to the archive's project, also with `project -s` (it walks with
#     AT_SYMLINK_NOFOLLOW; `xfs_io chproj -R` opens each path and would follow a student's
#     symlink to an inode elsewhere). The inherit flags inside an archived home do no harm:
#     hubdesk never renames anything into an archived home.
#   - An environment archive (hubdesk made its top directory: no inherit flag, only environment
#     names like .local inside) is re-tagged to the STUDENT's project with `xfs_io chproj -R`,
#     which sets no inherit flag: restoring it renames .local back into the home, which has the
#     flag and P_user, so the items must carry P_user. (chproj follows symlinks at the leaves:
#     a planted link can only move an inode into the planting student's own project.) Such an
#     archive counts against the student's limit until it is restored or purged.
#   - A restored home comes back with the archive's project: it is a new inode at
#     $EXPORT/<user> for this script, and is tagged P_user again.
# A home or entry is (re)tagged when its inode is not the one recorded in $STATE/tagged, so a
# second pass with the same list changes nothing. hubdesk rewrites the list after each reset and
# restore, so the re-tagging follows within seconds (the timer catches anything missed).
#
# State lives on the homes filesystem itself ($MOUNT/.hubdesk-quota, outside the export), so a
# rebuilt NFS node keeps the same project ids for the inodes that carry them.
#
# Check by hand:  xfs_quota -P /srv/nfs/.hubdesk-quota/projid -x -c 'report -p -h' /srv/nfs
set -eu
MOUNT=${HUBDESK_QUOTA_MOUNT:-/srv/nfs}
EXPORT=${HUBDESK_QUOTA_EXPORT:-$MOUNT/homes}
STATE=${HUBDESK_QUOTA_STATE:-$MOUNT/.hubdesk-quota}
LIST=$EXPORT/.hubdesk-quotas
MAX_BYTES=17592186044416 # 16 TiB, hubdesk's StorageLimit::MAX
MAX_LIST_BYTES=4194304
FIRST_ID=1000
# hubdesk's ENVIRONMENT (src/homes/mod.rs), by their first component.
ENV_NAMES=' .local .jupyter .ipython .cache .config .pip .pydistutils.cfg .condarc .conda .npm '

log() { echo "hubdesk-quota: $*" >&2; }

valid_user() {
	case $1 in [a-z]*) ;; *) return 1 ;; esac
	case $1 in *[!a-z0-9-]*) return 1 ;; esac
	[ ${#1} -le 32 ]
}

valid_bytes() {
	case $1 in '' | *[!0-9]* | 0?*) return 1 ;; esac
	[ ${#1} -le 14 ] && [ "$1" -le "$MAX_BYTES" ]
}

valid_archive_name() {
	case $1 in . | .. | *[!A-Za-z0-9._-]*) return 1 ;; .*) ;; *) return 1 ;; esac
	[ ${#1} -le 65 ]
}

valid_archive_id() {
	case $1 in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-?*) ;; *) return 1 ;; esac
	case ${1#????????T??????Z-} in *[!a-z0-9-]*) return 1 ;; esac
	[ ${#1} -le 81 ]
}

# xfs_quota with hubdesk's project names and no /etc/projects (its paths would be walked too).
xq() { xfs_quota -D /dev/null -P "$STATE/projid" -x -c "$1" "$MOUNT"; }

# The project id of a name ("hubdesk-ana", "hubdesk_archive"), allocated once: max + 1.
project_id() {
	id=$(awk -F: -v n="$1" '$1 == n { print $2; exit }' "$STATE/projid")
	if [ -z "$id" ]; then
		id=$(awk -F: -v first="$FIRST_ID" 'BEGIN { m = first - 1 } $2 + 0 > m { m = $2 + 0 } END { print m + 1 }' "$STATE/projid")
		printf '%s:%s\n' "$1" "$id" >>"$STATE/projid"
		log "project $id for $1"
	fi
	echo "$id"
}

# Records in $STATE/tagged that "$1" (kind and name: "home ana") is tagged: inode $2, project $3.
record_tag() {
	awk -v k="$1" '($1 " " $2) != k' "$STATE/tagged" >"$STATE/tagged.new"
	echo "$1 $2 $3" >>"$STATE/tagged.new"
	mv "$STATE/tagged.new" "$STATE/tagged"
}

# Records in $STATE/limits that project $1 has the hard limit $2.
record_limit() {
	awk -v k="$1" '$1 != k' "$STATE/limits" >"$STATE/limits.new"
	echo "$1 $2" >>"$STATE/limits.new"
	mv "$STATE/limits.new" "$STATE/limits"
}

# --- the list ----------------------------------------------------------------------------
parse_list() {
	if [ ! -e "$LIST" ]; then
		log "no list at $LIST yet (hubdesk writes it at start): nothing to do"
		exit 0
	fi
	if [ -L "$LIST" ] || [ ! -f "$LIST" ]; then
		log "$LIST is not a regular file: refused, limits unchanged"
		exit 1
	fi
	if [ "$(wc -c <"$LIST")" -gt "$MAX_LIST_BYTES" ]; then
		log "$LIST is larger than $MAX_LIST_BYTES bytes: refused, limits unchanged"
		exit 1
	fi
	DEFAULT='' ARCHIVE_NAME='' ARCHIVE_BYTES='' ended='' homes=0 n=0 bad=0
	: >"$W/list"
	while IFS= read -r line || [ -n "$line" ]; do
		n=$((n + 1))
		case $line in '' | '#'*) continue ;; esac
		if [ -n "$ended" ]; then
			log "line $n: a record after the end: list refused, limits unchanged"
			exit 1
		fi
		set -f
		# shellcheck disable=SC2086 # split the record into words, without globbing
		set -- $line
		set +f
		case "$1 $#" in
		"default 2")
			if valid_bytes "$2"; then DEFAULT=$2; else log "line $n: default: not a byte count up to $MAX_BYTES"; bad=$((bad + 1)); fi ;;
		"archive 3")
			if valid_archive_name "$2" && valid_bytes "$3"; then
				ARCHIVE_NAME=$2 ARCHIVE_BYTES=$3
			else
				log "line $n: archive: not a .name and a byte count: ignored"
				bad=$((bad + 1))
			fi ;;
		"home 3")
			homes=$((homes + 1))
			if ! valid_user "$2"; then
				log "line $n: home: not a username: ignored"
				bad=$((bad + 1))
			elif ! valid_bytes "$3"; then
				log "line $n: home $2: not a byte count up to $MAX_BYTES: ignored"
				bad=$((bad + 1))
			elif awk -v u="$2" '$1 == u { f = 1 } END { exit !f }' "$W/list"; then
				log "line $n: home $2 listed twice: the first line counts"
				bad=$((bad + 1))
			else
				echo "$2 $3" >>"$W/list"
			fi ;;
		"end 2") ended=$2 ;;
		*)
			log "line $n: not a record: ignored"
			bad=$((bad + 1)) ;;
		esac
	done <"$LIST"
	if [ -z "$ended" ] || [ "$ended" != "$homes" ]; then
		log "the list has no end record counting its $homes home lines (a torn write?): refused, limits unchanged"
		exit 1
	fi
	if [ -z "$DEFAULT" ]; then
		log "the list has no valid default: refused, limits unchanged"
		exit 1
	fi
	[ "$bad" -eq 0 ] || log "$bad line(s) of the list refused"
}

# "inode name" of the real directories (never a symlink, never followed) among the names
# given, relative to the directory $1: one stat for all of them.
real_dirs() {
	dir=$1
	shift
	[ $# -gt 0 ] || return 0
	(cd "$dir" && stat -c '%i %f %n' -- "$@") | awk 'length($2) == 4 && substr($2, 1, 1) == "4" { print $1, $3 }'
}

# The homes: every directory in the export named like a user, listed or not.
homes_on_disk() {
	set --
	for p in "$EXPORT"/*; do
		valid_user "${p##*/}" && set -- "$@" "${p##*/}"
	done
	real_dirs "$EXPORT" "$@"
}

# The archive's entries, <user>/<id>, in per-user directories that are real directories.
entries_on_disk() {
	a=$EXPORT/$ARCHIVE_NAME
	users=''
	for p in "$a"/*; do
		valid_user "${p##*/}" && [ -d "$p" ] && [ ! -L "$p" ] && users="$users ${p##*/}"
	done
	set --
	for u in $users; do
		for p in "$a/$u"/*; do
			valid_archive_id "${p##*/}" && set -- "$@" "$u/${p##*/}"
		done
	done
	real_dirs "$a" "$@"
}

# Whether an archive entry is an environment archive: no inherit flag on its top directory
# (hubdesk made it) and nothing but environment names in it.
environment_entry() {
	if xfs_io -r -c 'lsattr -v' "$1" | grep -q 'proj-inherit'; then
		return 1
	fi
	for p in "$1"/* "$1"/.*; do
		name=${p##*/}
		case $name in . | ..) continue ;; esac
		[ -e "$p" ] || [ -L "$p" ] || continue # an unmatched pattern
		case $ENV_NAMES in *" $name "*) ;; *) return 1 ;; esac
	done
	return 0
}

# --- a pass ------------------------------------------------------------------------------
mountpoint -q "$MOUNT" || { log "$MOUNT is not mounted"; exit 1; }
mkdir -p "$STATE"
chmod 0700 "$STATE"
touch "$STATE/projid" "$STATE/tagged" "$STATE/limits"
exec 9>"$STATE/lock"
flock -n 9 || { log "another pass is running"; exit 0; }
if ! xfs_quota -x -c 'state -p' "$MOUNT" 2>/dev/null | grep -q 'Enforcement: ON'; then
	log "project quotas are not enforced on $MOUNT: mount it with prjquota (deploy/nfs-node.sh does); nothing done"
	exit 1
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
parse_list
tagged=0 limited=0 failed=0

# Homes: a project id for each new one, then one join says what to tag and what to limit.
homes_on_disk >"$W/homes"
awk 'FILENAME == ARGV[1] { split($0, a, ":"); have[a[1]] = 1; next }
     !(("hubdesk-" $2) in have) { print $2 }' "$STATE/projid" "$W/homes" >"$W/new"
while read -r name; do project_id "hubdesk-$name" >/dev/null; done <"$W/new"
awk -v def="$DEFAULT" '
	FILENAME == ARGV[1] { split($0, a, ":"); id[a[1]] = a[2]; next }
	FILENAME == ARGV[2] { want[$1] = $2; next }
	FILENAME == ARGV[3] { if ($1 == "home") tag[$2] = $3 " " $4; next }
	FILENAME == ARGV[4] { lim[$1] = $2; next }
	{
		n = $2; i = id["hubdesk-" n]; b = (n in want) ? want[n] : def
		if (tag[n] != $1 " " i) print "tag", n, i, $1
		if (!(i in lim) || lim[i] != b) print "limit", n, i, b
	}' "$STATE/projid" "$W/list" "$STATE/tagged" "$STATE/limits" "$W/homes" >"$W/todo"
while read -r what name id value; do
	if [ "$what" = tag ]; then
		if xq "project -s -p $EXPORT/$name $id" </dev/null >/dev/null; then
			record_tag "home $name" "$value" "$id"
			tagged=$((tagged + 1))
		else
			log "tagging the home of $name (project $id) failed; the next pass tries again"
			failed=$((failed + 1))
		fi
	elif xq "limit -p bhard=$value $id" </dev/null >/dev/null; then
		record_limit "$id" "$value"
		limited=$((limited + 1))
	else
		log "limiting the home of $name (project $id) failed; the next pass tries again"
		failed=$((failed + 1))
	fi
done <"$W/todo"

# The archive: its own project and limit; archived homes re-tagged to it, environment
# archives to their student's project (see the top of this file).
: >"$W/entries"
if [ -n "$ARCHIVE_NAME" ] && [ -d "$EXPORT/$ARCHIVE_NAME" ] && [ ! -L "$EXPORT/$ARCHIVE_NAME" ]; then
	aid=$(project_id hubdesk_archive)
	if ! awk -v k="$aid" -v b="$ARCHIVE_BYTES" '$1 == k && $2 == b { f = 1 } END { exit !f }' "$STATE/limits"; then
		if xq "limit -p bhard=$ARCHIVE_BYTES $aid" </dev/null >/dev/null; then
			record_limit "$aid" "$ARCHIVE_BYTES"
			limited=$((limited + 1))
		else
			log "limiting the archive (project $aid) failed; the next pass tries again"
			failed=$((failed + 1))
		fi
	fi
	entries_on_disk >"$W/entries"
	awk 'FILENAME == ARGV[1] { if ($1 == "entry") t[$2] = $3; next }
	     t[$2] != $1' "$STATE/tagged" "$W/entries" >"$W/new"
	while read -r ino entry; do
		path=$EXPORT/$ARCHIVE_NAME/$entry
		if environment_entry "$path" </dev/null; then
			id=$(project_id "hubdesk-${entry%%/*}")
			xfs_io -r -c "chproj -R $id" "$path" </dev/null >/dev/null && ok=1 || ok=''
		else
			id=$aid
			xq "project -s -p $path $id" </dev/null >/dev/null && ok=1 || ok=''
		fi
		if [ -n "$ok" ]; then
			record_tag "entry $entry" "$ino" "$id"
			tagged=$((tagged + 1))
		else
			log "re-tagging archive $entry (project $id) failed; the next pass tries again"
			failed=$((failed + 1))
		fi
	done <"$W/new"
fi

# Forget what is gone (restored or purged entries, removed homes): the state stays small.
awk 'FILENAME == ARGV[1] { keep["home " $2 " " $1] = 1; next }
     FILENAME == ARGV[2] { keep["entry " $2 " " $1] = 1; next }
     (($1 " " $2 " " $3) in keep)' "$W/homes" "$W/entries" "$STATE/tagged" >"$STATE/tagged.new"
if cmp -s "$STATE/tagged" "$STATE/tagged.new"; then rm -f "$STATE/tagged.new"; else mv "$STATE/tagged.new" "$STATE/tagged"; fi

log "$(wc -l <"$W/homes") homes, $(wc -l <"$W/entries") archive entries: $tagged tagged, $limited limits set, $failed failed"
[ "$failed" -eq 0 ]
