"""JupyterHub configuration for a hub whose users log in through hubdesk (OpenID Connect).

Runs unchanged on a laptop / in the end-to-end tests (everything on 127.0.0.1) and on the cluster:
every site-specific value comes from the environment (see deploy/README.md for the table).

    jupyterhub -f deploy/jupyterhub_config.py

Versions: JupyterHub 6.x, oauthenticator 17.x (GenericOAuthenticator), configurable-http-proxy
(the Node.js one, or the PyPI Python port).

Required environment:
    HUBDESK_URL                       hubdesk as the browser sees it, e.g. https://desk.example
    HUB_OAUTH_CLIENT_SECRET[_FILE]    the client secret hubdesk has for this hub
    JUPYTERHUB_CRYPT_KEY or HUB_CRYPT_KEY_FILE   32 bytes, hex (auth state is encrypted with it)
"""

import os
import shlex
import shutil
import sys
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

# State: the hub's sqlite database, cookie secret and proxy pid file. On the cluster this is a
# persistent volume.
state_dir = Path(env("HUB_STATE_DIR", "/srv/jupyterhub")).resolve()
state_dir.mkdir(parents=True, exist_ok=True)

c.JupyterHub.db_url = env("HUB_DB_URL", f"sqlite:///{state_dir / 'jupyterhub.sqlite'}")
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "jupyterhub-proxy.pid")

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
        str(sibling) if sibling.exists() else (shutil.which("configurable-http-proxy") or "configurable-http-proxy")
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
if hubdesk_service_token:
    c.JupyterHub.services = [
        {"name": "hubdesk", "api_token": hubdesk_service_token, "display": False},
    ]
    # Exactly what hubdesk calls, measured against JupyterHub 6.1.1 (tests/api/hub.rs proves each
    # call works with this role and nothing more):
    #   list:users      GET  /hub/api/users (paginated)        — the student list
    #   read:users      the user model's name, admin, last_activity, pending (read:users also
    #                   covers groups/roles/created, which hubdesk itself issues as the IdP)
    #   read:servers    the user model's `servers` (started, last_activity, pending, ready, url)
    #   start:servers   POST   /hub/api/users/{name}/server    — start a cohort before class
    #   delete:servers  DELETE /hub/api/users/{name}/server    — stop (reset, disable)
    # In 6.x `servers` is exactly read:servers + start:servers + delete:servers; the three are
    # spelled out so the role says what each call needs (JupyterHub 5 has no start:servers and
    # would refuse this role: there, `servers` is the one scope for start and stop). Nothing
    # else: no access:servers (entering a student's notebook), no admin:users (creating or
    # deleting hub users), no admin:auth_state (the tokens the hub holds).
    c.JupyterHub.load_roles = [
        {
            "name": "hubdesk",
            "description": "hubdesk: see users and their servers, start and stop servers",
            "scopes": ["list:users", "read:users", "read:servers", "start:servers", "delete:servers"],
            "services": ["hubdesk"],
        },
    ]


# --------------------------------------------------------------------------------------------
# single-user servers

# HUB_SPAWNER is a JupyterHub spawner entry point name or a dotted class path. The default,
# "simple" (SimpleLocalProcessSpawner), runs jupyterhub-singleuser as the hub's own OS user and
# needs jupyterlab installed next to the hub: a single-machine / development setup. The cluster
# stage sets HUB_SPAWNER=dockerspawner.SwarmSpawner and supplies the image, network and volume
# settings in the file named by HUB_EXTRA_CONFIG.
c.JupyterHub.spawner_class = env("HUB_SPAWNER", "simple")


# --------------------------------------------------------------------------------------------
# site-specific additions (spawner settings, extra services...), loaded last

extra_config = env("HUB_EXTRA_CONFIG")
if extra_config:
    load_subconfig(extra_config)  # noqa: F821 - provided by JupyterHub's config loader
