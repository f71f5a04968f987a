#!/bin/bash
# Build the hubdesk swarm test images offline (no registry: nothing is pulled), cached by a
# content hash of their recipe.
#
#   tests/swarm/images.sh [node|tiny|notebook|hub|sysnode]...   (default: node tiny)
#   tests/swarm/images.sh prune               drop superseded hubdesk-test/* tags and tarballs
#
# node      hubdesk-test/node:<hash12>      Debian bookworm + docker.io: a Docker-in-Docker swarm node
# tiny      hubdesk-test/tiny:<hash12>      busybox-static only: `tiny-serve` (httpd on :8888), a
#                                            stand-in for a notebook container
# notebook  hubdesk-test/notebook:<hash12>  Debian bookworm + /opt/venv from
#                                            deploy/notebook/requirements.txt (jupyterhub-singleuser,
#                                            JupyterLab); user jovyan 1000:100; CMD jupyterhub-singleuser
# hub       hubdesk-test/hub:<hash12>       Debian bookworm + /opt/venv from deploy/hub/requirements.txt
#                                            (JupyterHub, oauthenticator, dockerspawner, the Python CHP,
#                                            idle culler); no config inside: mount/copy
#                                            deploy/jupyterhub_config.py to /etc/jupyterhub/
# sysnode   hubdesk-test/sysnode:<hash12>   Debian bookworm with systemd as PID 1 and the node
#                                            scripts' packages: an instance of `hubdesk aws up`
#                                            (hub node, NFS node) booted by the box's hypervisor;
#                                            cloud-init and NFS stand-ins in images/sysnode/
#
# The hash covers the build function's text, the package list, the files copied in and the apt
# sources; a tag that exists is not rebuilt, and a rootfs tarball under $HUBDESK_IMAGE_CACHE
# (default /var/tmp/hubdesk-images) is imported again without running mmdebstrap.
# Needs root, mmdebstrap (Debian package) and the host's apt sources; the rootfs is built in a
# chroot on the host, so no container networking is involved.
# Last line of stdout (machine-readable; a name not asked for is empty):
#   NODE_IMAGE=hubdesk-test/node:… TINY_IMAGE=hubdesk-test/tiny:… NOTEBOOK_IMAGE=… HUB_IMAGE=…
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMG=$HERE/images
DEPLOY=$(cd "$HERE/../../deploy" && pwd)
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

# Python images: a venv in /opt/venv filled by pip *inside the chroot* (the host's network; pip
# trusts the host's CA bundle, uploaded first), then trimmed. The hook's text is in the hash of
# every image that uses it (helpers_<name>).
venv_hook() { # $1: requirements file inside the rootfs; prints a --customize-hook
	printf '%s' "chroot \"\$1\" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
PIP_DEFAULT_TIMEOUT=180 PIP_ROOT_USER_ACTION=ignore \
sh -euc 'python3 -m venv /opt/venv && /opt/venv/bin/pip install -q -r $1 && rm -f $1 \
&& /opt/venv/bin/pip freeze --all > /opt/venv/requirements.lock'"
}
slim_hook() { # prints a --customize-hook: docs, caches, build leftovers
	printf '%s' 'rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/* \
"$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* "$1"/root/.cache "$1"/tmp/* \
"$1"/opt/venv/share/jupyter/lab/staging "$1"/etc/hostname "$1"/etc/resolv.conf'
}

build_notebook() { # $1: output tar
	mmdebstrap --format=tar --variant=apt --include="$(pkgs "$IMG/notebook.packages")" \
		--customize-hook="upload $HOST_CA /etc/ssl/certs/ca-certificates.crt" \
		--customize-hook="upload $DEPLOY/notebook/requirements.txt /tmp/requirements.txt" \
		--customize-hook="$(venv_hook /tmp/requirements.txt)" \
		--customize-hook='echo "jovyan:x:1000:100:jovyan:/home/jovyan:/bin/bash" >> "$1"/etc/passwd' \
		--customize-hook='echo "jovyan:*:20000:0:99999:7:::" >> "$1"/etc/shadow' \
		--customize-hook='mkdir -p "$1"/home/jovyan && chown 1000:100 "$1"/home/jovyan && chmod 0755 "$1"/home/jovyan' \
		--customize-hook="$(slim_hook)" \
		--customize-hook='find "$1" -xdev -type f -perm /6000 -exec chmod ug-s {} +' \
		"$SUITE" "$1" "$SOURCES"
}
import_notebook() { # $1: tar, $2: tag
	# SwarmSpawner runs the image's CMD (+ its args) when c.Spawner.cmd is unset; the shipped
	# config sets cmd=["jupyterhub-singleuser"] anyway, so both agree.
	docker import \
		-c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		-c 'ENV LANG=C.UTF-8' -c 'ENV HOME=/home/jovyan' -c 'ENV SHELL=/bin/bash' -c 'ENV USER=jovyan' \
		-c 'USER 1000:100' \
		-c 'WORKDIR /home/jovyan' \
		-c 'EXPOSE 8888' \
		-c 'ENTRYPOINT ["/usr/bin/tini", "-g", "--"]' \
		-c 'CMD ["jupyterhub-singleuser"]' \
		-c 'LABEL org.hubdesk.test.image=notebook' \
		"$1" "$2"
}
files_notebook() { echo "$IMG/notebook.packages" "$DEPLOY/notebook/requirements.txt"; }
helpers_notebook() { echo venv_hook slim_hook; }

