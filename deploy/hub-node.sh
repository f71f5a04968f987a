#!/bin/sh
# hubdesk hub node bootstrap: EC2 user-data, run once as root at first boot (cloud-init).
# `hubdesk aws up` puts the camp's values right below this line (and hubdesk.toml as
# gzip+base64); run by hand, set them in the environment. The deploy kit's other files
# (jupyterhub_config.py with its spawner module, hubdesk.service) come from the hubdesk binary
# itself (`hubdesk hub-files`). Amazon Linux 2023 (dnf) or Ubuntu LTS (apt-get). Safe to re-run.
#
# What it sets up: Docker as the swarm manager with the attachable overlay network hubdesk-camp;
# the NFS export mounted at the homes root /srv/homes; JupyterHub 6.1 in a container on that
# network (SwarmSpawner needs the hub inside it); hubdesk as a systemd service running as the
# notebook uid; nginx with TLS in front of both (443 hub, 8443 hubdesk; self-signed unless
# DOMAIN is set, then Let's Encrypt).
#
# The values (each may also come from the environment):
#   NFS_ADDR        required: the NFS node's private address (its export /srv/nfs/homes)
#   HUBDESK_URL + HUBDESK_SHA256, or SOURCE_URL [+ SOURCE_REF]: where hubdesk comes from
#   NOTEBOOK_IMAGE  the image the workers run (default quay.io/jupyter/scipy-notebook:latest)
#   HUB_IMAGE       the JupyterHub image (default hubdesk/jupyterhub:6.1.1). Used as it is when
#                   the node already has it (baked into the AMI, or `docker load`ed); a name
#                   with a registry host (registry.example/hub:6.1.1) is pulled when missing;
#                   otherwise it is built here from python:3.12-slim-bookworm and PyPI. It must
#                   hold JupyterHub 6.1.x and deploy/hub/requirements.txt's packages.
#   HOMES_UID, HOMES_GID (1000, 100), DOMAIN, EMAIL (Let's Encrypt), HUBDESK_TOML (gzip+base64)
# Packages already installed (an AMI with them baked in, a re-run) are not fetched again.
set -eu
log() { echo "hubdesk-hub: $*" >&2; }
: "${NFS_ADDR:?the private address of the NFS node}"
# The notebook image the workers pull (deploy/notebook/Dockerfile, pushed to a registry).
NOTEBOOK_IMAGE=${NOTEBOOK_IMAGE:-quay.io/jupyter/scipy-notebook:latest}
HUB_IMAGE=${HUB_IMAGE:-hubdesk/jupyterhub:6.1.1}
# It goes into a systemd unit's command line: an image reference, nothing else.
case $HUB_IMAGE in '' | *[!A-Za-z0-9._:/@-]*) log "HUB_IMAGE is not an image reference: $HUB_IMAGE"; exit 1 ;; esac
HOMES_UID=${HOMES_UID:-1000}
HOMES_GID=${HOMES_GID:-100}
HOMES_ROOT=/srv/homes
DOMAIN=${DOMAIN:-}
EMAIL=${EMAIL:-}
unpack() { printf '%s' "$1" | base64 -d | gunzip; }

# 1. Packages: Docker, the NFS client, nginx, openssl, PostgreSQL server binaries (hubdesk's
#    embedded database), git and a compiler only when hubdesk is built from source. Nothing is
#    fetched when every package is installed already (rpm -q / dpkg -s): a baked AMI needs no
#    mirror. The two paths differ only in names: AL2023's curl (curl-minimal) is preinstalled,
#    its python3 has venv (certbot, with DOMAIN), its PostgreSQL binaries are in /usr/bin.
if command -v dnf >/dev/null 2>&1; then
	pkgs="docker nfs-utils nginx openssl postgresql15-server python3 tar gzip"
	[ -n "${HUBDESK_URL:-}" ] || pkgs="$pkgs git gcc"
	rpm -q $pkgs >/dev/null 2>&1 || dnf install -y $pkgs
	PG_BIN=/usr/bin
elif command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	pkgs="docker.io nfs-common nginx openssl postgresql python3-venv curl"
	[ -n "${HUBDESK_URL:-}" ] || pkgs="$pkgs git build-essential"
	dpkg -s $pkgs >/dev/null 2>&1 || { apt-get update -q; apt-get install -y -q $pkgs; }
	systemctl disable --now postgresql >/dev/null 2>&1 || true # hubdesk runs its own
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -n "$PG_BIN" ] || { log "no PostgreSQL server binaries in /usr/lib/postgresql"; exit 1; }
else
	log "neither dnf nor apt-get"; exit 1
