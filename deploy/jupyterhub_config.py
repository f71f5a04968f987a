"""JupyterHub configuration for a hub whose users log in through hubdesk (OpenID Connect).

Runs unchanged on a laptop / in the end-to-end tests (everything on 127.0.0.1) and on the cluster:
every site-specific value comes from the environment (see deploy/README.md for the table).

    jupyterhub -f deploy/jupyterhub_config.py

Versions: JupyterHub 6.x, oauthenticator 17.x (GenericOAuthenticator), configurable-http-proxy
(the Node.js one, or the PyPI Python port); with HUB_SPAWNER=swarm also dockerspawner 14.x and
jupyterhub-idle-culler (pins: deploy/hub/requirements.txt).

Required environment:
    HUBDESK_URL                       hubdesk as the browser sees it, e.g. https://desk.example
    HUB_OAUTH_CLIENT_SECRET[_FILE]    the client secret hubdesk has for this hub
    JUPYTERHUB_CRYPT_KEY or HUB_CRYPT_KEY_FILE   32 bytes, hex (auth state is encrypted with it)
"""

import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file


# --------------------------------------------------------------------------------------------
# helpers


def env(name, default=None):
    """$name, or default when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value if value else default


def env_bool(name, default):
    value = env(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: expected true/false")


def env_int(name, default):
    value = env(name)
    return default if value is None else int(value)


def env_list(name, default):
    """Comma- or space-separated list; an explicitly empty-but-set value ("") means the default."""
    value = env(name)
    if value is None:
        return list(default)
    return [item for item in value.replace(",", " ").split() if item]


def env_bytes(name, default):
    """A size like 512M or 1G (powers of 1024; a plain number is bytes)."""
    value = (env(name) or default).strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if value and value[-1] in units:
        return int(float(value[:-1]) * units[value[-1]])
    return int(value)


def env_secret(name, required=False):
    """$NAME, or the content of the file $NAME_FILE (trailing newline stripped)."""
    value = env(name)
    path = env(name + "_FILE")
    if value and path:
        raise ValueError(f"set {name} or {name}_FILE, not both")
    if path:
        value = Path(path).read_text().strip()
    if required and not value:
        raise ValueError(f"{name} (or {name}_FILE) is required")
    return value


def strip_slash(url):
    return url.rstrip("/")


# --------------------------------------------------------------------------------------------
# where things are

# State: the hub's sqlite database and cookie secret. On the cluster this is a persistent volume.
state_dir = Path(env("HUB_STATE_DIR", "/srv/jupyterhub")).resolve()
state_dir.mkdir(parents=True, exist_ok=True)

c.JupyterHub.db_url = env("HUB_DB_URL", f"sqlite:///{state_dir / 'jupyterhub.sqlite'}")
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
# The proxy's pid file is runtime state: it must not outlive the container (or machine) whose
# pid it names. Kept in the persistent state dir, a hub container started again after a reboot
# of the hub node read "proxy still running at pid=10", a pid of its own new container, and
# killed it (itself, at times) until the pids happened to differ (seen in tests/e2e/test_zero.py).
runtime_dir = Path(env("HUB_RUNTIME_DIR", tempfile.gettempdir()))
c.ConfigurableHTTPProxy.pid_file = str(
    runtime_dir / f"jupyterhub-proxy-{hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]}.pid")

# Public side (the proxy): where browsers connect, directly or through a load balancer.
c.JupyterHub.bind_url = env("HUB_BIND_URL", "http://127.0.0.1:8000")
# The hub's own API server (the proxy and the single-user servers talk to it).
c.JupyterHub.hub_ip = env("HUB_INTERNAL_IP", "127.0.0.1")
c.JupyterHub.hub_port = env_int("HUB_INTERNAL_PORT", 8081)
if env("HUB_CONNECT_IP"):
    # What single-user containers use to reach the hub (a service name on a Swarm network).
    c.JupyterHub.hub_connect_ip = env("HUB_CONNECT_IP")

# The URL of the hub in users' browsers; only used to build the OAuth callback URL.
hub_public_url = strip_slash(env("HUB_PUBLIC_URL", c.JupyterHub.bind_url))

# configurable-http-proxy: the hub starts it. Default: the `configurable-http-proxy` next to this
# Python (the PyPI port installed in the same venv), else the one on PATH.
c.ConfigurableHTTPProxy.api_url = env("HUB_PROXY_API_URL", "http://127.0.0.1:8001")
proxy_command = env("HUB_PROXY_COMMAND")
if proxy_command:
    c.ConfigurableHTTPProxy.command = shlex.split(proxy_command)
else:
    sibling = Path(sys.executable).parent / "configurable-http-proxy"
    c.ConfigurableHTTPProxy.command = [
        str(sibling) if sibling.exists() else (shutil.which("configurable-http-proxy") or "configurable-http-proxy"),
        # How long the proxy waits for a target's answer. The Python port buffers every answer
        # whole, the spawn page's progress stream included, and tornado's default is 20 s: a
        # server slower to start (a worker's first pull of the notebook image, a class logging
        # in at once) left the student on "Your server is starting up" with a 503 behind the
        # page (seen in tests/e2e/test_camp.py under load). Longer than any start the hub
        # allows (start_timeout + http_timeout below).
        "--proxy-timeout", str(int(env("HUB_PROXY_TIMEOUT_SECS", "600")) * 1000),
    ]
# debug | info | warn | error; the Python port rejects "warn" (it wants "warning"), so keep "info"
# unless the proxy in use is known to accept the value.
c.ConfigurableHTTPProxy.log_level = env("HUB_PROXY_LOG_LEVEL", "info")

c.Application.log_level = env("HUB_LOG_LEVEL", "INFO").upper()


# --------------------------------------------------------------------------------------------
# login through hubdesk (OpenID Connect, authorization code + PKCE)

hubdesk_url = env("HUBDESK_URL")
if not hubdesk_url:
    raise ValueError("HUBDESK_URL is required (hubdesk's URL as the browser sees it)")
hubdesk_url = strip_slash(hubdesk_url)
# Server-to-server calls (token, userinfo) may take a shorter path, e.g. http://hubdesk:8080 on the
# cluster network. Browser redirects (authorize, logout) always use HUBDESK_URL.
hubdesk_internal_url = strip_slash(env("HUBDESK_INTERNAL_URL", hubdesk_url))

c.JupyterHub.authenticator_class = "generic-oauth"
auth = c.GenericOAuthenticator

auth.login_service = env("HUB_LOGIN_SERVICE", "hubdesk")
auth.authorize_url = f"{hubdesk_url}/oauth/authorize"
auth.token_url = f"{hubdesk_internal_url}/oauth/token"
auth.userdata_url = f"{hubdesk_internal_url}/oauth/userinfo"
# The hub's logout only clears the hub's cookie; hubdesk's end-session endpoint ends the hubdesk
# session and revokes the hub's tokens, so the next login asks for the password again.
auth.logout_redirect_url = env("HUB_LOGOUT_REDIRECT_URL", f"{hubdesk_url}/oauth/logout")

auth.client_id = env("HUB_OAUTH_CLIENT_ID", "jupyterhub")
auth.client_secret = env_secret("HUB_OAUTH_CLIENT_SECRET", required=True)
auth.oauth_callback_url = env("HUB_OAUTH_CALLBACK_URL", f"{hub_public_url}/hub/oauth_callback")
# false: client_secret_post (id and secret in the form); true: client_secret_basic.
auth.basic_auth = env_bool("HUB_OAUTH_BASIC_AUTH", False)
auth.enable_pkce = True
auth.scope = env_list("HUB_OAUTH_SCOPE", ["openid", "profile", "groups"])
auth.validate_server_cert = env_bool("HUB_OAUTH_VALIDATE_CERT", True)
if env("HUB_OAUTH_CA_CERTS"):
    auth.http_request_kwargs = {"ca_certs": env("HUB_OAUTH_CA_CERTS")}

# Identity: hubdesk's userinfo is {sub, preferred_username, name, groups}. The hub lowercases
# user names (hubdesk's are already lowercase).
auth.username_claim = "preferred_username"

# Groups come from userinfo's `groups` (stored in auth_state["oauth_user"]) and become JupyterHub
# groups, refreshed at each login and auth refresh.
auth.manage_groups = True
auth.auth_state_groups_key = "oauth_user.groups"
auth.allowed_groups = set(env_list("HUB_ALLOWED_GROUPS", ["students", "counselors", "admins"]))
auth.admin_groups = set(env_list("HUB_ADMIN_GROUPS", ["admins"]))
auth.allow_all = False
auth.allow_existing_users = False


# Counselors an admin gave some cohorts (hubdesk's staff page) carry `cohort-<slug>-staff` in
# their groups, one per cohort. At login each such group gets the role of the same name: stop,
# start and open the servers of that cohort's students (group `cohort-<slug>`), no one else's.
# Membership follows the claim at every login and auth refresh (manage_groups), so a cohort an
# admin takes away is gone from the hub at the counselor's next refresh.
COHORT_STAFF = re.compile(r"^cohort-([a-z0-9][a-z0-9-]*)-staff$")


def cohort_staff_scopes(slug):
    return [f"admin:servers!group=cohort-{slug}", f"access:servers!group=cohort-{slug}"]


def grant_cohort_staff_roles(authenticator, handler, auth_model):
    from jupyterhub import orm, roles

    db = handler.db
    for name in (auth_model or {}).get("groups") or []:
        m = COHORT_STAFF.match(name)
        if not m:
            continue
        description = f"counselors of cohort {m.group(1)}: its students' servers"
        # managed_by_auth: kept when the hub restarts (load_roles does not name it)
        spec = {"name": name, "description": description, "managed_by_auth": True,
                "scopes": cohort_staff_scopes(m.group(1))}
        roles.create_role(db, spec, commit=False)
        group = orm.Group.find(db, name)
        if group is None:
            group = orm.Group(name=name)
            db.add(group)
        roles.grant_role(db, entity=group, role=name, commit=False)
    db.commit()
    return auth_model


auth.post_auth_hook = grant_cohort_staff_roles

# Keep tokens (encrypted) so the hub can re-check the account with hubdesk: every
# auth_refresh_age seconds on a browser request, and before each spawn. A disabled account or
# revoked token ends the hub session at the next check.
auth.enable_auth_state = True
auth.auth_refresh_age = env_int("HUB_AUTH_REFRESH_AGE", 300)
auth.refresh_pre_spawn = True
crypt_key_file = env("HUB_CRYPT_KEY_FILE")
if crypt_key_file:
    c.CryptKeeper.keys = [Path(crypt_key_file).read_text().strip()]
elif not env("JUPYTERHUB_CRYPT_KEY"):
    raise ValueError("JUPYTERHUB_CRYPT_KEY or HUB_CRYPT_KEY_FILE is required (32 bytes, hex)")

# Straight to hubdesk instead of a "Sign in with hubdesk" button page.
auth.auto_login = env_bool("HUB_AUTO_LOGIN", True)


# --------------------------------------------------------------------------------------------
# hubdesk as a hub service (hubdesk lists users and their servers, starts and stops servers)

# The token hubdesk sends (`Authorization: token …`); hubdesk reads the same value from its
# `[hub] api_token` / `api_token_file` (or the same HUBDESK_HUB_API_TOKEN[_FILE] variables).
# HUB_SERVICE_TOKEN[_FILE] is the older name of the same thing.
hubdesk_service_token = env_secret("HUBDESK_HUB_API_TOKEN") or env_secret("HUB_SERVICE_TOKEN")
# Services and their roles; the sections below (idle culling) add theirs, HUB_EXTRA_CONFIG may
# append more (c.JupyterHub.services.append(...)).
services = []
roles = []
if hubdesk_service_token:
    services.append({"name": "hubdesk", "api_token": hubdesk_service_token, "display": False})
    # Exactly what hubdesk calls, measured against JupyterHub 6.1.1 (tests/api/hub.rs proves each
    # call works with this role and nothing more):
    #   list:users      GET  /hub/api/users (paginated)        — the student list
    #   read:users      the user model's name, admin, last_activity, pending (read:users also
    #                   covers groups/roles/created, which hubdesk itself issues as the IdP)
    #   read:servers    the user model's `servers` (started, last_activity, pending, ready, url),
    #                   and GET /hub/api/users/{name}/server/progress: why a start failed
    #   start:servers   POST   /hub/api/users/{name}/server    — start a cohort before class
    #   delete:servers  DELETE /hub/api/users/{name}/server    — stop (reset, disable)
    # In 6.x `servers` is exactly read:servers + start:servers + delete:servers; the three are
    # spelled out so the role says what each call needs (JupyterHub 5 has no start:servers and
    # would refuse this role: there, `servers` is the one scope for start and stop). Nothing
    # else: no access:servers (entering a student's notebook), no admin:users (creating or
    # deleting hub users), no admin:auth_state (the tokens the hub holds).
    roles.append(
        {
            "name": "hubdesk",
            "description": "hubdesk: see users and their servers, start and stop servers",
            "scopes": ["list:users", "read:users", "read:servers", "start:servers", "delete:servers"],
            "services": ["hubdesk"],
        }
    )


# --------------------------------------------------------------------------------------------
# single-user servers

# HUB_SPAWNER is a JupyterHub spawner entry point name or a dotted class path. The default,
# "simple" (SimpleLocalProcessSpawner), runs jupyterhub-singleuser as the hub's own OS user and
# needs jupyterlab installed next to the hub: a single-machine / development setup.
# HUB_SPAWNER=swarm is the camp: every student's server is a Docker Swarm service on a worker
# node, configured from the environment by the section below. Any other value is used as is
# (e.g. dockerspawner.SwarmSpawner with your own settings in HUB_EXTRA_CONFIG).
spawner = env("HUB_SPAWNER", "simple")
use_swarm = spawner == "swarm"
c.JupyterHub.spawner_class = spawner  # the swarm section below replaces it with its subclass

# How long a spawn may take: until the spawner says "started" (the Swarm task running: image
# present on the node, home mounted), then until the server answers over HTTP. JupyterHub's own
# defaults (60 s / 30 s) unless set; the swarm section raises them (25 students at once).
start_timeout = env_int("HUB_SPAWN_START_TIMEOUT", 180 if use_swarm else None)
http_timeout = env_int("HUB_SPAWN_HTTP_TIMEOUT", 120 if use_swarm else None)
if start_timeout is not None:
    c.Spawner.start_timeout = start_timeout
if http_timeout is not None:
    c.Spawner.http_timeout = http_timeout

# hubdesk's user names (domain::Username): one safe path component and a safe volume-name part.
# The hub's names come from hubdesk's userinfo; anything else is refused before a mount is built.
USERNAME = re.compile(r"[a-z][a-z0-9-]{0,31}")


def home_volume_options(username):
    """The `local` volume driver options that mount this student's home, from the environment.

    nfs  (production): the kernel's NFS client on the worker mounts HUB_NFS_ADDR:HUB_NFS_EXPORT/<user>
    bind (tests):      the same `local` volume shape with bind options, HUB_HOMES_ROOT/<user> on the
                       worker (the tests bind-mount one host directory into every node)
    The home directory must exist (hubdesk creates it, owned by the notebook uid); Docker refuses to
    mount a missing one and the spawn fails: nothing is created or written here.
    """
    if not USERNAME.fullmatch(username):
        raise ValueError(f"refusing to mount a home for user name {username!r}: not a hubdesk user name")
    if homes_volume == "nfs":
        return {
            "type": "nfs",
            "o": f"addr={nfs_addr},{nfs_options}",
            "device": f":{nfs_export}/{username}",
        }
    return {"type": "none", "o": "bind", "device": f"{homes_root}/{username}"}


def home_volume_name(escaped_username, options):
    """home-<escaped user>-<10 hex of the options>.

    Docker silently reuses an existing volume of the same name with the options it was created
    with (`local` volumes are per node, and a worker keeps them after the service is gone). With
    the options' digest in the name, a volume found under that name has exactly these options;
    after a change (another NFS address, export or mount options) the next spawn gets a new
    volume instead of silently mounting the old place. Superseded volumes hold no data (the data
    is on the NFS export / homes root), Docker refuses to remove one in use, and removing one
    only forgets its mount options.
    """
    digest = hashlib.sha256(json.dumps({"driver": "local", "options": options}, sort_keys=True).encode())
    return f"home-{escaped_username}-{digest.hexdigest()[:10]}"


if use_swarm:
    # The spawner class lives in hubdesk_spawner.py, next to this file (`hubdesk hub-config DIR`
    # writes both): config here, code there.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from docker.types import DriverConfig, Mount
    from hubdesk_spawner import HubdeskAnnouncements, HubdeskSwarmSpawner, UncachedResolver

    def required(name, meaning):
        value = env(name)
        if not value:
            raise ValueError(f"{name} is required with HUB_SPAWNER=swarm ({meaning})")
        return value

    c.JupyterHub.spawner_class = HubdeskSwarmSpawner

    # hubdesk's announcements (its /announcements page) on the hub's pages, for the people each
    # is for: the hub asks hubdesk every HUB_ANNOUNCEMENTS_EVERY seconds with its client
    # credentials (HubdeskAnnouncements, beside the spawner class). HUB_ANNOUNCEMENTS=false
    # leaves the hub's pages alone.
    if env_bool("HUB_ANNOUNCEMENTS", True):
        c.JupyterHub.template_vars = {
            "announcement": HubdeskAnnouncements(
                f"{hubdesk_internal_url}/oauth/announcements",
                auth.client_id,
                auth.client_secret,
                hubdesk_url=hubdesk_url,
                every=env_int("HUB_ANNOUNCEMENTS_EVERY", 15),
                ca_certs=env("HUB_OAUTH_CA_CERTS", ""),
                validate_cert=auth.validate_server_cert,
            ).for_user,
        }

    swarm = c.SwarmSpawner  # HubdeskSwarmSpawner reads SwarmSpawner's (and DockerSpawner's) settings
    swarm.image = required("HUB_NOTEBOOK_IMAGE", "the notebook image, present on every worker")
    # The command, not the image's CMD: with cmd unset, dockerspawner inspects the image on the
    # manager's engine (the hub's), where it need not exist (workers run it, pull_policy is
    # "skip" for Swarm).
    swarm.cmd = shlex.split(env("HUB_NOTEBOOK_CMD", "jupyterhub-singleuser"))
    # The hub's own attachable overlay network. Each server runs on a network of its own
    # (hubdesk-nb-<escaped user>, made at start, removed at stop) that the spawner connects the
    # hub's container to: the hub and the proxy reach each server at
    # http://jupyter-<escaped user>:8888 (use_internal_ip: the service name, nothing published),
    # and no server shares a network with another student's.
    swarm.network_name = required("HUB_SWARM_NETWORK", "an attachable overlay network the hub is on")
    swarm.use_internal_ip = True
    if not env("HUB_CONNECT_IP"):
        raise ValueError(
            "HUB_CONNECT_IP is required with HUB_SPAWNER=swarm: the hub container's name, which "
            "the notebook servers call back on their networks"
        )

    # The sandbox (deploy/hub/hubdesk_spawner.py; ARCHITECTURE.md "The student is the
    # adversary"): uid 1000, no capabilities, no-new-privileges, no privileged ports, a
    # read-only root with a bounded /tmp, a pids limit, bounded logs, a network of one's own.
    sandbox = c.HubdeskSwarmSpawner
    sandbox.hub_container = env("HUB_CONTAINER", env("HUB_CONNECT_IP"))
    sandbox.pids_limit = env_int("HUB_PIDS_LIMIT", 1024)
    sandbox.tmp_size = env_bytes("HUB_TMP_SIZE", "1G")
    sandbox.log_max_size = env("HUB_LOG_MAX_SIZE", "10m")
    sandbox.log_max_file = env_int("HUB_LOG_MAX_FILES", 3)
    sandbox.stop_wait_secs = env_int("HUB_STOP_WAIT_SECS", 30)
    # vip: the service name resolves to a virtual IP balanced by the kernel's IPVS (EC2 kernels
    # have it). dnsrr: the name resolves to the task's own address; for kernels without IPVS,
    # where a VIP resolves but connections hang (tests/swarm/README.md).
    endpoint_mode = env("HUB_SWARM_ENDPOINT_MODE", "vip")
    if endpoint_mode not in ("vip", "dnsrr"):
        raise ValueError(f"HUB_SWARM_ENDPOINT_MODE={endpoint_mode!r}: expected vip or dnsrr")
    swarm.extra_endpoint_spec = {"mode": endpoint_mode}
    # Placement: comma-separated Swarm constraints; default: never on the manager (the hub node).
    swarm.extra_placement_spec = {
        "constraints": [item.strip() for item in env("HUB_SWARM_CONSTRAINTS", "node.role==worker").split(",") if item.strip()]
    }
    # Resources. Limits cap a server; guarantees are Swarm reservations: the scheduler places a
    # task only on a node with that much unreserved memory/CPU (else the task stays pending, and
    # the spawn fails after HUB_SPAWN_START_TIMEOUT). hubdesk's capacity figure
    # ([cluster] notebook_memory_bytes, default 2 GiB) should equal HUB_MEM_GUARANTEE. No CPU
    # reservation by default: notebooks idle most of the time, and a reservation would cap the
    # students per node at cores / guarantee.
    swarm.mem_limit = env("HUB_MEM_LIMIT", "2G")
    swarm.mem_guarantee = env("HUB_MEM_GUARANTEE", "2G")
    cpu_limit = env("HUB_CPU_LIMIT", "2")
    cpu_guarantee = env("HUB_CPU_GUARANTEE", "0")
    swarm.cpu_limit = float(cpu_limit) if float(cpu_limit) > 0 else None
    swarm.cpu_guarantee = float(cpu_guarantee) if float(cpu_guarantee) > 0 else None
    # Each cohort's profile (its page on hubdesk) overrides the three above at each start;
    # HUB_COHORT_PROFILES=false keeps them for everyone.
    if env_bool("HUB_COHORT_PROFILES", True):
        sandbox.profile_url = f"{hubdesk_internal_url}/oauth/profile"
        sandbox.profile_client_id = auth.client_id
        sandbox.profile_client_secret = auth.client_secret
        sandbox.profile_validate_cert = auth.validate_server_cert
        sandbox.profile_ca_certs = env("HUB_OAUTH_CA_CERTS", "")
    # Name lookups of the hub's own HTTP client: uncached (see UncachedResolver's docstring; a
    # restarted server has a new address under the same name).
    c.JupyterHubHTTPClient.connector_options = {"resolver": UncachedResolver(), "use_dns_cache": False}

    # A hub restart must not stop every student's server: the services keep running and the
    # restarted hub finds them again (their state is in the hub's database).
    c.JupyterHub.cleanup_servers = env_bool("HUB_CLEANUP_SERVERS", False)

    # Homes: nfs (production) or bind (tests, the same mount shape with bind options).
    homes_volume = env("HUB_HOMES_VOLUME", "nfs")
    if homes_volume == "nfs":
        nfs_addr = required("HUB_NFS_ADDR", "the NFS server's address, as the workers reach it")
        nfs_export = required("HUB_NFS_EXPORT", "the exported homes directory, e.g. /srv/nfs/homes").rstrip("/")
        nfs_options = env("HUB_NFS_OPTIONS", "nfsvers=4.1,rw,hard")
    elif homes_volume == "bind":
        homes_root = required("HUB_HOMES_ROOT", "the homes directory as every worker sees it").rstrip("/")
        if not homes_root.startswith("/"):
            raise ValueError(f"HUB_HOMES_ROOT={homes_root!r}: expected an absolute path")
    else:
        raise ValueError(f"HUB_HOMES_VOLUME={homes_volume!r}: expected nfs or bind")

    def swarm_pre_spawn_hook(spawner):
        """Per-student parts of the service: the hubdesk.user label and the home mount.

        SwarmSpawner 14 applies extra_create_kwargs / extra_container_spec as plain dict updates
        (no templating, no callables), so the per-user values are set on this spawner here,
        before start(). The documented volume_driver route builds bind mounts, which Swarm
        refuses with a driver config: the home is a `volume` mount of a `local` volume instead.
        """
        name = spawner.user.name
        options = home_volume_options(name)
        home = Mount(
            target="/home/jovyan",
            source=home_volume_name(spawner.escaped_name, options),
            type="volume",
            read_only=False,
            # never let Docker copy the image's /home/jovyan into the home on first use
            no_copy=True,
            labels={"hubdesk.user": name},
            driver_config=DriverConfig("local", options),
        )
        labels = {"hubdesk.user": name}
        create = dict(spawner.extra_create_kwargs or {})
        create["labels"] = {**create.get("labels", {}), **labels}  # the service (hubdesk's cluster page)
        spawner.extra_create_kwargs = create
        container = dict(spawner.extra_container_spec or {})
        container["labels"] = {**container.get("labels", {}), **labels}  # the task's container
        # (docker.types.Mount is a dict; a mount configured elsewhere for the same target is replaced)
        others = [m for m in container.get("mounts", []) if m.get("Target") != "/home/jovyan"]
        container["mounts"] = others + [home]
        spawner.extra_container_spec = container

    c.Spawner.pre_spawn_hook = swarm_pre_spawn_hook


# Idle culling: jupyterhub-idle-culler as a hub-managed service that stops servers idle for
# HUB_CULL_IDLE_SECS (0 = off; default 3600 with the swarm spawner, off otherwise). Stopping a
# server removes its service; the home stays. Its role has what the culler calls, nothing more:
# list users, read their activity and servers, stop servers (no admin:users: users are never
# deleted, --cull-users is not passed).
cull_idle_secs = env_int("HUB_CULL_IDLE_SECS", 3600 if use_swarm else 0)
if cull_idle_secs < 0:
    raise ValueError(f"HUB_CULL_IDLE_SECS={cull_idle_secs}: expected seconds >= 0 (0 = off)")
if cull_idle_secs:
    if importlib.util.find_spec("jupyterhub_idle_culler") is None:
        raise ValueError("HUB_CULL_IDLE_SECS is set but jupyterhub-idle-culler is not installed next to the hub")
    cull_every = env_int("HUB_CULL_EVERY_SECS", max(10, min(300, cull_idle_secs // 2)))
    services.append(
        {
            "name": "idle-culler",
            "command": [
                sys.executable,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={cull_idle_secs}",
                f"--cull-every={cull_every}",
            ],
            "display": False,
        }
    )
    roles.append(
        {
            "name": "idle-culler",
            "description": "stop servers idle for longer than HUB_CULL_IDLE_SECS",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }
    )

if services:
    c.JupyterHub.services = services
if roles:
    c.JupyterHub.load_roles = roles


# --------------------------------------------------------------------------------------------
# site-specific additions (spawner settings, extra services...), loaded last

extra_config = env("HUB_EXTRA_CONFIG")
if extra_config:
    load_subconfig(extra_config)  # noqa: F821 - provided by JupyterHub's config loader
