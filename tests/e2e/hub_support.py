"""A real JupyterHub (deploy/jupyterhub_config.py) logging in through a real hubdesk (OIDC).

Fixtures (imported by test_hub_login.py):

- ``oidc_hubdesk``: a second ``hubdesk serve`` of its own (own database / data dir) configured with
  one OIDC client ``jupyterhub`` whose redirect URIs are the callbacks of every hub below, and a
  short access-token TTL (ACCESS_TOKEN_TTL s) so the hub's refresh_token path is exercised.
  The client comes from the env shortcut HUBDESK_OIDC_* (default) or, with
  HUB_E2E_OIDC_CONFIG=toml, from a hubdesk.toml ``[[oidc.clients]]`` entry.
- ``hubs``: ``hubs("default")`` starts (once per session) a JupyterHub from deploy/jupyterhub_config.py
  with the environment of HUB_VARIANTS[name], on its own 127.0.0.1 ports and state dir, and returns a
  :class:`Hub`. The hub's stdout/stderr and hubdesk's are attached to the report of a failing test.

The hub runs from the venv running pytest (``jupyterhub`` and ``configurable-http-proxy`` next to
``sys.executable``). No single-user server is ever spawned: logins use ``next=/hub/home``.

Environment (besides conftest.py's HUBDESK_BIN, DATABASE_URL, HUBDESK_E2E_READY_TIMEOUT):
  HUB_E2E_OIDC_CONFIG     env (default): OIDC client via HUBDESK_OIDC_*; toml: via ./hubdesk.toml
  HUB_E2E_READY_TIMEOUT   seconds to wait for a hub's /hub/api/ (default 60)
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

import conftest as base  # the other helper's fixtures/helpers: reused, not modified
from e2e_support import HubdeskClient, page_replaced

REPO = base.REPO
HUB_CONFIG = REPO / "deploy" / "jupyterhub_config.py"
VENV_BIN = Path(sys.executable).parent
JUPYTERHUB = VENV_BIN / "jupyterhub"
CHP = VENV_BIN / "configurable-http-proxy"

WAIT = 30  # seconds, explicit waits
CLIENT_ID = "jupyterhub"
ACCESS_TOKEN_TTL = 8  # hubdesk's HUBDESK_OIDC__ACCESS_TOKEN_TTL_SECS in these tests
REFRESH_AGE = 2  # the "refresh" hub's auth_refresh_age
HUB_READY_TIMEOUT = float(os.environ.get("HUB_E2E_READY_TIMEOUT", "60"))

# Hub variants: extra environment for deploy/jupyterhub_config.py. Every variant is registered as
# a redirect URI in hubdesk up front; a hub is only started when a test asks for it.
HUB_VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "basic": {"HUB_OAUTH_BASIC_AUTH": "true"},
    "no-counselors": {"HUB_ALLOWED_GROUPS": "students,admins"},
    "refresh": {"HUB_AUTH_REFRESH_AGE": str(REFRESH_AGE)},
}

# Loaded through HUB_EXTRA_CONFIG: a test-only service whose token can read auth_state (the
# tokens the hub holds), so the tests can check what hubdesk does with them.
EXTRA_CONFIG = """\
import os
c.JupyterHub.services.append({"name": "e2e", "api_token": os.environ["E2E_HUB_TOKEN"]})
c.JupyterHub.load_roles.append(
    {"name": "e2e", "scopes": ["admin:users", "admin:auth_state", "read:groups", "tokens", "access:servers"],
     "services": ["e2e"]}
)
"""


# --------------------------------------------------------------------------------------------
# processes


def _stop_group(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL the process group (a hub's proxy, hubdesk's embedded postgres)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(base._free_port())
    return sorted(ports)


# --------------------------------------------------------------------------------------------
# hubdesk with an OIDC client


@dataclass
class OidcHubdesk:
    url: str
    client_id: str
    client_secret: str
    admin_user: str
    admin_password: str
    api_token: str
    env: dict
    stdout_path: Path
    stderr_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def logs(self, lines: int = 150) -> str:
        return (
            f"--- hubdesk stdout (tail) ---\n{base._tail(self.stdout_path, lines)}\n"
            f"--- hubdesk stderr (tail) ---\n{base._tail(self.stderr_path, lines)}"
        )

    # JSON API / forms -------------------------------------------------------------------------

    def api(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.headers["Authorization"] = f"Bearer {self.api_token}"
        return s

    def create_student(self, display_name: str, cohort: str | None = None) -> tuple[str, str]:
        body = {"display_name": display_name}
        if cohort:
            body["cohort"] = cohort
        with self.api() as s:
            r = s.post(f"{self.url}/api/v1/students", json=body, timeout=30)
        assert r.status_code == 201, f"POST /api/v1/students: {r.status_code} {r.text[:300]}"
        data = r.json()
        return data["username"], data["password"]

    def set_student_status(self, username: str, action: str) -> None:
        assert action in ("disable", "enable")
        with self.api() as s:
            r = s.post(f"{self.url}/api/v1/students/{username}/{action}", timeout=30)
        assert r.status_code == 204, f"{action} {username}: {r.status_code} {r.text[:300]}"

    def create_staff(self, username: str, role: str, display_name: str | None = None) -> str:
        """A counselor or admin made by the admin through /staff; returns the password."""
        password = "Staff-" + secrets.token_urlsafe(12)
        with HubdeskClient(self.url) as c:
            c.login(self.admin_user, self.admin_password)
            r = c.submit(
                "/staff",
                {
                    "username": username,
                    "display_name": display_name or username.title(),
                    "role": role,
                    "password": password,
                },
            )
        assert r.status_code == 303, f"POST /staff ({role} {username}): {r.status_code} {r.text[:500]}"
        return password

    # direct protocol probes ---------------------------------------------------------------------

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(
            f"{self.url}/oauth/userinfo",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=15,
        )

    def refresh(self, refresh_token: str) -> requests.Response:
        return requests.post(
            f"{self.url}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            headers={"Accept": "application/json"},
            timeout=15,
        )


def _start_oidc_hubdesk(bin_: Path, env: dict, logdir: Path, attempt: int, creds: dict) -> OidcHubdesk:
    port = base._free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(env, HUBDESK_BIND=f"127.0.0.1:{port}", HUBDESK_PUBLIC_URL=url)
    out = logdir / f"oidc-serve-{attempt}.stdout.log"
    err = logdir / f"oidc-serve-{attempt}.stderr.log"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            [str(bin_), "serve"], env=env, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
            start_new_session=True, cwd=env["HUBDESK_DATA_DIR"],
        )
    return OidcHubdesk(url=url, env=env, stdout_path=out, stderr_path=err, proc=proc, **creds)


# --------------------------------------------------------------------------------------------
# JupyterHub


@dataclass
class HubPorts:
    public: int
    internal: int
    proxy_api: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public}"

    @property
    def callback(self) -> str:
        return f"{self.url}/hub/oauth_callback"


@dataclass
class Hub:
    name: str
    url: str  # public (proxy) URL, e.g. http://127.0.0.1:PORT
    env: dict
    state_dir: Path
    service_token: str  # the "hubdesk" service of deploy/jupyterhub_config.py
    e2e_token: str  # test-only service that can read auth_state
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def logs(self, lines: int = 200) -> str:
        return f"--- jupyterhub {self.name} (tail) ---\n{base._tail(self.log_path, lines)}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def api_get(self, path: str, token: str | None = None) -> requests.Response:
        return requests.get(
            f"{self.url}/hub/api{path}",
            headers={"Authorization": f"token {token or self.service_token}"},
            timeout=15,
        )

    def user(self, name: str) -> dict | None:
        """The hub's user model as the hubdesk service sees it (None: no such user)."""
        r = self.api_get(f"/users/{name}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, f"GET /hub/api/users/{name}: {r.status_code} {r.text[:300]}"
        return r.json()

    def auth_state(self, name: str) -> dict:
        r = self.api_get(f"/users/{name}", token=self.e2e_token)
        assert r.status_code == 200, f"GET /hub/api/users/{name} (auth_state): {r.status_code} {r.text[:300]}"
        state = r.json().get("auth_state")
        assert state, f"no auth_state for {name} on hub {self.name}"
        return state


def _hub_ready(hub: Hub, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    with requests.Session() as s:
        s.trust_env = False
        while time.monotonic() < deadline:
            if hub.proc.poll() is not None:
                return f"jupyterhub exited with code {hub.proc.returncode}"
            try:
                r = s.get(f"{hub.url}/hub/api/", timeout=2)
                if r.status_code == 200:
                    return None
                last = f"/hub/api/ answered {r.status_code}"
            except requests.RequestException as e:
                last = f"/hub/api/: {type(e).__name__}"
            time.sleep(0.25)
    return f"not ready after {timeout:.0f}s ({last})"


def hub_env(hd: OidcHubdesk, ports: HubPorts, state_dir: Path, secret_file: Path,
            service_token: str, e2e_token: str, extra_config: Path, overrides: dict) -> dict:
    """The environment deploy/jupyterhub_config.py is run with (nothing inherited from HUB*_)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUB_", "HUBDESK_", "JUPYTERHUB_", "OAUTH", "CONFIGPROXY_"))}
    env.update(
        HUBDESK_URL=hd.url,
        HUB_OAUTH_CLIENT_ID=hd.client_id,
        HUB_OAUTH_CLIENT_SECRET_FILE=str(secret_file),
        HUB_STATE_DIR=str(state_dir),
        HUB_BIND_URL=ports.url,
        HUB_INTERNAL_IP="127.0.0.1",
        HUB_INTERNAL_PORT=str(ports.internal),
        HUB_PROXY_API_URL=f"http://127.0.0.1:{ports.proxy_api}",
        HUB_PROXY_COMMAND=str(CHP),
        HUB_SERVICE_TOKEN=service_token,
        HUB_LOG_LEVEL="DEBUG",
        HUB_EXTRA_CONFIG=str(extra_config),
        JUPYTERHUB_CRYPT_KEY=secrets.token_hex(32),
        E2E_HUB_TOKEN=e2e_token,
    )
    env.update(overrides)
    return env


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def hub_ports() -> dict[str, HubPorts]:
    ports = _free_ports(3 * len(HUB_VARIANTS))
    return {
        name: HubPorts(*ports[3 * i: 3 * i + 3]) for i, name in enumerate(HUB_VARIANTS)
    }


class _Running(list):
    """Objects with .logs() whose logs go into the report of a failing test; hubs only when the
    test asked for them (``used``, reset after each test)."""

    def __init__(self):
        super().__init__()
        self.used: set[str] = set()


@pytest.fixture(scope="session")
def _report_sections(request) -> _Running:
    running = _Running()

    class Reporter:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(self, item, call):
            outcome = yield
            rep = outcome.get_result()
            if rep.failed and rep.when in ("setup", "call"):
                for obj in running:
                    if isinstance(obj, Hub):
                        if obj.name in running.used:
                            rep.sections.append((f"jupyterhub {obj.name} {obj.url}", obj.logs()))
                    else:
                        rep.sections.append((f"hubdesk (oidc) {obj.url}", obj.logs()))
            if rep.when == "teardown":
                running.used.clear()

    plugin = Reporter()
    request.config.pluginmanager.register(plugin, "hub-support-reporter")
    yield running
    request.config.pluginmanager.unregister(plugin)


@pytest.fixture(scope="session")
def oidc_hubdesk(hubdesk_bin, hub_ports, tmp_path_factory, _report_sections) -> Iterator[OidcHubdesk]:
    """hubdesk serve with the OIDC client `jupyterhub` (all hub variants' callbacks registered)."""
    data_dir = Path(tempfile.mkdtemp(prefix="hubdesk-e2e-oidc-"))
    data_dir.chmod(0o755)  # the embedded postgres runs as `postgres` when we are root
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBDESK_")}
    env.setdefault("RUST_BACKTRACE", "1")
    env["HUBDESK_DATA_DIR"] = str(data_dir)
    # hubdesk's "Open my notebook" link. /hub/home rather than /hub/ so that following it
    # never spawns a server (there is no single-user server image in the tests).
    env["HUBDESK_HUB_URL"] = hub_ports["default"].url + "/hub/home"
    client_secret = secrets.token_urlsafe(32)
    redirect_uris = [p.callback for p in hub_ports.values()]
    if os.environ.get("HUB_E2E_OIDC_CONFIG", "env") == "toml":
        # The same client through ./hubdesk.toml (hubdesk runs in data_dir).
        (data_dir / "hubdesk.toml").write_text(
            f"[oidc]\naccess_token_ttl_secs = {ACCESS_TOKEN_TTL}\n\n"
            f"[[oidc.clients]]\nid = {json.dumps(CLIENT_ID)}\nsecret = {json.dumps(client_secret)}\n"
            f"redirect_uris = {json.dumps(redirect_uris)}\n"
        )
    else:  # the single-client env shortcut of docs/http-contract.md
        env["HUBDESK_OIDC_CLIENT_ID"] = CLIENT_ID
        env["HUBDESK_OIDC_CLIENT_SECRET"] = client_secret
        env["HUBDESK_OIDC_REDIRECT_URIS"] = ",".join(redirect_uris)
        env["HUBDESK_OIDC__ACCESS_TOKEN_TTL_SECS"] = str(ACCESS_TOKEN_TTL)

    admin_url = os.environ.get("DATABASE_URL")
    dbname = None
    if admin_url:
        dbname = "e2e_hub_" + secrets.token_hex(6)
        res = base._psql(admin_url, f'CREATE DATABASE "{dbname}"')
        if res.returncode != 0:
            pytest.fail(f"CREATE DATABASE {dbname} failed on $DATABASE_URL:\n{res.stderr}", pytrace=False)
        env["DATABASE_URL"] = base._with_dbname(admin_url, dbname)
    else:
        env.pop("DATABASE_URL", None)

    logdir = tmp_path_factory.mktemp("hubdesk-oidc-logs")
    hd = None
    try:
        base._run_cli(hubdesk_bin, ["migrate"], env)
        admin_password = "Admin-hub-" + secrets.token_hex(8)
        base._run_cli(hubdesk_bin, ["admin", "create", "chief", "--password-stdin"], env,
                      stdin=admin_password + "\n")
        api_token = base._run_cli(hubdesk_bin, ["token", "create", "hub-e2e"], env).stdout.strip()
        creds = dict(client_id=CLIENT_ID, client_secret=client_secret, admin_user="chief",
                     admin_password=admin_password, api_token=api_token)
        timeout = float(os.environ.get("HUBDESK_E2E_READY_TIMEOUT", "60"))
        for attempt in range(1, 4):
            hd = _start_oidc_hubdesk(hubdesk_bin, env, logdir, attempt, creds)
            why = base._wait_ready(hd, timeout)
            if why is None:
                break
            _stop_group(hd.proc)
            if attempt < 3 and "in use" in base._tail(hd.stderr_path).lower():
                continue
            pytest.fail(f"hubdesk serve (oidc) at {hd.url}: {why}\n{hd.logs()}", pytrace=False)
        r = requests.get(f"{hd.url}/.well-known/openid-configuration", timeout=10)
        if r.status_code != 200:
            pytest.fail(
                f"hubdesk at {hd.url} has no OIDC provider yet: GET /.well-known/openid-configuration "
                f"answered {r.status_code}\n{hd.logs()}", pytrace=False,
            )
        _report_sections.append(hd)
        yield hd
    finally:
        if hd is not None:
            if hd in _report_sections:
                _report_sections.remove(hd)
            _stop_group(hd.proc)
        shutil.rmtree(data_dir, ignore_errors=True)
        if dbname:
            res = base._psql(admin_url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            if res.returncode != 0:
                print(f"warning: could not drop {dbname}: {res.stderr}")


@pytest.fixture(scope="session")
def hubs(oidc_hubdesk, hub_ports, tmp_path_factory, _report_sections) -> Iterator[Callable[[str], Hub]]:
    """hubs(name) -> a running JupyterHub of variant HUB_VARIANTS[name] (started once)."""
    for p in (JUPYTERHUB, CHP):
        if not os.access(p, os.X_OK):
            pytest.fail(f"{p} missing: run scripts/e2e-deps.sh (jupyterhub, configurable-http-proxy)",
                        pytrace=False)
    root = tmp_path_factory.mktemp("hubs")
    secret_file = root / "client_secret"
    secret_file.write_text(oidc_hubdesk.client_secret + "\n")
    secret_file.chmod(0o600)
    extra_config = root / "e2e_extra_config.py"
    extra_config.write_text(EXTRA_CONFIG)
    started: dict[str, Hub] = {}

    def get(name: str) -> Hub:
        _report_sections.used.add(name)
        if name in started:
            return started[name]
        ports = hub_ports[name]
        state_dir = root / name
        state_dir.mkdir()
        service_token, e2e_token = secrets.token_hex(24), secrets.token_hex(24)
        env = hub_env(oidc_hubdesk, ports, state_dir, secret_file, service_token, e2e_token,
                      extra_config, HUB_VARIANTS[name])
        log_path = root / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(JUPYTERHUB), "-f", str(HUB_CONFIG)], env=env, cwd=state_dir,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        hub = Hub(name, ports.url, env, state_dir, service_token, e2e_token, log_path, proc)
        started[name] = hub
        _report_sections.append(hub)
        why = _hub_ready(hub, HUB_READY_TIMEOUT)
        if why is not None:
            pytest.fail(f"JupyterHub {name} at {hub.url}: {why}\n{hub.logs()}", pytrace=False)
        return hub

    yield get
    for hub in started.values():
        _report_sections.remove(hub)
        _stop_group(hub.proc)


# --------------------------------------------------------------------------------------------
# browser helpers


def wait(driver: WebDriver, timeout: float = WAIT, poll_frequency: float = 0.5) -> WebDriverWait:
    return WebDriverWait(driver, timeout, poll_frequency=poll_frequency)


def on(driver: WebDriver, base_url: str, path: str) -> bool:
    """The browser is at base_url + path (path prefix match, query ignored)."""
    cur, want = urlsplit(driver.current_url), urlsplit(base_url)
    return cur.netloc == want.netloc and cur.path.startswith(path)


def wait_on(driver: WebDriver, base_url: str, path: str, what: str) -> None:
    wait(driver).until(lambda d: on(d, base_url, path), f"{what}: expected {base_url}{path}")
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def start_hub_login(driver: WebDriver, hub: Hub, next_path: str = "/hub/home") -> None:
    """Open the hub's OAuth login (as the hub's /hub/login does with auto_login)."""
    driver.get(f"{hub.url}/hub/oauth_login?next={quote(next_path, safe='')}")


def submit_hubdesk_login(driver: WebDriver, hd: OidcHubdesk, username: str, password: str) -> None:
    """On hubdesk's /login form (reached through /oauth/authorize): fill in and submit."""
    wait_on(driver, hd.url, "/login", "the hub did not send the browser to hubdesk's login form")
    user = wait(driver).until(EC.visibility_of_element_located((By.NAME, "username")))
    user.clear()
    user.send_keys(username)
    pw = driver.find_element(By.NAME, "password")
    pw.clear()
    pw.send_keys(password)
    html = driver.find_element(By.TAG_NAME, "html")
    pw.find_element(By.XPATH, "./ancestor::form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(page_replaced(html), "the login form did not submit")
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def hub_login(driver: WebDriver, hub: Hub, hd: OidcHubdesk, username: str, password: str) -> None:
    """Full login through the hub, ending on the hub's /hub/home."""
    start_hub_login(driver, hub)
    submit_hubdesk_login(driver, hd, username, password)
    wait_on(driver, hub.url, "/hub/home", f"{username} did not land on the hub's home page")


def browser_hub_user(driver: WebDriver, hub: Hub) -> dict | None:
    """GET /hub/api/user with the browser's hub session (a top-level navigation); None if refused."""
    driver.get(f"{hub.url}/hub/api/user")
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")
    text = driver.find_element(By.TAG_NAME, "body").text
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "name" in data else None


def jwt_claims(token: str) -> dict:
    """The payload of a JWS (no verification): for messages only."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except Exception:  # noqa: BLE001
        return {}
