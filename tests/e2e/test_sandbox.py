"""The student is the adversary (issue 14): attacks from inside real notebooks, each with its
negative control.

The camp in a box (tests/e2e/camp_support.py): a Docker-in-Docker swarm manager as the hub node,
moto as EC2, a hypervisor that boots every instance hubdesk launches as a node container running
hubdesk's own user-data (its firewall and engine defaults included), JupyterHub with the shipped
deploy/jupyterhub_config.py and deploy/hub/hubdesk_spawner.py. Stand-ins (sandbox_support.py) for
what an attacker aims at: the metadata service (answering as the instance's metadata options in
moto say: the hop limit is a real IP TTL), the NFS node's port, the internet (a package index).

Students `alice` and `bob` get the shipped sandbox; `open-alice` and `open-bob` get
dockerspawner's defaults (the hub's extra config switches the sandbox off for `open-*`): every
attack that fails for alice is shown to succeed against the unhardened setting (an open student,
or alice's node with its firewall flushed, or the instance's hop limit raised to 2), so each
check here can fail. The code of every attack runs as a notebook cell in the student's own
kernel, as uid 1000, through the hub's proxy.

Figures (one line per attack, hardened vs unhardened) are printed at the end: SANDBOX lines.
Needs root, a Docker engine (a failure under CI, a loud skip elsewhere), mmdebstrap, losetup and
mkfs.ext4.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

import camp_support as cs
import sandbox_support as sb
from sandbox_support import run_cell

PRELUDE = r'''
import errno, json, os, socket, time, urllib.error, urllib.request
def tcp(host, port, timeout=3, src_port=None):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        if src_port:
            s.bind(("", src_port))
        s.connect((host, port))
        try:
            data = s.recv(200).decode(errors="replace")
        except OSError:
            data = ""
        return {"ok": True, "data": data}
    except OSError as e:
        return {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "timeout",
                "err": f"{type(e).__name__}: {e}"}
    finally:
        s.close()
def http(method, url, headers=None, timeout=4):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return {"ok": True, "status": r.status, "body": r.read(4000).decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"ok": False, "status": e.code}
    except Exception as e:
        reason = getattr(e, "reason", e)
        return {"ok": False, "err": f"{type(reason).__name__}: {reason}"}
def result(**kw):
    print("RESULT " + json.dumps(kw))
'''

FIGURES: list[str] = []


def figure(attack: str, hardened: str, unhardened: str) -> None:
    line = f"SANDBOX {attack:<34} hardened: {hardened:<48} unhardened: {unhardened}"
    FIGURES.append(line)
    cs.log(line)


def cell(camp, user: str, code: str, timeout: float = 120) -> dict:
    return run_cell(camp, user, PRELUDE + code, timeout=timeout)


@pytest.fixture
def camp(hubdesk_bin, tmp_path_factory, request):
    why = cs.docker_available() if os.geteuid() == 0 else "needs root (the docker socket, loop mounts)"
    if not why and not (shutil.which("losetup") and shutil.which("mkfs.ext4")):
        why = "losetup and mkfs.ext4 are needed (the homes' byte-limit stand-in)"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the sandbox test needs a Docker engine under CI: {why}", pytrace=False)
        pytest.skip(f"SKIPPED the sandbox test: {why}")
    c = sb.SandboxCamp(hubdesk_bin, tmp_path_factory.mktemp("sandbox"))

    def sections() -> list[tuple[str, str]]:
        out = c.report_sections()
        for name in ("imds", "nfs"):
            container = getattr(c, name, "")
            out.append((f"stand-in {name}",
                        cs.docker("logs", "--tail", "60", container, check=False) if container else ""))
        return out

    try:
        with cs.report_on_failure(request, f"sandbox-reporter-{c.id}", sections):
            yield c
    finally:
        c.phases.mark("(until teardown)")
        problems = c.teardown()
        c.phases.mark("teardown")
        print(c.phases.summary())
        print("\n".join(FIGURES))
        assert not problems, "teardown: " + "; ".join(problems)


def test_a_student_cannot_take_the_camp_over(camp: sb.SandboxCamp):
    c = camp
    # --- the camp and its stand-ins ------------------------------------------------------------
    c.build_images(["node", "tiny", "notebook", "hub"])
    c.phases.mark("images")
    c.swarm_up()
    c.moto_up()
    c.instance_profile()
    c.standins_up()
    # Homes: alice's and bob's hold 32 MiB (the stand-in for their XFS project quota), the open
    # students' are plain directories. Made before any worker boots: each worker sees the homes
    # root as it is then (with these mounts inside).
    c.limited_home("alice", 32)
    c.limited_home("bob", 32)
    c.plain_home("open-alice")
    c.plain_home("open-bob")
    c.hypervisor_up([c.images["NOTEBOOK_IMAGE"]], machine_setup=c.machine_setup)
    c.hubdesk_up()
    c.hub_up()
    c.phases.mark("camp up")

    # --- workers from hubdesk: what EC2 recorded ------------------------------------------------
    job = c.launch_workers(2)
    assert [s["name"] for s in job["steps"]][:3] == ["launched", "running", "joined"], job
    assert not c.hv.errors, c.hv.errors
    view = c.refresh_imds()
    workers = {ip: v for ip, v in view.items() if v["instance_id"] in c.hv.running}
    assert len(workers) == 2, view
    for v in workers.values():
        # HttpTokens=required proves hubdesk sent the options (moto's default is "optional").
        assert (v["http_tokens"], v["hop_limit"], v["http_endpoint"]) == ("required", 1, "enabled"), v
        assert v["role"] == c.WORKER_PROFILE, v
    c.phases.mark("2 workers launched")

    users = ["alice", "bob", "open-alice", "open-bob"]
    for u in users:
        c.start_server(u)
    for u in users:
        c.wait_ready(u)
    c.phases.mark("4 servers")
    node = {u: c.node_of(u) for u in users}
    ip_of = {name: c.hv.ips[iid] for iid, name in c.hv.running.items()}

    # bob and open-bob serve their homes on port 9000, as a student's `python -m http.server` does
    for u in ("bob", "open-bob"):
        r = cell(c, u, '''
import subprocess, sys
open(os.path.expanduser("~/secret-of-%s.txt"), "w").write("mine")
subprocess.Popen([sys.executable, "-m", "http.server", "9000", "--directory", os.path.expanduser("~")],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(50):
    if tcp("127.0.0.1", 9000)["ok"]:
        break
    time.sleep(0.2)
result(serving=tcp("127.0.0.1", 9000)["ok"])
''' % u)
        assert r["serving"], r

    # --- 0. the container itself ---------------------------------------------------------------
    facts_code = '''
import subprocess
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
setid = subprocess.run(["find", "/", "-xdev", "-type", "f", "-perm", "/6000"], capture_output=True,
                       text=True).stdout.split()
mounts = [l.split() for l in open("/proc/mounts")]
pids = next((open(p).read().strip() for p in ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
             if os.path.exists(p)), "?")
try:
    open("/usr/local/probe", "w")
    root_write = "ok"
except OSError as e:
    root_write = errno.errorcode[e.errno]
result(uid=os.getuid(), gid=os.getgid(), cap_eff=st["CapEff"].strip(), cap_bnd=st["CapBnd"].strip(),
       nnp=st["NoNewPrivs"].strip(), port_start=open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read().strip(),
       setid=setid, root_ro="ro" in next(m for m in mounts if m[1] == "/")[3].split(","),
       tmp=next((m[2] + " " + m[3] for m in mounts if m[1] == "/tmp"), ""), pids_max=pids, root_write=root_write)
'''
    a, o = cell(c, "alice", facts_code), cell(c, "open-alice", facts_code)
    assert (a["uid"], a["gid"]) == (1000, 100), a
    assert a["cap_eff"] == a["cap_bnd"] == "0000000000000000", a
    assert a["nnp"] == "1", a
    assert a["port_start"] == "1024", a
    assert a["setid"] == [], a
    assert a["root_ro"] and a["root_write"] == "EROFS", a
    assert a["tmp"].startswith("tmpfs") and "size=1048576k" in a["tmp"], a
    assert a["pids_max"] == str(c.PIDS_LIMIT), a
    assert o["cap_bnd"] != "0000000000000000" and o["port_start"] == "0" and not o["root_ro"], o
    assert o["pids_max"] == "max", o
    figure("capabilities (CapBnd)", a["cap_bnd"], o["cap_bnd"])
    figure("unprivileged ports start at", a["port_start"], o["port_start"])
    figure("root filesystem", f"read-only ({a['root_write']})", f"writable layer ({o['root_write']})")
    figure("pids.max", a["pids_max"], o["pids_max"])
    figure("set-id files in the image", str(len(a["setid"])), "(same image)")
    figure("no_new_privs", a["nnp"], o["nnp"] + " (the workers' daemon default)")

    # --- 1. still useful: the hub and the internet -------------------------------------------------
    r = cell(c, "alice", f'''
import subprocess, sys
hub = http("GET", "http://hub:8081/hub/api/")
pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
                      "--index-url", "http://{c.pypi_ip}/simple/", "--trusted-host", "{c.pypi_ip}", "--target", "/tmp/probe", "hubdesk-probe"],
                     capture_output=True, text=True, timeout=120)
sys.path.insert(0, "/tmp/probe")
try:
    import hubdesk_probe
    reached = hubdesk_probe.REACHED
except ImportError as e:
    reached = str(e)
result(hub=hub.get("status"), pip=pip.returncode, pip_out=pip.stdout[-500:] + pip.stderr[-500:], reached=reached)
''')
    assert r["hub"] == 200, r
    assert r["pip"] == 0 and "internet" in r["reached"], r
    figure("hub API from the notebook", "200 (reachable)", "-")
    figure("pip install from the internet", "installed", "-")

    # --- 2. another student's notebook -----------------------------------------------------------
    bob_addrs = c.task_addresses("bob")
    open_bob_addrs = c.task_addresses("open-bob")
    assert bob_addrs and open_bob_addrs
    r = cell(c, "alice", f'''
targets = [("jupyter-bob", 8888), ("jupyter-bob", 9000)] + [(a, p) for a in {bob_addrs!r} for p in (8888, 9000)]
result(tries=[dict(target=f"{{h}}:{{p}}", **tcp(h, p)) for h, p in targets])
''')
    assert r["tries"] and not any(t["ok"] for t in r["tries"]), r
    o = cell(c, "open-alice", f'''
result(listing=http("GET", "http://jupyter-open-2dbob:9000/"),
       direct=[dict(target=f"{{a}}:8888", **tcp(a, 8888)) for a in {open_bob_addrs!r}])
''')
    assert o["listing"]["ok"] and "secret-of-open-bob.txt" in o["listing"]["body"], o
    figure("a classmate's ports (8888, 9000)",
           ", ".join(sorted({t.get("errno", "open") for t in r["tries"]})) + f" ({len(r['tries'])} tries)",
           "http.server lists secret-of-open-bob.txt")

    # --- 3. the camp's own machines ----------------------------------------------------------------
    mgr = c.swarm.manager_ip
    hubdesk_host, hubdesk_port = c.hubdesk.url.split("//", 1)[1].rsplit(":", 1)
    a_node, other = node["alice"], next(n for n in set(node.values()) | set(c.hv.running.values())
                                         if n != node["alice"])
    ports_code = f'''
gw = next(socket.inet_ntoa(bytes.fromhex(l.split()[2])[::-1]) for l in open("/proc/net/route").readlines()[1:]
          if l.split()[1] == "00000000")
targets = [("{mgr}", 2375), ("{mgr}", 2377), ("{mgr}", 7946), ("{ip_of[other]}", 7946),
           ("{ip_of[a_node]}", 7946), (gw, 7946), ("{hubdesk_host}", {hubdesk_port})]
result(tries=[dict(target=f"{{h}}:{{p}}", **tcp(h, p)) for h, p in targets],
       docker_api=http("GET", "http://{mgr}:2375/version"))
'''
    ports = cell(c, "alice", ports_code)
    assert not any(t["ok"] for t in ports["tries"]) and not ports["docker_api"]["ok"], ports

    # --- 4. the NFS node --------------------------------------------------------------------------
    nfs_code = f'''
plain = tcp("{c.nfs_ip}", 2049)
try:
    s = socket.socket()
    s.bind(("", 700))
    s.close()
    bind = "ok"
except OSError as e:
    bind = errno.errorcode[e.errno]
privileged = tcp("{c.nfs_ip}", 2049, src_port=700) if bind == "ok" else None
result(plain=plain, bind=bind, privileged=privileged)
'''
    r = cell(c, "alice", nfs_code)
    assert not r["plain"]["ok"] and r["bind"] == "EACCES", r
    nfs_hardened = f"connect {r['plain'].get('errno')}, bind :700 {r['bind']}"

    # --- 5. the metadata service (alice's node: firewall on, hop limit 1) ------------------------
    imds_code = '''
r = {"token": http("PUT", "http://169.254.169.254/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})}
tok = r["token"].get("body") if r["token"].get("ok") else None
if tok:
    role = http("GET", "http://169.254.169.254/latest/meta-data/iam/security-credentials/", {"X-aws-ec2-metadata-token": tok})
    r["creds"] = http("GET", "http://169.254.169.254/latest/meta-data/iam/security-credentials/" + role.get("body", ""),
                      {"X-aws-ec2-metadata-token": tok}) if role.get("ok") else role
r["v1"] = http("GET", "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
result(**r)
'''
    alice_iid = next(iid for iid, n in c.hv.running.items() if n == a_node)

    def imds(tag: str) -> dict:
        r = cell(c, "alice", imds_code)
        cs.log(f"imds {tag}: token={r['token']} creds={r.get('creds')} v1={r['v1']}")
        return r

    r = imds("fw on, hop 1")
    assert not r["token"]["ok"] and "creds" not in r and not r["v1"]["ok"], r
    c.set_metadata_options(alice_iid, HttpPutResponseHopLimit=2)
    fw_only = imds("fw on, hop 2")
    assert not fw_only["token"]["ok"], fw_only
    # The node itself still reads its metadata (IMDSv2, hop limit 1 reaches the instance).
    c.set_metadata_options(alice_iid, HttpPutResponseHopLimit=1)
    host = sb.node_bash(a_node, '''
exec 3<>/dev/tcp/169.254.169.254/80
printf 'PUT /latest/api/token HTTP/1.0\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 60\\r\\n\\r\\n' >&3
token=$(tail -n 1 <&3)
exec 3<>/dev/tcp/169.254.169.254/80
printf 'GET /latest/meta-data/iam/security-credentials/ HTTP/1.0\\r\\nX-aws-ec2-metadata-token: %s\\r\\n\\r\\n' "$token" >&3
cat <&3
''')
    assert host.startswith("HTTP/1.0 200") and host.rstrip().endswith(c.WORKER_PROFILE), host

    # --- 6. unhardened: the same attacks with the node's firewall flushed --------------------------
    nodes = sorted(set(c.hv.running.values()))
    for n in nodes:
        c.firewall(n, on=False)
    try:
        hop_only = imds("fw off, hop 1")
        assert not hop_only["token"]["ok"] and hop_only["token"].get("err", "").endswith("timed out"), hop_only
        assert hop_only["v1"].get("status") == 401, hop_only  # HttpTokens=required
        c.set_metadata_options(alice_iid, HttpPutResponseHopLimit=2)
        stolen = imds("fw off, hop 2")
        assert stolen["token"]["ok"] and '"AccessKeyId": "ASIASTANDIN' in stolen["creds"]["body"], stolen
        c.set_metadata_options(alice_iid, HttpPutResponseHopLimit=1, HttpTokens="optional")
        v1 = imds("fw off, hop 1, tokens optional")
        assert v1["v1"]["ok"] and v1["v1"]["body"] == c.WORKER_PROFILE, v1
        c.set_metadata_options(alice_iid, HttpTokens="required")
        figure("metadata: IMDSv2 token (hop limit 1)", "refused by the firewall", "timed out (TTL 1 dies at NAT)")
        figure("metadata: firewall alone (hop 2)", "refused: " + str(fw_only["token"].get("err"))[:40],
               "token + AccessKeyId ASIASTANDIN… (fw off, hop 2)")
        figure("metadata: IMDSv1 (tokens optional)", "401 (HttpTokens=required)", "role name read without a token")

        r2 = cell(c, "alice", ports_code)
        assert r2["docker_api"]["ok"] and "ApiVersion" in r2["docker_api"]["body"], r2
        opened = [t["target"] for t in r2["tries"] if t["ok"]]
        assert f"{mgr}:2377" in opened, r2
        assert f"{hubdesk_host}:{hubdesk_port}" in opened, r2
        figure("nodes' Docker/swarm ports, hubdesk", f"0 of {len(ports['tries'])} reachable",
               f"{len(opened)} of {len(r2['tries'])} reachable, manager's Docker API answers")

        o = cell(c, "open-alice", nfs_code)
        assert o["plain"]["ok"] and o["bind"] == "ok" and o["privileged"]["ok"], o
        seen = [e for e in c.logs_of(c.nfs) if e.get("port") == 2049]
        assert any(e["peer_port"] < 1024 for e in seen), seen
        figure("NFS node :2049 (privileged source)", nfs_hardened,
               f"connected from port {min(e['peer_port'] for e in seen)} (< 1024: `secure` passes)")
    finally:
        for n in nodes:
            c.firewall(n, on=True)
        c.set_metadata_options(alice_iid, HttpPutResponseHopLimit=1, HttpTokens="required")
    again = imds("fw restored")
    assert not again["token"]["ok"], again

    # --- 7. a home's limit ----------------------------------------------------------------------------
    fill_code = '''
path, n, err = os.path.expanduser("~/fill.bin"), 0, None
chunk = b"\\0" * (1 << 20)
try:
    with open(path, "wb") as f:
        for _ in range(48):
            f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
            n += 1
except OSError as e:
    err = errno.errorcode[e.errno]
if not __KEEP__:
    os.remove(path)
result(mib=n, err=err)
'''
    a = cell(c, "alice", fill_code.replace("__KEEP__", "True"))
    assert a["err"] == "ENOSPC" and a["mib"] < 33, a
    b = cell(c, "bob", '''
with open(os.path.expanduser("~/small.bin"), "wb") as f:
    f.write(b"x" * (1 << 20))
result(ok=True)
''')
    assert b["ok"], b
    o = cell(c, "open-alice", fill_code.replace("__KEEP__", "False"))
    assert o["err"] is None and o["mib"] == 48, o
    cell(c, "alice", 'os.remove(os.path.expanduser("~/fill.bin")); result(ok=True)')
    figure("write 48 MiB into a 32 MiB home", f"{a['err']} after {a['mib']} MiB; bob still writes",
           f"{o['mib']} MiB written")

    # --- 8. a thread bomb ---------------------------------------------------------------------------
    bomb = '''
import subprocess, sys
child = """
import threading, json
threading.stack_size(65536)
ev, n, err = threading.Event(), 0, None
try:
    for _ in range(__N__):
        threading.Thread(target=ev.wait, args=(30,), daemon=True).start()
        n += 1
