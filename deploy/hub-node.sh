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
set -eu
log() { echo "hubdesk-hub: $*" >&2; }
: "${NFS_ADDR:?the private address of the NFS node}"
# The notebook image the workers pull (deploy/notebook/Dockerfile, pushed to a registry).
NOTEBOOK_IMAGE=${NOTEBOOK_IMAGE:-quay.io/jupyter/scipy-notebook:latest}
HOMES_UID=${HOMES_UID:-1000}
HOMES_GID=${HOMES_GID:-100}
HOMES_ROOT=/srv/homes
DOMAIN=${DOMAIN:-}
EMAIL=${EMAIL:-}
unpack() { printf '%s' "$1" | base64 -d | gunzip; }

# 1. Packages: Docker, the NFS client, nginx, openssl, PostgreSQL server binaries (hubdesk's
#    embedded database), git and a compiler only when hubdesk is built from source.
if command -v dnf >/dev/null 2>&1; then
	pkgs="docker nfs-utils nginx openssl postgresql15-server python3 tar gzip"
	[ -n "${HUBDESK_URL:-}" ] || pkgs="$pkgs git gcc"
	dnf install -y $pkgs
	PG_BIN=/usr/bin
elif command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	pkgs="docker.io nfs-common nginx openssl postgresql python3-venv curl"
	[ -n "${HUBDESK_URL:-}" ] || pkgs="$pkgs git build-essential"
	apt-get update -q && apt-get install -y -q $pkgs
	systemctl disable --now postgresql >/dev/null 2>&1 || true # hubdesk runs its own
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
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
#    self-signed certificate for the public and private addresses (browsers warn once).
mkdir -p /etc/hubdesk/tls /var/www/acme
case $HOST in *[a-z]*) san="DNS:$HOST" ;; *) san="IP:$HOST" ;; esac
if [ ! -s /etc/hubdesk/tls/cert.pem ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$HOST" \
		-addext "subjectAltName=IP:$PRIVATE_IP,$san" \
		-keyout /etc/hubdesk/tls/key.pem -out /etc/hubdesk/tls/cert.pem 2>/dev/null
fi
conf=/etc/nginx/conf.d/hubdesk.conf
cat > $conf <<NGINX
map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
server { listen 80; server_name _;
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
	echo "0 3 * * * root /opt/certbot/bin/certbot renew -q --deploy-hook 'systemctl reload nginx'" > /etc/cron.d/certbot
	systemctl reload nginx
fi

# 9. JupyterHub 6.1 (pinned; the notebook image's jupyterhub must match) in a container on the
#    overlay network, with deploy/jupyterhub_config.py. It reaches hubdesk through nginx on the
#    private address (the certificate covers it); hubdesk reaches the hub's API on 127.0.0.1:8081.
cp /etc/hubdesk/tls/cert.pem /etc/jupyterhub/hubdesk-ca.pem
# Self-signed: the hub trusts exactly our certificate, which names the private address. With a
# domain, the public chain is trusted and the name is the certificate's.
if [ -n "$DOMAIN" ]; then internal="https://$DOMAIN:8443" ca=""; else internal="https://$PRIVATE_IP:8443" ca=/etc/jupyterhub/hubdesk-ca.pem; fi
mkdir -p /usr/local/src/jupyterhub-image
cat > /usr/local/src/jupyterhub-image/Dockerfile <<'DOCKERFILE'
FROM python:3.12-slim-bookworm
RUN pip install --no-cache-dir jupyterhub==6.1.1 oauthenticator==17.4.0 dockerspawner==14.0.0 \
    docker==7.2.0 configurable-http-proxy==0.4.0 jupyterhub-idle-culler==2.0.0
CMD ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]
DOCKERFILE
docker build -q -t hubdesk/jupyterhub:6.1.1 /usr/local/src/jupyterhub-image
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
cat > /etc/systemd/system/jupyterhub.service <<'UNIT'
[Unit]
Description=JupyterHub (hubdesk camp)
After=docker.service
Requires=docker.service
[Service]
ExecStartPre=-/usr/bin/docker rm -f jupyterhub
ExecStart=/usr/bin/docker run --rm --name jupyterhub --network hubdesk-camp --env-file /etc/jupyterhub/env -p 127.0.0.1:8000:8000 -p 127.0.0.1:8081:8081 -v /etc/jupyterhub:/etc/jupyterhub:ro -v /var/lib/jupyterhub:/srv/jupyterhub -v /var/run/docker.sock:/var/run/docker.sock hubdesk/jupyterhub:6.1.1
ExecStop=/usr/bin/docker stop jupyterhub
Restart=always
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
	i=$((i + 1)); [ $i -lt 60 ] || { log "hubdesk printed no setup link (already set up?)"; exit 0; }
	sleep 5
done
echo "hubdesk-hub: first-run setup link: $link" > /dev/console
log "first-run setup link: $link"
