#!/bin/bash
# Build the hubdesk swarm test images offline (no registry: nothing is pulled), cached by a
# content hash of their recipe.
#
#   tests/swarm/images.sh [node|tiny]...      (default: both)
#   tests/swarm/images.sh prune               drop superseded hubdesk-test/* tags and tarballs
#
# node  hubdesk-test/node:<hash12>  Debian bookworm + docker.io: a Docker-in-Docker swarm node
# tiny  hubdesk-test/tiny:<hash12>  busybox-static only: `tiny-serve` (httpd on :8888), a
#                                    stand-in for a notebook container
#
# The hash covers the build function's text, the package list, the files copied in and the apt
# sources; a tag that exists is not rebuilt, and a rootfs tarball under $HUBDESK_IMAGE_CACHE
# (default /var/tmp/hubdesk-images) is imported again without running mmdebstrap.
# Needs root, mmdebstrap (Debian package) and the host's apt sources; the rootfs is built in a
# chroot on the host, so no container networking is involved.
# Last line of stdout (machine-readable):  NODE_IMAGE=hubdesk-test/node:… TINY_IMAGE=hubdesk-test/tiny:…
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMG=$HERE/images
CACHE=${HUBDESK_IMAGE_CACHE:-/var/tmp/hubdesk-images}
SOURCES=${HUBDESK_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
SUITE=bookworm
HOST_CA=/etc/ssl/certs/ca-certificates.crt
REPO=hubdesk-test

log() { echo "images.sh: $*" >&2; }

# package list file -> "a,b,c"
pkgs() { sed -e 's/#.*//' "$1" | awk 'NF {print $1}' | paste -sd, -; }

# --- recipes: the text of build_<name> and import_<name> is part of the hash ----------------

build_node() { # $1: output tar
	mmdebstrap --format=tar --variant=apt --include="$(pkgs "$IMG/node.packages")" \
		--customize-hook="upload $HOST_CA /etc/ssl/certs/ca-certificates.crt" \
		--customize-hook="copy-in $IMG/node-entrypoint.sh /usr/local/bin" \
		--customize-hook='chmod 0755 "$1/usr/local/bin/node-entrypoint.sh"' \
		--customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/* "$1"/var/cache/apt/*.bin' \
		--customize-hook='rm -f "$1"/etc/hostname "$1"/etc/resolv.conf' \
		"$SUITE" "$1" "$SOURCES"
}
import_node() { # $1: tar, $2: tag
	docker import \
		-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		-c 'VOLUME ["/var/lib/docker"]' \
		-c 'EXPOSE 2375 2377' \
		-c 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/node-entrypoint.sh"]' \
		-c 'LABEL org.hubdesk.test.image=node' \
		"$1" "$2"
}
files_node() { echo "$IMG/node.packages" "$IMG/node-entrypoint.sh"; }

build_tiny() { # $1: output tar
	# extract only: no dpkg, no apt, no maintainer scripts; busybox provides everything.
	# (customize hooks do not run for --variant=extract: use extract hooks)
	mmdebstrap --format=tar --variant=extract --skip=cleanup --include="$(pkgs "$IMG/tiny.packages")" \
		--extract-hook='rm -rf "$1"/usr/share "$1"/var "$1"/etc/apt "$1"/etc/*' \
		--extract-hook='mkdir -p "$1"/etc "$1"/tmp "$1"/www "$1"/root "$1"/proc "$1"/sys "$1"/dev "$1"/var/tmp && chmod 1777 "$1"/tmp "$1"/var/tmp' \
		--extract-hook='chroot "$1" /bin/busybox --install -s /bin' \
		--extract-hook='printf "root:x:0:0:root:/root:/bin/sh\njovyan:x:1000:100::/home/jovyan:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n" > "$1"/etc/passwd' \
		--extract-hook='printf "root:x:0:\nusers:x:100:\nnogroup:x:65534:\n" > "$1"/etc/group' \
		--extract-hook='echo "<html><body>hubdesk tiny</body></html>" > "$1"/www/index.html' \
		--extract-hook="copy-in $IMG/tiny-serve /bin" \
		--extract-hook='chmod 0755 "$1/bin/tiny-serve"' \
		"$SUITE" "$1" "$SOURCES"
}
import_tiny() { # $1: tar, $2: tag
	docker import \
		-c 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
		-c 'EXPOSE 8888' \
		-c 'CMD ["/bin/tiny-serve"]' \
		-c 'LABEL org.hubdesk.test.image=tiny' \
		"$1" "$2"
}
files_tiny() { echo "$IMG/tiny.packages" "$IMG/tiny-serve"; }

# --------------------------------------------------------------------------------------------

hash_of() { # $1: name
	local f
	{
		echo "suite=$SUITE"
		declare -f "build_$1" "import_$1"
		for f in $("files_$1"); do echo "== ${f##*/}"; cat "$f"; done
		echo "== sources"; cat "$SOURCES"
	} | sha256sum | cut -c1-12
}