build_hub() { # $1: output tar
	mmdebstrap --format=tar --variant=apt --include="$(pkgs "$IMG/hub.packages")" \
		--customize-hook="upload $HOST_CA /etc/ssl/certs/ca-certificates.crt" \
		--customize-hook="upload $DEPLOY/hub/requirements.txt /tmp/requirements.txt" \
		--customize-hook="$(venv_hook /tmp/requirements.txt)" \
		--customize-hook='mkdir -p "$1"/etc/jupyterhub "$1"/srv/jupyterhub' \
		--customize-hook="$(slim_hook)" \
		"$SUITE" "$1" "$SOURCES"
}
import_hub() { # $1: tar, $2: tag
	docker import \
		-c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		-c 'ENV LANG=C.UTF-8' \
		-c 'WORKDIR /srv/jupyterhub' \
		-c 'EXPOSE 8000 8081' \
		-c 'ENTRYPOINT ["/usr/bin/tini", "-g", "--"]' \
		-c 'CMD ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]' \
		-c 'LABEL org.hubdesk.test.image=hub' \
		"$1" "$2"
}
files_hub() { echo "$IMG/hub.packages" "$DEPLOY/hub/requirements.txt"; }
helpers_hub() { echo venv_hook slim_hook; }

build_sysnode() { # $1: output tar
	# An EC2 instance of `hubdesk aws up` for the box: systemd as PID 1, the node scripts'
	# packages baked in (no mirror on the box's networks), the box's cloud-init and NFS stand-ins.
	mmdebstrap --format=tar --variant=apt --include="$(pkgs "$IMG/sysnode.packages")" \
		--customize-hook="upload $HOST_CA /etc/ssl/certs/ca-certificates.crt" \
		--customize-hook="copy-in $IMG/sysnode /tmp" \
		--customize-hook='chroot "$1" sh /tmp/sysnode/build-standin-debs' \
		--customize-hook='install -m 0755 "$1"/tmp/sysnode/hubdesk-box-cloud-init "$1"/tmp/sysnode/hubdesk-box-init "$1"/usr/local/sbin/' \
		--customize-hook='install -m 0644 "$1"/tmp/sysnode/hubdesk-box-cloud-init.service "$1"/etc/systemd/system/' \
		--customize-hook='mkdir -p "$1"/etc/systemd/system/docker.service.d "$1"/etc/systemd/system/multi-user.target.wants "$1"/box-nfs' \
		--customize-hook='install -m 0644 "$1"/tmp/sysnode/docker-offline.conf "$1"/etc/systemd/system/docker.service.d/' \
		--customize-hook='ln -sf /etc/systemd/system/hubdesk-box-cloud-init.service "$1"/etc/systemd/system/multi-user.target.wants/' \
		--customize-hook='for u in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service systemd-remount-fs.service systemd-firstboot.service; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
		--customize-hook='chroot "$1" systemctl disable docker.service docker.socket nginx.service postgresql.service containerd.service >/dev/null 2>&1 || true' \
		--customize-hook='rm -rf "$1"/tmp/sysnode' \
		--customize-hook="$(slim_hook)" \
		--customize-hook='rm -f "$1"/etc/machine-id && : > "$1"/etc/machine-id' \
		"$SUITE" "$1" "$SOURCES"
}
import_sysnode() { # $1: tar, $2: tag
	docker import \
		-c 'ENV container=docker' \
		-c 'VOLUME ["/var/lib/docker"]' \
		-c 'ENTRYPOINT ["/usr/local/sbin/hubdesk-box-init"]' \
		-c 'LABEL org.hubdesk.test.image=sysnode' \
		"$1" "$2"
}
files_sysnode() { echo "$IMG/sysnode.packages" "$IMG"/sysnode/*; }
helpers_sysnode() { echo slim_hook; }

# --------------------------------------------------------------------------------------------

hash_of() { # $1: name
	local f
	{
		echo "suite=$SUITE"
		declare -f "build_$1" "import_$1"
		# shellcheck disable=SC2046
		if declare -F "helpers_$1" >/dev/null; then declare -f $("helpers_$1"); fi
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
		trap "rm -f '$tar.tmp'" EXIT
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
	for name in node tiny notebook hub sysnode; do
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
	local names=("$@") n node="" tiny="" notebook="" hub="" sysnode=""
	if [ "${1:-}" = prune ]; then mkdir -p "$CACHE"; exec 9>"$CACHE/.lock"; flock 9; prune; return; fi
	[ ${#names[@]} -gt 0 ] || names=(node tiny)
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9 # one builder at a time (parallel test runs wait here)
	for n in "${names[@]}"; do
		case $n in
			node) node=$(ensure node) ;;
			tiny) tiny=$(ensure tiny) ;;
			notebook) notebook=$(ensure notebook) ;;
			hub) hub=$(ensure hub) ;;
			sysnode) sysnode=$(ensure sysnode) ;;
			*) log "unknown image $n (node|tiny|notebook|hub|sysnode)"; exit 2 ;;
		esac
	done
	echo "NODE_IMAGE=$node TINY_IMAGE=$tiny NOTEBOOK_IMAGE=$notebook HUB_IMAGE=$hub SYSNODE_IMAGE=$sysnode"
}

main "$@"
