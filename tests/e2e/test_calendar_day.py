"""A class day run by the calendar, in the camp in a box, on a fake clock (issue 17).

The real peers of test_camp.py — EC2 in moto, a hypervisor booting every instance hubdesk
launches as a Docker-in-Docker worker from hubdesk's own user-data, JupyterHub with the shipped
config and HubdeskSwarmSpawner — and hubdesk with `[calendar] enabled` reading "now" from a file
the test writes. Two cohorts on Monday 8 March 2027, in Chicago:

    Morning    09:00–10:00 CST (15:00–16:00 UTC), 4 students × 256 MiB
    Afternoon  09:30–10:30 CST (15:30–16:30 UTC), 2 students × 384 MiB

with 1 GiB workers, no headroom, floor 0, launch 20 min and start servers 10 min before a
class, 1 min of grace: grow to 1 worker at 14:40, warm Morning at 14:50, grow to 2 at 15:10,
warm Afternoon at 15:20, shrink to 1 and stop Morning's idle servers at 16:01, shrink to 0 and
stop Afternoon's at 16:31. The test moves the clock through the day and checks each step on the
real swarm and in moto: workers launched and joined before the first class; every server of a
cohort running on a worker before its class starts (nobody waits for a node at T), each with its
cohort's profile; hubdesk killed (-9) right after it decided the second launch and restarted:
the launch finishes, no instance is launched twice, no step is missed; after the last class and
its grace, no worker left and no notebook running (each was idle and stopped; a drained one
moved first).

Scale here is 6 students and 2 workers (2 CPUs run this box); the 25-student figure belongs in
bench/camp's calendar row (not built yet).
"""
from __future__ import annotations

import datetime as dt
import os
import re
import time
from pathlib import Path

import pytest

import camp_support as cs
from e2e_support import HubdeskClient
from hub_support import hub_login

MORNING = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"]
AFTERNOON = ["Barbara Liskov", "Donald Knuth"]
GIB = 1 << 30


@pytest.fixture
def camp(hubdesk_bin, tmp_path, request):
    why = cs.docker_available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the calendar day needs Docker: {why}", pytrace=False)
        pytest.skip(f"the calendar day needs Docker: {why}")
    c = cs.Camp(hubdesk_bin, tmp_path)
    try:
        with cs.report_on_failure(request, f"calendar-reporter-{c.id}", c.report_sections):
            yield c
    finally:
        problems = c.teardown()
        print(c.phases.summary())
        assert not problems, "teardown: " + "; ".join(problems)


class Day:
    def __init__(self, camp: cs.Camp, clock: Path):
        self.camp, self.clock = camp, clock

    def at(self, when: str) -> None:
        self.clock.write_text(f"2027-03-08T{when}:00Z\n")
        cs.log(f"clock: {when} UTC")

    def client(self) -> HubdeskClient:
        c = HubdeskClient(self.camp.hubdesk.url)
        c.login(cs.ADMIN, self.camp.admin_password)
        return c

    def actions(self) -> dict[str, str]:
        """key -> status, as the calendar page shows them."""
        with self.client() as c:
            html = c.get(c.base + "/calendar", timeout=30).text
        return dict(re.findall(r'data-key="([^"]+)" data-status="([^"]*)"', html))

    def wait_decided(self, key: str, timeout: float = 60) -> str:
        return cs.wait_for(f"the calendar to decide {key}",
                           lambda: (s := self.actions().get(key)) not in (None, "planned", "due") and s,
                           timeout, every=1)

    def instances(self) -> list[dict]:
        ec2 = self.camp.moto.client()
        out = ec2.describe_instances(Filters=[{"Name": "tag:hubdesk:cluster", "Values": [self.camp.cluster]}])
        return [i for r in out["Reservations"] for i in r["Instances"]]

    def live_instances(self) -> list[dict]:
        return [i for i in self.instances() if i["State"]["Name"] in ("pending", "running")]

    def workers_ready(self) -> list[dict]:
        return [n for n in self.camp.nodes() if n["Hostname"].startswith("ip-") and n["Status"] == "Ready"
                and n.get("Availability") == "Active"]

    def running(self, user: str) -> bool:
        s = self.camp.hub_user(user).get("servers", {}).get("")
        return bool(s and s.get("ready"))

    def service(self, user: str) -> str:
        return f"jupyter-{cs.escape_user(user)}"

    def idle_secs(self, user: str) -> float:
        """How long the hub has seen no activity of the user's server (real time)."""
        s = self.camp.hub_user(user).get("servers", {}).get("") or {}
        last = s.get("last_activity") or s.get("started")
        if not last:
            return 0.0
        t = dt.datetime.fromisoformat(last.replace("Z", "+00:00"))
        return (dt.datetime.now(dt.timezone.utc) - t).total_seconds()

    def running_secs(self, user: str) -> float:
        """How long the user's notebook task has run where it runs now. A drain restarts it on
        another worker, and the hub's last activity catches up with that restart only when the
        new server reports in: until then the hub calls a just-moved server idle."""
        for t in self.camp.service_tasks(self.service(user)):
            if t.get("DesiredState") == "Running" and str(t.get("CurrentState", "")).startswith("Running"):
                # json: RFC 3339 (a bare time prints in Go's own layout)
                ts = self.camp.swarm.inner("inspect", "--type", "task", "-f", "{{json .Status.Timestamp}}",
                                           t["ID"], check=False).strip().strip('"')
                m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", ts)
                if not m:
                    return 0.0
                tz = "+00:00" if m.group(3) == "Z" else m.group(3)
                since = dt.datetime.fromisoformat(m.group(1) + (m.group(2) or ".0")[:7] + tz)
                return (dt.datetime.now(dt.timezone.utc) - since).total_seconds()
        return 0.0

    def wait_idle(self, users: list[str], secs: float) -> None:
        """Idleness is real time (the hub's last activity): the grace is 1 min, so wait until
        every one of them has been idle longer, and has run where it runs now longer (a server
        a drain moved counts from its move, which the hub learns late)."""
        cs.wait_for(f"{users} idle for {secs:.0f} s",
                    lambda: all(min(self.idle_secs(u), self.running_secs(u)) > secs for u in users),
                    240, every=2)