fi

# 2. Addresses from the instance metadata (IMDSv2: a token first).
imds() {
	t=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)
	curl -sf -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/meta-data/$1"
}
PRIVATE_IP=$(imds local-ipv4)
PUBLIC_IP=$(imds public-ipv4 || echo "$PRIVATE_IP")
HOST=${DOMAIN:-$PUBLIC_IP}

# 3. Docker, the swarm (this node is its manager) and the notebooks' network.
systemctl enable --now docker
state=$(docker info --format '{{.Swarm.LocalNodeState}}')
# Overlay networks (one per running notebook: the notebooks' sandbox) take their subnets from
# 10.128.0.0/9 by default here, never from 10.0.0.0/8's low half where the camp's VPC is
# (10.42.0.0/16): an overlay on the VPC's addresses would hide the NFS node from the hub.
[ "$state" = active ] || docker swarm init --advertise-addr "$PRIVATE_IP" \
	--default-addr-pool 10.128.0.0/9 --default-addr-pool-mask-length 24
docker network inspect hubdesk-camp >/dev/null 2>&1 ||
	docker network create --driver overlay --attachable hubdesk-camp

# 4. The homes: the NFS node's export at the homes root. hard: a slow server stalls, it never
#    returns errors that look like missing files. The NFS node may still be formatting its
#    volume: retry for up to 15 minutes.
mkdir -p "$HOMES_ROOT"
grep -q " $HOMES_ROOT " /etc/fstab ||
	echo "$NFS_ADDR:/srv/nfs/homes $HOMES_ROOT nfs4 nfsvers=4.1,hard,noatime,_netdev 0 0" >> /etc/fstab
i=0
until mountpoint -q "$HOMES_ROOT" || mount "$HOMES_ROOT"; do
	i=$((i + 1)); [ $i -lt 90 ] || { log "cannot mount $NFS_ADDR:/srv/nfs/homes"; exit 1; }
	sleep 10
done

# 5. The hubdesk binary: a release checked by its SHA-256, or built from source.
if [ ! -x /usr/local/bin/hubdesk ]; then
	if [ -n "${HUBDESK_URL:-}" ]; then
		curl -fsSL -o /tmp/hubdesk "$HUBDESK_URL"
		echo "${HUBDESK_SHA256:?} /tmp/hubdesk" | sha256sum -c - || { log "hubdesk download does not match its sha256"; exit 1; }
		install -m 0755 /tmp/hubdesk /usr/local/bin/hubdesk
	else
		: "${SOURCE_URL:?HUBDESK_URL or SOURCE_URL}"
		curl -fsSL https://sh.rustup.rs | sh -s -- -y --profile minimal
		rm -rf /usr/local/src/hubdesk
		git clone "$SOURCE_URL" /usr/local/src/hubdesk
		git -C /usr/local/src/hubdesk checkout "${SOURCE_REF:-main}"
		(cd /usr/local/src/hubdesk && "$HOME/.cargo/bin/cargo" build --release --locked)
		install -m 0755 /usr/local/src/hubdesk/target/release/hubdesk /usr/local/bin/hubdesk
	fi
fi
# The deploy kit's files of exactly this hubdesk: /etc/jupyterhub/{jupyterhub_config.py,
# hubdesk_spawner.py}, /etc/systemd/system/hubdesk.service.
/usr/local/bin/hubdesk hub-files

# 6. Secrets, made once on the node (never in user-data): the OIDC client secret shared by the
#    hub and hubdesk, the hub's API token for the hubdesk service, the hub's crypt key.
#    /etc/hubdesk is root's, readable by hubdesk's group (hubdesk runs as HOMES_UID:HOMES_GID and
#    must read hubdesk.toml and its secret files; nobody else may).
install -d -m 0750 -o root -g "$HOMES_GID" /etc/hubdesk
umask 077
mkdir -p /etc/jupyterhub /var/lib/jupyterhub
[ -s /etc/hubdesk/hub_oidc ] || openssl rand -hex 32 > /etc/hubdesk/hub_oidc
[ -s /etc/hubdesk/hub_api_token ] || openssl rand -hex 32 > /etc/hubdesk/hub_api_token
[ -s /etc/jupyterhub/crypt_key ] || openssl rand -hex 32 > /etc/jupyterhub/crypt_key
cp /etc/hubdesk/hub_oidc /etc/hubdesk/hub_api_token /etc/jupyterhub/
umask 022

