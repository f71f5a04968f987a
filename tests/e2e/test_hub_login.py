"""Logging in to a real JupyterHub (deploy/jupyterhub_config.py, oauthenticator's
GenericOAuthenticator) through a real hubdesk acting as its OpenID Connect provider.

Every test drives headless Chromium through the hub's /hub/oauth_login -> hubdesk's /oauth/authorize
-> hubdesk's /login form -> the hub's /hub/oauth_callback, then checks what the hub made of it with
the hub's REST API (with the token of the `hubdesk` service the shipped config defines).
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from e2e_support import HubdeskClient
from hub_support import (  # noqa: F401 - fixtures are used by name
    ACCESS_TOKEN_TTL,
    CLIENT_ID,
    REFRESH_AGE,
    _report_sections,
    browser_hub_user,
    hub_login,
    hub_ports,
    hubs,
    jwt_claims,
    oidc_hubdesk,
    on,
    start_hub_login,
    submit_hubdesk_login,
    wait,
    wait_on,
)


def _assert_hub_user(hub, username: str, *, groups_has: set[str], admin: bool) -> dict:
    model = hub.user(username.lower())
    assert model is not None, f"the hub has no user {username.lower()!r}"
    assert model["name"] == username.lower()
    assert groups_has <= set(model["groups"]), f"hub groups of {username}: {model['groups']}"
    assert model["admin"] is admin, f"hub admin flag of {username}: {model['admin']}"
    return model


# --------------------------------------------------------------------------------------------
# 1 + 2: a student logs in (client_secret_post, then client_secret_basic)


@pytest.mark.parametrize("variant", ["default", "basic"])
def test_student_logs_in_through_the_hub(variant, browser, oidc_hubdesk, hubs):
    hd, hub = oidc_hubdesk, hubs(variant)
    username, password = hd.create_student("Ada Lovelace", cohort="Class 9B")

    hub_login(browser, hub, hd, username, password)

    model = _assert_hub_user(hub, username, groups_has={"students"}, admin=False)
    cohort_groups = [g for g in model["groups"] if g.startswith("cohort-")]
    assert len(cohort_groups) == 1, f"expected one cohort-<cohort> group, hub has {model['groups']}"
    assert not {"counselors", "admins"} & set(model["groups"])

    # what hubdesk's userinfo said (kept by the hub in auth_state)
    info = hub.auth_state(username.lower())["oauth_user"]
    assert info["preferred_username"] == username
    assert info["name"] == "Ada Lovelace"
    assert info["sub"]
    assert set(info["groups"]) == set(model["groups"])

    # the browser's own hub session sees the same user
    me = browser_hub_user(browser, hub)
    assert me is not None, f"/hub/api/user with the browser's session: {browser.page_source[:500]}"
    assert me["name"] == username.lower()
    assert set(me["groups"]) == set(model["groups"])

    token_log = [line for line in hub.log_text().splitlines() if "Error fetching" in line]
    assert not token_log, "the hub logged OAuth errors:\n" + "\n".join(token_log)


def test_student_logged_in_at_hubdesk_opens_the_hub_without_a_second_password(browser, oidc_hubdesk, hubs):
    """The student's path: log in at hubdesk, click "Open my notebook", be on the hub (single sign-on)."""
    hd, hub = oidc_hubdesk, hubs("default")
    username, password = hd.create_student("Sam Single")
    browser.get(f"{hd.url}/login")
    submit_hubdesk_login(browser, hd, username, password)
    link = wait(browser).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "a#open-notebook")))
    assert link.get_attribute("href").startswith(hub.url), link.get_attribute("href")
    link.click()
    wait_on(browser, hub.url, "/hub/home", "the notebook link did not log the student in to the hub")
    assert hub.user(username.lower()) is not None