ensure() { # $1: name -> prints the tag
	local name=$1 hash tag tar t0
	hash=$(hash_of "$name")
	tag=$REPO/$name:$hash
	if docker image inspect "$tag" >/dev/null 2>&1; then
		log "$tag exists (cached)"
		echo "$tag"; return
	fi
	tar=$CACHE/$name-$hash.tar
	if [ ! -s "$tar" ]; then
		command -v mmdebstrap >/dev/null || { log "mmdebstrap missing: apt-get update && apt-get install -y mmdebstrap"; exit 1; }
		[ -r "$HOST_CA" ] || { log "no $HOST_CA"; exit 1; }
		log "building $name rootfs -> $tar"
		t0=$SECONDS
		rm -f "$tar.tmp"
		trap 'rm -f "$tar.tmp"' EXIT
		TMPDIR=$CACHE "build_$name" "$tar.tmp" >&2
		trap - EXIT
		mv "$tar.tmp" "$tar"
		log "built $name rootfs in $((SECONDS - t0)) s ($(du -h "$tar" | cut -f1))"
	else
		log "reusing $tar"
	fi
	t0=$SECONDS
	"import_$name" "$tar" "$tag" >/dev/null
	log "imported $tag in $((SECONDS - t0)) s ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
	echo "$tag"
}

prune() { # keep only the current hash of each image (and images a container still uses)
	local name keep t f id
	for name in node tiny; do
		keep=$(hash_of "$name")
		for t in $(docker images --format '{{.Repository}}:{{.Tag}}' "$REPO/$name"); do
			if [ "${t##*:}" != "$keep" ] && docker rmi "$t" >/dev/null 2>&1; then log "removed $t"; fi
		done
		for f in "$CACHE/$name"-*.tar; do
			if [ -e "$f" ] && [ "$f" != "$CACHE/$name-$keep.tar" ]; then rm -f "$f"; log "removed $f"; fi
		done
	done
	# `docker save` copies kept by swarm.sh, named by image id
	for f in "$CACHE"/saved-*.tar; do
		[ -e "$f" ] || continue
		id=${f##*/saved-}; id=${id%.tar}
		docker image inspect "sha256:$id" >/dev/null 2>&1 || { rm -f "$f"; log "removed $f"; }
	done
}

main() {
	local names=("$@") n node="" tiny=""
	if [ "${1:-}" = prune ]; then mkdir -p "$CACHE"; exec 9>"$CACHE/.lock"; flock 9; prune; return; fi
	[ ${#names[@]} -gt 0 ] || names=(node tiny)
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9 # one builder at a time (parallel test runs wait here)
	for n in "${names[@]}"; do
		case $n in
			node) node=$(ensure node) ;;
			tiny) tiny=$(ensure tiny) ;;
			*) log "unknown image $n (node|tiny)"; exit 2 ;;
		esac
	done
	echo "NODE_IMAGE=$node TINY_IMAGE=$tiny"
}

main "$@"
