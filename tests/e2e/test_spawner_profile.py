"""The shipped spawner asks hubdesk for the student's cohort profile before each start
(`HubdeskSwarmSpawner._apply_profile`): run in the hub image against a stand-in answering
`GET /oauth/profile/{user}` on loopback. The profile's limits apply; with the client secret
refused, or with hubdesk gone, the configured limits apply again (not the last profile seen);
while the camp is paused (423) the start is refused with hubdesk's words.
The profile reaching a real swarm service is proven in test_camp.py and test_calendar_day.py."""
from __future__ import annotations

import json
import os

import pytest

import camp_support as cs

HERE = cs.REPO / "tests" / "e2e" / "spawner"


def probe(script: str) -> dict[str, dict]:
    """Runs tests/e2e/spawner/<script> in the hub image (no network) beside deploy/hub; its JSON
    lines by case."""
    why = cs.docker_available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"needs Docker and the hub image: {why}", pytrace=False)
        pytest.skip(f"needs Docker and the hub image: {why}")
    image = cs.images("hub")["HUB_IMAGE"]
    out = cs.docker("run", "--rm", "--network", "none", "--label", f"{cs.LABEL}=spawner-probe",
                    "-v", f"{cs.REPO / 'deploy' / 'hub'}:/x:ro", "-v", f"{HERE}:/p:ro",
                    "--entrypoint", "sh", image, "-c",
                    f'PY=python3; [ -x /opt/venv/bin/python ] && PY=/opt/venv/bin/python; exec $PY /p/{script}',
                    timeout=120)
    return {c["case"]: c for c in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}


def test_the_spawner_applies_the_cohort_profile_and_falls_back_to_its_own_limits():
    cases = probe("profile_probe.py")
    mib, gib = 1 << 20, 1 << 30
    assert cases["profile"]["limits"] == [512 * mib, 256 * mib, 0.5], cases
    path, auth = cases["profile"]["seen"][0]
    assert path == "/oauth/profile/ada%20lovelace" and auth.startswith("Basic "), cases
    # Each failure comes right after a profile was applied: the fallback is the configuration's.
    assert cases["refused"]["limits"] == [2 * gib, 2 * gib, 2.0], cases
    assert cases["profile again"]["limits"] == [512 * mib, 256 * mib, 0.5], cases
    assert cases["down"]["limits"] == [2 * gib, 2 * gib, 2.0], cases
    # The camp is paused (hubdesk answers 423 for a student): the start is refused with hubdesk's
    # words, where every other failure above fell back to the configured limits.
    assert cases["paused"]["refused"] == ["HTTPError", 423, "The camp is paused: lunch until 13:30."], cases


def test_the_hub_shows_each_person_the_announcements_for_them():
    """HubdeskAnnouncements (the hub's template variable `announcement`) in the hub image against
    a stand-in feed: everyone's and the person's cohort's, not another cohort's, not one they
    dismissed, not one past its end, HTML-escaped; the last answer kept while hubdesk is away."""
    cases = probe("announcements_probe.py")
    lunch, blue, old = "Lunch is at 12:30 &lt;b&gt;sharp&lt;/b&gt;", "Blue meets in room 4", "Yesterday"
    assert cases["before"]["html"] == "", "nothing before hubdesk first answers"
    ada, bob, grace = cases["ada"]["html"], cases["bob"]["html"], cases["grace"]["html"]
    assert lunch in ada and blue in ada and old not in ada, ada
    assert "<b>" not in ada, "the message is escaped"
    assert lunch in bob and blue not in bob, f"another cohort's is not Bob's: {bob}"
    assert lunch not in grace and blue in grace, f"Grace dismissed the lunch one: {grace}"
    assert "https://desk.example/" in ada, "a way to dismiss it on hubdesk"
    assert lunch in cases["anonymous"]["html"] and blue not in cases["anonymous"]["html"]
    path, auth = cases["seen"]["seen"][0]
    assert path == "/oauth/announcements" and auth.startswith("Basic "), cases["seen"]
    assert cases["down"]["error"] and lunch in cases["down"]["html"], cases["down"]