def test_tokens_the_hub_receives_are_oidc(browser, oidc_hubdesk, hubs):
    """The token response and discovery document match what the shipped hub config assumes."""
    hd, hub = oidc_hubdesk, hubs("default")
    disc = requests.get(f"{hd.url}/.well-known/openid-configuration", timeout=10).json()
    assert disc["issuer"] == hd.url
    # deploy/jupyterhub_config.py builds these URLs from HUBDESK_URL
    assert disc["authorization_endpoint"] == f"{hd.url}/oauth/authorize"
    assert disc["token_endpoint"] == f"{hd.url}/oauth/token"
    assert disc["userinfo_endpoint"] == f"{hd.url}/oauth/userinfo"
    assert "S256" in disc.get("code_challenge_methods_supported", [])
    methods = set(disc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"]))
    assert {"client_secret_post", "client_secret_basic"} <= methods

    username, password = hd.create_student("Grace Hopper")
    hub_login(browser, hub, hd, username, password)
    state = hub.auth_state(username.lower())
    tok = state["token_response"]
    assert tok["token_type"].lower() == "bearer"
    assert 0 < int(tok["expires_in"]) <= ACCESS_TOKEN_TTL
    assert state["refresh_token"], "no refresh_token: the hub cannot renew an expired access token"
    assert state["id_token"], "scope=openid but no id_token in the token response"
    claims = jwt_claims(state["id_token"])
    assert claims.get("iss") == hd.url
    aud = claims.get("aud")
    assert aud == CLIENT_ID or (isinstance(aud, list) and CLIENT_ID in aud)
    assert claims.get("sub") == state["oauth_user"]["sub"]
    assert "openid" in state["scope"]


# --------------------------------------------------------------------------------------------
# 3: allowed_groups and admin_groups


def test_counselor_refused_by_a_hub_that_allows_only_students_and_admins(browser, oidc_hubdesk, hubs):
    hd, hub = oidc_hubdesk, hubs("no-counselors")
    password = hd.create_staff("carla", "counselor", "Carla Counselor")

    start_hub_login(browser, hub)
    submit_hubdesk_login(browser, hd, "carla", password)

    wait_on(browser, hub.url, "/hub/oauth_callback", "the counselor did not come back to the hub")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "403" in body and "not currently authorized" in body, body[:500]
    assert hub.user("carla") is None, "a refused user was created in the hub"
    assert browser_hub_user(browser, hub) is None


def test_counselor_allowed_by_the_default_hub(browser, oidc_hubdesk, hubs):
    hd, hub = oidc_hubdesk, hubs("default")
    password = hd.create_staff("connie", "counselor", "Connie Counselor")
    hub_login(browser, hub, hd, "connie", password)
    model = _assert_hub_user(hub, "connie", groups_has={"counselors"}, admin=False)
    assert "admins" not in model["groups"]


def test_a_counselor_given_a_cohort_runs_only_its_servers_on_the_hub(browser, oidc_hubdesk, hubs):
    """An admin gives Cara cohort Alpha on hubdesk's staff page; at her hub login the groups
    claim carries cohort-alpha-staff, and the shipped config's role lets her stop Alpha's
    servers and nobody else's. The control: Connie, a counselor of every cohort, gets no such
    role and is refused the same call (the hub does not simply let counselors do it)."""
    hd, hub = oidc_hubdesk, hubs("default")
    alpha, alpha_pw = hd.create_student("Amy Alpha", cohort="Alpha")
    beta, beta_pw = hd.create_student("Ben Beta", cohort="Beta")
    for name, pw in [(alpha, alpha_pw), (beta, beta_pw)]:
        browser.delete_all_cookies()
        hub_login(browser, hub, hd, name, pw)
    cara_pw = hd.create_staff("caraalpha", "counselor", "Cara Alpha")
    connie_pw = hd.create_staff("conniecamp", "counselor", "Connie Camp")
    with HubdeskClient(hd.url) as admin:
        admin.login(hd.admin_user, hd.admin_password)
        r = admin.submit("/staff", {"reach": "some", "cohort": "Alpha"}, "/staff/caraalpha/cohorts")
        assert r.status_code == 303, f"{r.status_code} {r.text[:300]}"

    def stop_as(counselor: str, password: str) -> dict[str, int]:
        browser.delete_all_cookies()
        hub_login(browser, hub, hd, counselor, password)
        r = requests.post(f"{hub.url}/hub/api/users/{counselor}/tokens", json={"note": "e2e"},
                          headers={"Authorization": f"token {hub.e2e_token}"}, timeout=10)
        assert r.status_code == 201, f"token for {counselor}: {r.status_code} {r.text[:300]}"
        token = r.json()["token"]
        out = {}
        for student in (alpha, beta):
            r = requests.delete(f"{hub.url}/hub/api/users/{student.lower()}/server",
                                headers={"Authorization": f"token {token}"}, timeout=10)
            out[student] = r.status_code
        return out

    cara = stop_as("caraalpha", cara_pw)
    model = _assert_hub_user(hub, "caraalpha", groups_has={"counselors", "cohort-alpha-staff"}, admin=False)
    assert "cohort-beta-staff" not in model["groups"]
    assert cara[alpha] in (202, 204), f"Cara stopping Alpha's server: {cara}"
    assert cara[beta] in (403, 404), f"Cara stopping Beta's server: {cara}"
    connie = stop_as("conniecamp", connie_pw)
    assert not [g for g in hub.user("conniecamp")["groups"] if g.endswith("-staff")]
    assert connie[alpha] in (403, 404) and connie[beta] in (403, 404), f"Connie: {connie}"


@pytest.mark.parametrize("variant", ["default", "no-counselors"])
def test_admin_lands_as_a_hub_admin(variant, browser, oidc_hubdesk, hubs):
    hd, hub = oidc_hubdesk, hubs(variant)
    name = "adaadmin" if variant == "default" else "noraadmin"
    password = hd.create_staff(name, "admin", "Head Admin")
    hub_login(browser, hub, hd, name, password)
    _assert_hub_user(hub, name, groups_has={"admins"}, admin=True)
    me = browser_hub_user(browser, hub)
    assert me is not None and me["admin"] is True


# --------------------------------------------------------------------------------------------
# 4: disabled accounts


def test_disabled_student_cannot_log_in_to_the_hub(browser, oidc_hubdesk, hubs):
    hd, hub = oidc_hubdesk, hubs("default")
    username, password = hd.create_student("Dora Disabled")
    hd.set_student_status(username, "disable")

    start_hub_login(browser, hub)
    submit_hubdesk_login(browser, hd, username, password)

    assert on(browser, hd.url, "/login"), f"a disabled student left hubdesk's login form: {browser.current_url}"
    wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".error")))
    assert hub.user(username.lower()) is None

    # enabled again: the same hub login goes through
    hd.set_student_status(username, "enable")
    hub_login(browser, hub, hd, username, password)
    _assert_hub_user(hub, username, groups_has={"students"}, admin=False)


