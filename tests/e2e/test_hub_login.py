"""Logging in to a real JupyterHub (deploy/jupyterhub_config.py, oauthenticator's
GenericOAuthenticator) through a real hubdesk acting as its OpenID Connect provider.

Every test drives headless Chromium through the hub's /hub/oauth_login -> hubdesk's /oauth/authorize
-> hubdesk's /login form -> the hub's /hub/oauth_callback, then checks what the hub made of it with
the hub's REST API (with the token of the `hubdesk` service the shipped config defines).
"""

from __future__ import annotations

import time

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

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


def test_counselor_allowed_by_the_shipped_hub_config(browser, oidc_hubdesk, hubs):
    hd, hub = oidc_hubdesk, hubs("default")
    password = hd.create_staff("connie", "counselor", "Connie Counselor")
    hub_login(browser, hub, hd, "connie", password)
    model = _assert_hub_user(hub, "connie", groups_has={"counselors"}, admin=False)
    assert "admins" not in model["groups"]


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