except Exception as e:
    err = type(e).__name__ + ": " + str(e)
ev.set()
print(json.dumps({"threads": n, "error": err}))
"""
out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
result(**json.loads(out.stdout.strip().splitlines()[-1]))
'''
    a = cell(c, "alice", bomb.replace("__N__", "3000"))
    assert a["error"] and a["threads"] < c.PIDS_LIMIT, a
    o = cell(c, "open-alice", bomb.replace("__N__", str(c.PIDS_LIMIT + 200)))
    assert o["error"] is None and o["threads"] == c.PIDS_LIMIT + 200, o
    ready = [n for n in c.nodes() if n["Status"] == "Ready"]
    assert len(ready) == 3, c.nodes()
    assert cell(c, "alice", "result(alive=True)")["alive"]
    figure("thread bomb", f"stopped at {a['threads']} threads ({a['error'][:30]}); nodes Ready",
           f"{o['threads']} threads and counting")

    # --- 9. 50 MB on stdout ---------------------------------------------------------------------------
    flood = '''
chunk = b"x" * 1023 + b"\\n"
t0 = time.monotonic()
with open("/proc/1/fd/1", "wb", buffering=0) as out:
    for _ in range(50 * 1024):
        out.write(chunk)
result(mb=50, secs=round(time.monotonic() - t0, 1))
'''

    def log_bytes(user: str) -> int:
        n, cid = c.container_of(user)
        cmd = f"cat /var/lib/docker/containers/{cid}*/*-json.log* | wc -c"
        last = -1
        for _ in range(60):  # until the engine has written it all
            size = int(cs.docker("exec", n, "sh", "-c", cmd))
            if size == last:
                return size
            last = size
            time.sleep(1)
        return last

    cell(c, "alice", flood, timeout=300)
    cell(c, "open-alice", flood, timeout=300)
    a_logs, o_logs = log_bytes("alice"), log_bytes("open-alice")
    assert a_logs <= 3 * 10 * 1024 * 1024, a_logs
    assert o_logs >= 50 * 1024 * 1024, o_logs
    figure("50 MB printed to stdout", f"{a_logs / 1e6:.1f} MB of logs kept", f"{o_logs / 1e6:.1f} MB kept")
    daemon = cs.docker("exec", a_node, "cat", "/etc/docker/daemon.json")
    assert json.loads(daemon)["log-opts"] == {"max-size": "10m", "max-file": "3"}, daemon
    c.phases.mark("attacks")

    # --- 10. the rules survive an engine restart -------------------------------------------------------
    # (the node has no systemd: restart dockerd as the user-data starts it; a notebook-image
    # container as uid 1000 on the default bridge then tries the metadata service and the manager)
    cs.docker("exec", other, "sh", "-c", "kill $(cat /var/run/docker.pid); while [ -e /var/run/docker.pid ]; do sleep 0.2; done")
    cs.docker("exec", "-d", other, "sh", "-c",
              "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 dockerd >>/var/log/hubdesk-dockerd.log 2>&1")
    cs.wait_for("the restarted engine", lambda: cs.run(["docker", "exec", other, "docker", "info"],
                                                      check=False).returncode == 0, timeout=60)
    probe = ("import socket\nfor h, p in (('169.254.169.254', 80), ('%s', 2375)):\n"
             "    s = socket.socket(); s.settimeout(3)\n"
             "    try:\n        s.connect((h, p)); print(h, 'open')\n"
             "    except OSError as e:\n        print(h, type(e).__name__)\n") % mgr
    out = cs.docker("exec", other, "docker", "run", "--rm", "--user", "1000:100", "--entrypoint", "/opt/venv/bin/python3",
                    c.images["NOTEBOOK_IMAGE"], "-c", probe)
    assert "open" not in out, out
    figure("after an engine restart", out.replace("\n", "; "), "-")
    c.phases.mark("engine restart")