def test_hub_refreshes_tokens_and_drops_a_student_disabled_meanwhile(browser, oidc_hubdesk, hubs):
    """auth_refresh_age=2 s, access tokens live ACCESS_TOKEN_TTL s.

    While the student is active, the hub's refresh (userinfo with the access token, then
    grant_type=refresh_token once it has expired) keeps them logged in. Once hubdesk disables the
    student, the next refresh fails and the hub sends the browser back to hubdesk, which does not
    let the student in.
    """
    hd, hub = oidc_hubdesk, hubs("refresh")
    username, password = hd.create_student("Rita Refresh")
    name = username.lower()
    hub_login(browser, hub, hd, username, password)
    first = hub.auth_state(name)

    # -- active: the access token expires and the hub renews it with the refresh token
    def renewed(driver) -> bool:
        driver.get(f"{hub.url}/hub/home")
        assert on(driver, hub.url, "/hub/home"), (
            f"an active student was logged out of the hub by its auth refresh: {driver.current_url}"
        )
        return hub.auth_state(name)["access_token"] != first["access_token"]

    wait(browser, ACCESS_TOKEN_TTL + 20).until(renewed, "the hub never renewed the access token")
    log = hub.log_text()
    assert f"Refreshing oauth access token for {name}" in log, "the hub did not use grant_type=refresh_token"
    assert f"Error using refresh_token for {name}" not in log
    second = hub.auth_state(name)
    assert second["oauth_user"]["preferred_username"] == username

    # -- disabled: the next refresh fails, the hub wants a new login, hubdesk refuses it
    hd.set_student_status(username, "disable")
    disabled_at = time.monotonic()
    r = hd.userinfo(second["access_token"])  # renewed moments ago: not expired
    assert r.status_code == 401, f"userinfo for a disabled student: {r.status_code} {r.text[:200]}"

    def sent_back_to_hubdesk(driver) -> bool:
        driver.get(f"{hub.url}/hub/home")
        return not on(driver, hub.url, "/hub/home")

    wait(browser, REFRESH_AGE + 20, poll_frequency=0.5).until(
        sent_back_to_hubdesk, "the hub kept a disabled student logged in"
    )
    assert time.monotonic() - disabled_at < REFRESH_AGE + 15
    wait_on(browser, hd.url, "/login", "after a failed refresh the browser should be at hubdesk's login")
    assert browser_hub_user(browser, hub) is None, "the hub still accepts the disabled student's cookie"

    start_hub_login(browser, hub)
    submit_hubdesk_login(browser, hd, username, password)
    assert on(browser, hd.url, "/login"), f"the disabled student got past hubdesk's login: {browser.current_url}"
    assert browser_hub_user(browser, hub) is None


