"""Relying-party libraries nobody here wrote log in to hubdesk with their own discovery and their
own id_token validation: Authlib 1.x and idpyoidc 5.x (pyoidc's successor), each configured as a
camp app would be (the usual `openid profile email` scopes, RS256 by default).

A second `hubdesk serve` on the session's database carries the two clients in a TOML file (the
way an organizer registers another app). No browser is needed: a requests session logged in as a
student plays the browser and hands each library the redirect its callback would receive.
"""
from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from conftest import _run_cli, _start_serve, _stop, _wait_ready  # noqa: F401
from e2e_support import HubdeskClient

AUTHLIB_ID, IDPY_ID = "forum", "grading"
SECRETS = {AUTHLIB_ID: "forum-" + secrets.token_urlsafe(30), IDPY_ID: "grading-" + secrets.token_urlsafe(30)}
CALLBACK = {AUTHLIB_ID: "http://127.0.0.1:8101/auth/callback", IDPY_ID: "http://127.0.0.1:8102/authz_cb"}
LOGGED_OUT = "http://127.0.0.1:8101/bye"


@pytest.fixture(scope="module")
def desk(hubdesk, hubdesk_bin, hubdesk_env, tmp_path_factory):
    """hubdesk with two more registered apps, on the same database as the session's hubdesk."""
    d = tmp_path_factory.mktemp("oidc-apps")
    toml = d / "hubdesk.toml"
    clients = []
    for cid in (AUTHLIB_ID, IDPY_ID):
        logout = f'post_logout_redirect_uris = ["{LOGGED_OUT}"]\n' if cid == AUTHLIB_ID else ""
        clients.append(
            f'[[oidc.clients]]\nid = "{cid}"\nsecret = "{SECRETS[cid]}"\n'
            f'redirect_uris = ["{CALLBACK[cid]}"]\nrequire_pkce = false\n{logout}'
        )
    toml.write_text("\n".join(clients))
    env = dict(hubdesk_env, HUBDESK_CONFIG=str(toml))
    hd = _start_serve(hubdesk_bin, env, d, 1)
    why = _wait_ready(hd, 60)
    if why:
        _stop(hd)
        pytest.fail(f"second hubdesk: {why}\n{hd.logs()}", pytrace=False)
    yield hd
    _stop(hd)


@pytest.fixture(scope="module")
def student(desk):
    """A student account (made through the staff's own API) and a browser session logged in."""
    admin = HubdeskClient(desk.url)
    admin.login(desk.admin_user, desk.admin_password)
    name = "rp" + secrets.token_hex(3)
    r = admin.follow(admin.submit("/students/new", {"display_name": "Rita P", "username": name, "cohort": "blue"}))
    assert r.status_code == 200, r.text[:300]
    password = r.text.split('class="card-password">')[1].split("<")[0].strip()
    browser = HubdeskClient(desk.url)
    browser.login(name, password)
    return name, browser


def follow_to_callback(browser: HubdeskClient, url: str, callback: str) -> str:
    """What the app's callback would receive: the browser follows hubdesk's redirects."""
    r = browser.get(url, allow_redirects=False, timeout=15)
    assert r.status_code in (302, 303), f"{r.status_code} {r.text[:300]}"
    location = r.headers["Location"]
    assert location.startswith(callback), location
    return location