# 7. hubdesk: its configuration (written by `hubdesk aws up`: the cluster desk's worker template),
#    the site's URLs in an environment file, the systemd unit. It runs as the notebook uid, which
#    owns every home, so root squashing on the NFS export does not matter (see hubdesk.service).
[ -n "${HUBDESK_TOML:-}" ] && unpack "$HUBDESK_TOML" > /etc/hubdesk/hubdesk.toml
cat > /etc/hubdesk/env <<ENV
HUBDESK_CONFIG=/etc/hubdesk/hubdesk.toml
HUBDESK_PUBLIC_URL=https://$HOST:8443
HUBDESK_HUB_URL=https://$HOST/hub/
HUBDESK_OIDC_CLIENT_ID=jupyterhub
HUBDESK_OIDC_CLIENT_SECRET_FILE=/etc/hubdesk/hub_oidc
HUBDESK_OIDC_REDIRECT_URIS=https://$HOST/hub/oauth_callback
HUBDESK_HUB_API_TOKEN_FILE=/etc/hubdesk/hub_api_token
HUBDESK_PG_BIN=$PG_BIN
ENV
#    The service's user: the notebook uid must resolve for systemd's User=. Cloud images
#    usually have it (ec2-user on Amazon Linux, admin on Debian, ubuntu on Ubuntu); where no
#    account has that uid, a system account `hubdesk` gets it (no login, no home of its own).
getent passwd "$HOMES_UID" >/dev/null ||
	useradd --system --uid "$HOMES_UID" --gid "$HOMES_GID" --no-create-home \
		--home-dir /var/lib/hubdesk --shell /usr/sbin/nologin hubdesk
mkdir -p /var/lib/hubdesk
chown "$HOMES_UID:$HOMES_GID" /var/lib/hubdesk
chown "root:$HOMES_GID" /etc/hubdesk/hub_oidc /etc/hubdesk/hub_api_token /etc/hubdesk/env
chmod 0640 /etc/hubdesk/hub_oidc /etc/hubdesk/hub_api_token /etc/hubdesk/env
[ ! -e /etc/hubdesk/hubdesk.toml ] || { chown "root:$HOMES_GID" /etc/hubdesk/hubdesk.toml; chmod 0640 /etc/hubdesk/hubdesk.toml; }
sed -i "s/^User=.*/User=$HOMES_UID/; s/^Group=.*/Group=$HOMES_GID/" /etc/systemd/system/hubdesk.service
# The cluster desk reaches the engine through an allow-list (`hubdesk docker-proxy`, root, its
# own unit), never the raw socket, which is root-equivalent.
rm -f /etc/systemd/system/hubdesk.service.d/docker.conf
/usr/local/bin/hubdesk docker-proxy --print-unit |
	sed "s/^Group=.*/Group=$HOMES_GID/; s/--group [0-9]*/--group $HOMES_GID/" \
	> /etc/systemd/system/hubdesk-docker-proxy.service