def test_concurrent_hub_requests_after_token_expiry_keep_the_student_logged_in(browser, oidc_hubdesk, hubs):
    """JupyterHub does not serialize refresh_user: requests arriving together after the access
    token expired (several tabs, a notebook server's API calls) each run grant_type=refresh_token
    with the same refresh token. That must not end the student's hub session."""
    hd, hub = oidc_hubdesk, hubs("refresh")
    username, password = hd.create_student("Conny Concurrent")
    name = username.lower()
    hub_login(browser, hub, hd, username, password)
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    token = hub.auth_state(name)["access_token"]
    wait(browser, ACCESS_TOKEN_TTL + 20, poll_frequency=0.5).until(
        lambda _: hd.userinfo(token).status_code == 401, "the access token never expired"
    )

    results: list[tuple[int, str | None]] = []

    def home() -> None:
        r = requests.get(f"{hub.url}/hub/home", cookies=cookies, allow_redirects=False, timeout=30)
        results.append((r.status_code, r.headers.get("Location")))

    threads = [threading.Thread(target=home) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code == 200 for code, _ in results), (
        f"concurrent requests after token expiry were sent to log in again: {results}"
    )
    # ...and the tokens the hub kept still work at its next refresh
    time.sleep(REFRESH_AGE + 0.5)  # the hub's auth age must pass once more
    r = requests.get(f"{hub.url}/hub/home", cookies=cookies, allow_redirects=False, timeout=30)
    assert r.status_code == 200, (
        f"after the concurrent refreshes the hub wants a new login: {r.status_code} {r.headers.get('Location')}"
    )


# --------------------------------------------------------------------------------------------
# 5: logout