def test_authlib_discovers_logs_in_and_validates_the_id_token(desk, student):
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken
    from authlib.oidc.discovery import OpenIDProviderMetadata

    name, browser = student
    meta = OpenIDProviderMetadata(
        requests.get(desk.url + "/.well-known/openid-configuration", timeout=10).json()
    )
    meta.validate()  # Authlib's own check of the discovery document (RS256 must be listed...)
    assert meta["issuer"] == desk.url
    nonce = secrets.token_urlsafe(16)
    session = OAuth2Session(
        AUTHLIB_ID, SECRETS[AUTHLIB_ID], scope="openid email profile",
        redirect_uri=CALLBACK[AUTHLIB_ID], code_challenge_method="S256",
    )
    session.trust_env = False
    verifier = secrets.token_urlsafe(48)
    uri, state = session.create_authorization_url(
        meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
    )
    location = follow_to_callback(browser, uri, CALLBACK[AUTHLIB_ID])
    returned = dict(parse_qsl(urlsplit(location).query))
    assert returned["iss"] == desk.url, "RFC 9207 iss in the authorization response"
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    assert token["scope"] == "openid profile", "email is not understood: ignored, not an error"
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"], jwks, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": desk.url}},
        claims_params={"nonce": nonce, "client_id": AUTHLIB_ID, "access_token": token["access_token"]},
    )
    claims.validate()  # exp, iat, aud, nonce and at_hash against the access token
    assert jwt_header(token["id_token"])["alg"] == "RS256"
    assert claims["preferred_username"] == name
    info = session.get(meta["userinfo_endpoint"], timeout=10).json()
    assert info["sub"] == claims["sub"]
    assert "cohort-blue" in info["groups"]
    # Revocation answers JSON, and RP-initiated logout comes back with the app's state.
    r = session.revoke_token(meta["revocation_endpoint"], token["refresh_token"])
    assert r.status_code == 200 and r.json() == {}
    r = browser.get(
        meta["end_session_endpoint"],
        params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": LOGGED_OUT, "state": "bye-1"},
        allow_redirects=False, timeout=15,
    )
    assert r.status_code == 303 and r.headers["Location"] == LOGGED_OUT + "?state=bye-1"


def jwt_header(token: str) -> dict:
    import base64
    import json

    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def test_idpyoidc_discovers_logs_in_and_validates_the_id_token(desk, student, tmp_path, monkeypatch):
    from idpyoidc.client.rp_handler import RPHandler

    # idpyoidc writes its client keys to ./private and ./static: not into the checkout.
    monkeypatch.chdir(tmp_path)

    name, _ = student
    # A fresh browser login: the Authlib test above ended that session.
    browser = relogin(desk, name)
    rph = RPHandler(
        base_url="http://127.0.0.1:8102",
        client_configs={
            "hubdesk": {
                "issuer": desk.url,
                "client_id": IDPY_ID,
                "client_secret": SECRETS[IDPY_ID],
                "redirect_uris": [CALLBACK[IDPY_ID]],
                "client_type": "oidc",
                "preference": {
                    "response_types_supported": ["code"],
                    "scopes_supported": ["openid", "email", "profile"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                },
                "add_ons": {"pkce": {"function": "idpyoidc.client.oauth2.add_on.pkce.add_support",
                                     "kwargs": {"code_challenge_length": 64, "code_challenge_method": "S256"}}},
            }
        },
        verify_ssl=False,
    )
    url = rph.begin(issuer_id="hubdesk")  # its own discovery of the provider
    location = follow_to_callback(browser, url, CALLBACK[IDPY_ID])
    response = dict(parse_qsl(urlsplit(location).query))
    client = rph.issuer2rp[desk.url]
    result = rph.finalize(client.get_context().issuer, response)
    assert "error" not in result, result
    id_token = result["id_token"]  # verified by idpyoidc against the JWKS
    assert id_token["iss"] == desk.url and id_token["aud"] == [IDPY_ID]
    assert id_token["preferred_username"] == name
    assert result["userinfo"]["sub"] == id_token["sub"]


def relogin(desk, name: str) -> HubdeskClient:
    admin = HubdeskClient(desk.url)
    admin.login(desk.admin_user, desk.admin_password)
    r = admin.follow(admin.submit(f"/students/{name}", {}, post_path=f"/students/{name}/reset-password"))
    assert r.status_code == 200, r.text[:300]
    password = r.text.split('class="card-password">')[1].split("<")[0].strip()
    browser = HubdeskClient(desk.url)
    browser.login(name, password)
    return browser