# 8. TLS: Let's Encrypt for DOMAIN (after nginx answers the challenge on 80), else a
#    self-signed certificate for the public and private addresses (browsers warn once). It is
#    a server certificate, not a CA (CA:FALSE): the hub and `hubdesk doctor` trust exactly it,
#    and rustls (doctor's client) refuses a CA certificate presented as a server's.
mkdir -p /etc/hubdesk/tls /var/www/acme
case $HOST in *[a-z]*) san="DNS:$HOST" ;; *) san="IP:$HOST" ;; esac
if [ ! -s /etc/hubdesk/tls/cert.pem ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$HOST" \
		-addext "subjectAltName=IP:$PRIVATE_IP,$san" \
		-addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
		-keyout /etc/hubdesk/tls/key.pem -out /etc/hubdesk/tls/cert.pem 2>/dev/null
fi
#    Port 80 answers every host name (~.), not only as the default server: Amazon Linux's
#    nginx.conf has a server of its own on 80 (named _), and a name match wins over it.
conf=/etc/nginx/conf.d/hubdesk.conf
cat > $conf <<NGINX
map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
server { listen 80; server_name ~.;
  location /.well-known/acme-challenge/ { root /var/www/acme; }
  location / { return 301 https://\$host\$request_uri; } }
server { listen 443 ssl; server_name _; client_max_body_size 100m;
  ssl_certificate /etc/hubdesk/tls/cert.pem; ssl_certificate_key /etc/hubdesk/tls/key.pem;
  location / { proxy_pass http://127.0.0.1:8000; proxy_http_version 1.1;
    proxy_set_header Host \$host; proxy_set_header X-Forwarded-Proto https;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \$connection_upgrade;
    proxy_read_timeout 1h; } }
server { listen 8443 ssl; server_name _; client_max_body_size 8m;
  ssl_certificate /etc/hubdesk/tls/cert.pem; ssl_certificate_key /etc/hubdesk/tls/key.pem;
  location / { proxy_pass http://127.0.0.1:8080; proxy_set_header Host \$host:8443;
    proxy_set_header X-Forwarded-Proto https;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }
NGINX
rm -f /etc/nginx/sites-enabled/default
systemctl enable nginx && systemctl restart nginx
if [ -n "$DOMAIN" ] && [ ! -d "/etc/letsencrypt/live/$DOMAIN" ]; then
	python3 -m venv /opt/certbot && /opt/certbot/bin/pip install -q 'certbot>=3,<4'
	if [ -n "$EMAIL" ]; then account="-m $EMAIL"; else account=--register-unsafely-without-email; fi
	/opt/certbot/bin/certbot certonly --webroot -w /var/www/acme -d "$DOMAIN" --agree-tos -n $account
	ln -sf "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" /etc/hubdesk/tls/cert.pem
	ln -sf "/etc/letsencrypt/live/$DOMAIN/privkey.pem" /etc/hubdesk/tls/key.pem
	systemctl reload nginx
fi
if [ -n "$DOMAIN" ]; then
	# Renewal by a systemd timer: Amazon Linux 2023 has no cron daemon.
	cat > /etc/systemd/system/hubdesk-certbot-renew.service <<'UNIT'
[Unit]
Description=Renew the Let's Encrypt certificate (hubdesk)
[Service]
Type=oneshot
ExecStart=/opt/certbot/bin/certbot renew -q --deploy-hook "systemctl reload nginx"
UNIT
	cat > /etc/systemd/system/hubdesk-certbot-renew.timer <<'UNIT'
[Unit]
Description=Renew the Let's Encrypt certificate (hubdesk), daily
[Timer]
OnCalendar=*-*-* 03:00:00
RandomizedDelaySec=1h
Persistent=true
[Install]
WantedBy=timers.target
UNIT
	rm -f /etc/cron.d/certbot # an older bootstrap's
	systemctl daemon-reload
	systemctl enable --now hubdesk-certbot-renew.timer
fi

# 9. JupyterHub 6.1 (pinned; the notebook image's jupyterhub must match) in a container on the
#    overlay network, with deploy/jupyterhub_config.py. It reaches hubdesk through nginx on the
#    private address (the certificate covers it); hubdesk reaches the hub's API on 127.0.0.1:8081.
cp /etc/hubdesk/tls/cert.pem /etc/jupyterhub/hubdesk-ca.pem
# Self-signed: the hub trusts exactly our certificate, which names the private address. With a
# domain, the public chain is trusted and the name is the certificate's.
if [ -n "$DOMAIN" ]; then internal="https://$DOMAIN:8443" ca=""; else internal="https://$PRIVATE_IP:8443" ca=/etc/jupyterhub/hubdesk-ca.pem; fi
#    The image: HUB_IMAGE as the node has it (baked into the AMI, loaded), else pulled when its
#    name has a registry host, else built here (which needs Docker Hub and PyPI).
hub_image_from_registry() {
	registry=${HUB_IMAGE%%/*}
	case $registry in "$HUB_IMAGE") return 1 ;; *.* | *:* | localhost) ;; *) return 1 ;; esac
	log "pulling the JupyterHub image $HUB_IMAGE"
	docker pull -q "$HUB_IMAGE" || { log "cannot pull $HUB_IMAGE: building it here"; return 1; }
}
if docker image inspect "$HUB_IMAGE" >/dev/null 2>&1; then
	log "JupyterHub image $HUB_IMAGE is on the node: no build"
elif ! hub_image_from_registry; then
	log "building the JupyterHub image $HUB_IMAGE"
	mkdir -p /usr/local/src/jupyterhub-image
	cat > /usr/local/src/jupyterhub-image/Dockerfile <<'DOCKERFILE'
FROM python:3.12-slim-bookworm
RUN pip install --no-cache-dir jupyterhub==6.1.1 oauthenticator==17.4.0 dockerspawner==14.0.0 \
    docker==7.2.0 configurable-http-proxy==0.4.0 jupyterhub-idle-culler==2.0.0
CMD ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]
DOCKERFILE
	docker build -q -t "$HUB_IMAGE" /usr/local/src/jupyterhub-image
fi
cat > /etc/jupyterhub/env <<ENV
HUBDESK_URL=https://$HOST:8443
HUBDESK_INTERNAL_URL=$internal
HUB_OAUTH_CA_CERTS=$ca
HUB_PUBLIC_URL=https://$HOST
HUB_OAUTH_CLIENT_SECRET_FILE=/etc/jupyterhub/hub_oidc
HUBDESK_HUB_API_TOKEN_FILE=/etc/jupyterhub/hub_api_token
HUB_CRYPT_KEY_FILE=/etc/jupyterhub/crypt_key
HUB_STATE_DIR=/srv/jupyterhub
HUB_BIND_URL=http://0.0.0.0:8000
HUB_INTERNAL_IP=0.0.0.0
HUB_CONNECT_IP=jupyterhub
HUB_SPAWNER=swarm
HUB_NOTEBOOK_IMAGE=$NOTEBOOK_IMAGE
HUB_SWARM_NETWORK=hubdesk-camp
HUB_HOMES_VOLUME=nfs
HUB_NFS_ADDR=$NFS_ADDR
HUB_NFS_EXPORT=/srv/nfs/homes
ENV
cat > /etc/systemd/system/jupyterhub.service <<UNIT
[Unit]
Description=JupyterHub (hubdesk camp)
After=docker.service
Requires=docker.service
[Service]
ExecStartPre=-/usr/bin/docker rm -f jupyterhub
ExecStart=/usr/bin/docker run --rm --name jupyterhub --network hubdesk-camp --env-file /etc/jupyterhub/env -p 127.0.0.1:8000:8000 -p 127.0.0.1:8081:8081 -v /etc/jupyterhub:/etc/jupyterhub:ro -v /var/lib/jupyterhub:/srv/jupyterhub -v /var/run/docker.sock:/var/run/docker.sock $HUB_IMAGE
ExecStop=/usr/bin/docker stop jupyterhub
Restart=always
# After a reboot the swarm's overlay network takes a few seconds to come back ("network … not
# found"): wait between tries, so five quick failures do not make systemd give up for good.
RestartSec=5
[Install]
WantedBy=multi-user.target
UNIT

# 10. Start both; the one-time setup link goes to the console output, readable with
#     `aws ec2 get-console-output --instance-id …` (no SSH needed) and in hubdesk's journal.
systemctl daemon-reload
systemctl enable --now hubdesk-docker-proxy hubdesk jupyterhub
systemctl restart hubdesk # a re-run: drop a docker group an older bootstrap gave it
i=0
until link=$(journalctl -u hubdesk -o cat | grep -o 'https://[^ ]*/setup[^ ]*' | tail -1) && [ -n "$link" ]; do
	i=$((i + 1))
	restarts=$(systemctl show -p NRestarts --value hubdesk 2>/dev/null || echo 0)
	if [ $i -ge 60 ] || [ "${restarts:-0}" -ge 3 ]; then
		# No link: either an admin exists already (a re-run), or hubdesk does not start. The
		# console is all an organizer without SSH sees: say which, with hubdesk's own words.
		if systemctl is-active --quiet hubdesk && [ "${restarts:-0}" -lt 3 ]; then
			log "hubdesk runs but printed no setup link: an admin exists already (log in at https://$HOST:8443/)"
			exit 0
		fi
		log "hubdesk does not start (restarted ${restarts:-?} times); its last words:"
		journalctl -u hubdesk -o cat -n 25 --no-pager | sed 's/^/hubdesk-hub:   /' >&2
		exit 1
	fi
	sleep 5
done
echo "hubdesk-hub: first-run setup link: $link" > /dev/console
log "first-run setup link: $link"