def test_hub_logout_ends_the_hubdesk_session(browser, oidc_hubdesk, hubs):
    hd, hub = oidc_hubdesk, hubs("default")
    username, password = hd.create_student("Luis Logout")
    name = username.lower()
    hub_login(browser, hub, hd, username, password)
    state = hub.auth_state(name)
    checked_at = time.monotonic()
    r = hd.userinfo(state["access_token"])
    assert r.status_code == 200, f"userinfo with the hub's access token: {r.status_code} {r.text[:200]}"

    browser.get(f"{hub.url}/hub/logout")
    wait(browser).until(lambda d: on(d, hd.url, "/"), "the hub's logout did not redirect to hubdesk")
    wait(browser).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert browser_hub_user(browser, hub) is None, "still logged in to the hub after its logout"

    # hubdesk revoked the tokens the hub holds
    r = hd.refresh(state["refresh_token"])
    assert r.status_code == 400 and r.json().get("error") == "invalid_grant", (
        f"refresh_token after logout: {r.status_code} {r.text[:200]}"
    )
    if time.monotonic() - checked_at < ACCESS_TOKEN_TTL - 1:  # not merely expired
        r = hd.userinfo(state["access_token"])
        assert r.status_code == 401, f"userinfo with a revoked access token: {r.status_code} {r.text[:200]}"

    # a new login asks for the password again
    start_hub_login(browser, hub)
    wait_on(browser, hd.url, "/login", "a new hub login after logout did not ask for the password")
    wait(browser).until(EC.visibility_of_element_located((By.NAME, "password")))
    submit_hubdesk_login(browser, hd, username, password)
    wait_on(browser, hub.url, "/hub/home", "logging in again after logout failed")
    me = browser_hub_user(browser, hub)
    assert me is not None and me["name"] == name


# --------------------------------------------------------------------------------------------
# the shipped config itself (no processes)


def _load_hub_config(monkeypatch, tmp_path, **env):
    from traitlets.config import Config

    from hub_support import HUB_CONFIG

    for k in [k for k in os.environ if k.startswith(("HUB_", "HUBDESK_", "JUPYTERHUB_"))]:
        monkeypatch.delenv(k)
    base = {"HUBDESK_URL": "https://desk.example/", "HUB_STATE_DIR": str(tmp_path / "state"),
            "JUPYTERHUB_CRYPT_KEY": "00" * 32, "HUB_OAUTH_CLIENT_SECRET": "s" * 43}
    for k, v in {**base, **env}.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    c = Config()
    exec(compile(HUB_CONFIG.read_text(), str(HUB_CONFIG), "exec"),
         {"get_config": lambda: c, "load_subconfig": lambda path: None})
    return c


def test_shipped_hub_config_defaults(monkeypatch, tmp_path):
    c = _load_hub_config(monkeypatch, tmp_path)
    a = c.GenericOAuthenticator
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert a.authorize_url == "https://desk.example/oauth/authorize"
    assert a.token_url == "https://desk.example/oauth/token"
    assert a.userdata_url == "https://desk.example/oauth/userinfo"
    assert a.logout_redirect_url == "https://desk.example/oauth/logout"
    assert a.oauth_callback_url == "http://127.0.0.1:8000/hub/oauth_callback"
    assert a.client_id == "jupyterhub" and a.client_secret == "s" * 43
    assert a.username_claim == "preferred_username"
    assert a.scope == ["openid", "profile", "groups"]
    assert a.manage_groups is True and a.auth_state_groups_key == "oauth_user.groups"
    assert a.allowed_groups == {"students", "counselors", "admins"} and a.admin_groups == {"admins"}
    assert a.enable_pkce is True and a.basic_auth is False
    assert a.enable_auth_state is True and a.auth_refresh_age == 300 and a.refresh_pre_spawn is True
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'state' / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.cookie_secret_file == str(tmp_path / "state" / "jupyterhub_cookie_secret")
    assert "services" not in c.JupyterHub  # no token, no service