class HubAt:
    """What hub_support's login helpers need of a hub: its URL."""

    def __init__(self, url: str):
        self.url = url


def test_a_class_day_run_by_the_calendar(camp: cs.Camp, browser):
    camp.build_images(["node", "tiny", "notebook", "hub"])
    camp.swarm_up()
    camp.moto_up()
    camp.hypervisor_up([camp.images["NOTEBOOK_IMAGE"]])
    camp.phases.mark("0-peers")
    clock = camp.root_dir / "now"
    day = Day(camp, clock)
    day.at("13:00")
    camp.toml_extra = f"""
[calendar]
enabled = true
worker_memory_bytes = {GIB}
headroom_percent = 0
floor = 0
lead_mins = 20
warm_mins = 10
grace_mins = 1
tick_secs = 2
catch_up_mins = 120
test_clock_file = {cs.toml_str(str(clock))}
"""
    camp.hubdesk_up()
    camp.hub_up()
    camp.phases.mark("0-hubdesk + hub")

    # The roster, each cohort's profile and class time, as a counselor sets them.
    users: dict[str, list[str]] = {"Morning": [], "Afternoon": []}
    passwords: dict[str, str] = {}
    with day.client() as c:
        for cohort, names in (("Morning", MORNING), ("Afternoon", AFTERNOON)):
            for name in names:
                r = c.submit("/students/new", {"display_name": name, "cohort": cohort})
                assert r.status_code == 303, (r.status_code, r.text[:500])
                page = c.follow(r).text
                user = re.search(r'class="card-username">([^<]+)<', page).group(1)
                passwords[user] = re.search(r'class="card-password">([^<]+)<', page).group(1)
                users[cohort].append(user)
        for slug, (guarantee, limit), (starts, ends) in (
            ("morning", ("256 MiB", "512 MiB"), ("09:00", "10:00")),
            ("afternoon", ("384 MiB", "768 MiB"), ("09:30", "10:30")),
        ):
            r = c.submit(f"/cohorts/{slug}", {
                "timezone": "America/Chicago", "first_day": "2027-03-08", "last_day": "2027-03-08",
                "memory_guarantee": guarantee, "memory_limit": limit, "cpu_limit": "0.5", "idle_timeout": "60"})
            assert r.status_code == 303, (slug, r.status_code, r.text[:1000])
            r = c.submit(f"/cohorts/{slug}", {"date": "2027-03-08", "starts": starts, "ends": ends},
                         post_path=f"/cohorts/{slug}/blocks")
            assert r.status_code == 303, (slug, r.status_code, r.text[:1000])
    # Each student has logged in to the hub once, on an earlier day (no server started): the
    # hub starts a server ahead of time only for someone it knows, with their login still
    # valid (refresh_pre_spawn); a student it has never seen is skipped by the start job.
    for u in users["Morning"] + users["Afternoon"]:
        browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
        hub_login(browser, HubAt(camp.hub_url), camp.hubdesk, u, passwords[u])
    planned = day.actions()
    assert planned.get("grow:1@2027-03-08T14:40:00Z") == "planned", planned
    assert planned.get("grow:2@2027-03-08T15:10:00Z") == "planned", planned
    camp.phases.mark("1-roster + timetable")

    # 14:40: the first worker is launched and joins before anything else happens.
    day.at("14:40")
    assert day.wait_decided("grow:1@2027-03-08T14:40:00Z") == "done"
    cs.wait_for("1 worker ready", lambda: len(day.workers_ready()) == 1, 300, every=2)
    assert not camp.hv.errors, camp.hv.errors
    camp.phases.mark("2-14:40 grow to 1")

    # 14:50: Morning's servers start on it; all are running before 15:00 (the clock waits).
    day.at("14:50")
    assert day.wait_decided("warm:Morning@2027-03-08T14:50:00Z") == "done"
    cs.wait_for("Morning's servers ready", lambda: all(day.running(u) for u in users["Morning"]), 300, every=2)
    first = {w["Hostname"] for w in day.workers_ready()}
    for u in users["Morning"]:
        assert camp.running_node_of(day.service(u)) in first, u
    camp.phases.mark("3-14:50 warm Morning")

    # 15:10: the second launch is decided; hubdesk is killed at once (-9) and restarted. The
    # launch job resumes: exactly 2 instances were ever launched, and the step is not redone.
    day.at("15:10")
    assert day.wait_decided("grow:2@2027-03-08T15:10:00Z") == "done"
    camp.hubdesk.kill_and_restart()
    cs.wait_for("2 workers ready", lambda: len(day.workers_ready()) == 2, 300, every=2)
    time.sleep(5)  # a few more ticks of the restarted calendar
    assert len(day.instances()) == 2, [i["InstanceId"] for i in day.instances()]
    assert day.actions()["grow:2@2027-03-08T15:10:00Z"] == "done"
    camp.phases.mark("4-15:10 grow to 2, kill -9, restart")

    # 15:20: Afternoon's servers, with their own profile.
    day.at("15:20")
    assert day.wait_decided("warm:Afternoon@2027-03-08T15:20:00Z") == "done"
    cs.wait_for("Afternoon's servers ready", lambda: all(day.running(u) for u in users["Afternoon"]), 300, every=2)
    mib = 1 << 20
    for cohort, (g, l) in (("Morning", (256 * mib, 512 * mib)), ("Afternoon", (384 * mib, 768 * mib))):
        for u in users[cohort]:
            res = camp.swarm.inner("service", "inspect", "-f",
                                   "{{.Spec.TaskTemplate.Resources.Reservations.MemoryBytes}} "
                                   "{{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}}", day.service(u))
            assert res.split() == [str(g), str(l)], (u, res)
    camp.phases.mark("5-15:20 warm Afternoon")

    # At the classes' start nobody waits for a node: every server of both cohorts runs.
    day.at("15:30")
    time.sleep(4)
    waiting = [u for u in users["Morning"] + users["Afternoon"] if not day.running(u)]
    assert not waiting, f"waiting for a node at 15:30: {waiting}"

    # 16:01: Morning is over (+1 min grace): its idle servers stop and one worker goes,
    # drained first (Afternoon's servers there move to the other worker).
    day.wait_idle(users["Morning"], 65)
    day.at("16:01")
    assert day.wait_decided("shrink:1@2027-03-08T16:01:00Z") == "done"
    assert day.wait_decided("stop-idle:Morning@2027-03-08T16:01:00Z") == "done"
    cs.wait_for("1 worker left", lambda: len(day.live_instances()) == 1, 400, every=2)
    cs.wait_for("Morning's servers stopped", lambda: not any(day.running(u) for u in users["Morning"]), 120, every=2)
    cs.wait_for("Afternoon's servers running", lambda: all(day.running(u) for u in users["Afternoon"]), 300, every=2)
    camp.phases.mark("6-16:01 shrink to 1")

    # 16:31: Afternoon is over: its servers stop, the last worker goes. Back at the floor (0).
    day.wait_idle(users["Afternoon"], 65)
    day.at("16:31")
    assert day.wait_decided("shrink:0@2027-03-08T16:31:00Z") == "done"
    assert day.wait_decided("stop-idle:Afternoon@2027-03-08T16:31:00Z") == "done"
    cs.wait_for("no worker left", lambda: not day.live_instances(), 400, every=2)
    assert not any(day.running(u) for u in users["Morning"] + users["Afternoon"])
    final = day.actions()
    assert all(s == "done" for k, s in final.items() if k.split("@")[1] < "2027-03-08T16:32"), final
    assert len(day.instances()) == 2, "two instances in the whole day"
    camp.phases.mark("7-16:31 shrink to 0")

    # The ledger's worker-hours are the instance timeline moto keeps (launch time to the
    # terminate call, "User initiated (YYYY-MM-DD HH:MM:SS UTC)"), within 1 %.
    moto_secs = 0.0
    for i in day.instances():
        ended = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)", i.get("StateTransitionReason", ""))
        assert ended, i.get("StateTransitionReason")
        end = dt.datetime.strptime(ended.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        moto_secs += (end - i["LaunchTime"]).total_seconds()
    with day.client() as c:
        csv = c.get(c.base + "/calendar/ledger.csv", timeout=30).text
    ledger_hours = sum(float(line.split(",")[-2]) for line in csv.strip().splitlines()[1:])
    cs.log(f"ledger {ledger_hours * 3600:.1f} s of workers, moto {moto_secs:.1f} s")
    assert abs(ledger_hours * 3600 - moto_secs) <= 0.01 * moto_secs, (ledger_hours * 3600, moto_secs, csv)