def test_shipped_hub_config_from_env(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    token = tmp_path / "token"
    token.write_text("service-token-123\n")
    c = _load_hub_config(
        monkeypatch, tmp_path,
        HUBDESK_INTERNAL_URL="http://hubdesk:8080", HUB_PUBLIC_URL="https://hub.example/",
        HUB_OAUTH_CLIENT_SECRET=None, HUB_OAUTH_CLIENT_SECRET_FILE=str(secret),
        HUB_OAUTH_BASIC_AUTH="true", HUB_ALLOWED_GROUPS="students, admins", HUB_AUTH_REFRESH_AGE="2",
        HUB_SERVICE_TOKEN_FILE=str(token), HUB_SPAWNER="dockerspawner.SwarmSpawner",
        HUB_BIND_URL="http://0.0.0.0:8000", HUB_INTERNAL_IP="0.0.0.0", HUB_CONNECT_IP="jupyterhub",
        HUB_PROXY_COMMAND="/usr/bin/configurable-http-proxy --no-x-forward",
    )
    a = c.GenericOAuthenticator
    assert a.authorize_url == "https://desk.example/oauth/authorize"  # browser-facing
    assert a.token_url == "http://hubdesk:8080/oauth/token"
    assert a.userdata_url == "http://hubdesk:8080/oauth/userinfo"
    assert a.oauth_callback_url == "https://hub.example/hub/oauth_callback"
    assert a.client_secret == "from-a-file" and a.basic_auth is True
    assert a.allowed_groups == {"students", "admins"} and a.auth_refresh_age == 2
    assert c.JupyterHub.spawner_class == "dockerspawner.SwarmSpawner"
    assert c.JupyterHub.hub_ip == "0.0.0.0" and c.JupyterHub.hub_connect_ip == "jupyterhub"
    assert c.ConfigurableHTTPProxy.command == ["/usr/bin/configurable-http-proxy", "--no-x-forward"]
    assert c.JupyterHub.services == [{"name": "hubdesk", "api_token": "service-token-123", "display": False}]
    (role,) = c.JupyterHub.load_roles
    assert role["services"] == ["hubdesk"]
    assert set(role["scopes"]) == {"list:users", "read:users", "read:servers", "start:servers", "delete:servers"}


def test_shipped_hub_config_refuses_to_start_without_secrets(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="HUB_OAUTH_CLIENT_SECRET"):
        _load_hub_config(monkeypatch, tmp_path, HUB_OAUTH_CLIENT_SECRET=None)
    with pytest.raises(ValueError, match="CRYPT_KEY"):
        _load_hub_config(monkeypatch, tmp_path, JUPYTERHUB_CRYPT_KEY=None)
    with pytest.raises(ValueError, match="HUBDESK_URL"):
        _load_hub_config(monkeypatch, tmp_path, HUBDESK_URL=None)


def test_shipped_proxy_waits_out_a_slow_server_start(monkeypatch, tmp_path):
    """The spawn page's progress stream is one long answer, which the Python proxy buffers
    whole: the shipped proxy command must wait longer than tornado's 20 s default, or a server
    slower to start leaves the student on the spawn page behind a 503. A target that answers
    after 22 s, through the shipped command and (the negative control) through the same proxy
    without the shipped timeout."""
    import socket
    import subprocess
    import threading
    import time
    import urllib.error
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    c = _load_hub_config(monkeypatch, tmp_path)
    shipped = list(c.ConfigurableHTTPProxy.command)
    assert "--proxy-timeout" in shipped and int(shipped[shipped.index("--proxy-timeout") + 1]) >= 300_000
    bare = shipped[:shipped.index("--proxy-timeout")]

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(22)
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"ready")

        def log_message(self, *args):
            pass

    target = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=target.serve_forever, daemon=True).start()

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def through(command: list[str]) -> int:
        port, api = free(), free()
        proc = subprocess.Popen([*command, "--ip", "127.0.0.1", "--port", str(port), "--api-port", str(api),
                                 "--default-target", f"http://127.0.0.1:{target.server_address[1]}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hub/api/users/a/server/progress",
                                            timeout=60) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        finally:
            proc.terminate()
            proc.wait(10)

    results = {}
    threads = [threading.Thread(target=lambda k=k, cmd=cmd: results.__setitem__(k, through(cmd)))
               for k, cmd in (("shipped", shipped), ("bare", bare))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    target.shutdown()
    assert results == {"shipped": 200, "bare": 503}, results
