"""The peers of tests/e2e/test_sandbox.py: the camp in a box (camp_support.Camp) plus the
stand-ins an attacker inside a notebook would aim at, all on networks this test creates.

- the metadata service (standins/imds.py): 169.254.169.254 on the loopback of a container of its
  own; each instance node gets a point-to-point link to it (a veth pair between the two network
  namespaces, as EC2's hypervisor gives each instance its link-local path), so the address is
  reached unchanged (no DNAT) and no Docker bridge filters it; its view of each instance (hop
  limit, token requirement, role, user-data) is refreshed from moto, i.e. from what hubdesk's
  RunInstances asked for;
- the NFS node's port 2049 (standins/listener.py) at a fixed address of the camp's network
  (this kernel has no NFS server: the attack is the connection itself, and its source port);
- the internet (standins/pypi.py): a package index on a network of a documentation range
  (198.51.100.0/24, outside every private range) that every worker is attached to, so
  `pip install` from a notebook goes out through the worker's NAT as on EC2;
- homes with a byte limit: a small ext4 loop-file filesystem per home (this kernel has no disk
  quotas: ENOSPC at the filesystem's size stands in for EDQUOT at the project quota's limit);
- :func:`run_cell`: code run as a notebook cell, in a real kernel of the student's server,
  through the hub's proxy (the Jupyter websocket protocol), as the student would.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import requests
import websocket

import camp_support as cs

STANDINS = Path(__file__).resolve().parent / "standins"
INET_SUBNETS = ["198.51.100.0/24", "203.0.113.0/24"]  # TEST-NET-2, TEST-NET-3 (RFC 5737)


class SandboxCamp(cs.Camp):
    """The camp with a worker instance profile, the stand-ins and two kinds of students:
    hardened ones (the shipped config) and `open-*` ones, spawned with the sandbox switched off
    (HubdeskSwarmSpawner.harden/isolate_network False, unbounded logs): the negative controls."""

    WORKER_PROFILE = "camp-worker"
    PIDS_LIMIT = 1024

    def __init__(self, hubdesk_bin: Path, workdir: Path):
        super().__init__(hubdesk_bin, workdir)
        self.worker_toml_extra = f'instance_profile = "{self.WORKER_PROFILE}"\n'
        self.loops: list[tuple[Path, str]] = []  # (mount point, loop device)
        self.imds_ip = self.nfs_ip = self.pypi_ip = ""
        self.inet = f"{cs.LABEL}-{self.id}-inet"
        self.imds_state = self.root_dir / "imds-state.json"
        self.imds_state.write_text("{}")
        self.api_token = ""
        self._veths = 0
        self._veth_lock = threading.Lock()

    # -- homes -----------------------------------------------------------------------------

    def plain_home(self, user: str) -> Path:
        home = self.homes / user
        home.mkdir(mode=0o755)
        os.chown(home, 1000, 100)
        return home

    def limited_home(self, user: str, mib: int) -> Path:
        """A home that holds `mib` MiB at most: an ext4 filesystem in a loop file."""
        image = self.root_dir / f"{user}.img"
        with open(image, "wb") as f:
            f.truncate(mib * 1024 * 1024)
        cs.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=1000:100", str(image)])
        home = self.homes / user
        home.mkdir(mode=0o755)
        dev = cs.run(["losetup", "--find", "--show", str(image)]).stdout.strip()
        self.loops.append((home, dev))
        cs.run(["mount", dev, str(home)])
        shutil_lost = home / "lost+found"
        if shutil_lost.exists():
            shutil_lost.rmdir()
        return home

    # -- stand-ins ---------------------------------------------------------------------------

    def _standin(self, name: str, ip: str, script: str, *args: str, netns_of: str | None = None,
                 network: str | None = None) -> str:
        cname = f"{cs.LABEL}-{self.id}-{name}"
        net = ["--network", f"container:{netns_of}"] if netns_of else [
            "--network", network or self.swarm.network, "--ip", ip]
        cs.docker("run", "-d", "--name", cname, "--label", f"{cs.LABEL}={self.id}", *net,
                  "-v", f"{STANDINS}:/standins:ro", "-v", f"{self.root_dir}:/state:ro",
                  "--entrypoint", "/opt/venv/bin/python3", self.images["HUB_IMAGE"],
                  "-u", f"/standins/{script}", *args)
        return cname

    def standins_up(self) -> None:
        p = self.swarm.prefix
        self.imds_ip, self.nfs_ip = p + "250", p + "251"
        # The metadata service's address lives on the loopback of a namespace that the node
        # image (which has `ip`) sets up and the Python stand-in joins.
        ns = self.imds_ns = f"{cs.LABEL}-{self.id}-imds-net"
        cs.docker("run", "-d", "--name", ns, "--label", f"{cs.LABEL}={self.id}",
                  "--network", self.swarm.network, "--ip", self.imds_ip, "--cap-add", "NET_ADMIN",
                  "--entrypoint", "/bin/sh", self.swarm.node_image, "-c",
                  "ip addr add 169.254.169.254/32 dev lo && exec sleep infinity")
        self.imds = self._standin("imds", "", "imds.py", "/state/imds-state.json", "80", netns_of=ns)
        self.nfs = self._standin("nfs", self.nfs_ip, "listener.py", "2049")
        for subnet in INET_SUBNETS:
            res = cs.run(["docker", "network", "create", "--internal", "--subnet", subnet,
                          "--label", f"{cs.LABEL}={self.id}", self.inet], check=False)
            if res.returncode == 0:
                break
        else:
            raise cs.CampError(f"no free documentation range for the internet stand-in: {res.stderr}")
        self.pypi_ip = subnet.rsplit(".", 1)[0] + ".10"
        self.pypi = self._standin("pypi", self.pypi_ip, "pypi.py", "80", network=self.inet)
        cs.wait_for("the stand-ins", lambda: all(
            "listening" in cs.docker("logs", c, check=False) or "imds" in c or "pypi" in c
            for c in (self.imds, self.nfs, self.pypi)), timeout=30)

    def machine_setup(self, node: str, ip: str) -> None:
        """The instance's network as EC2 gives it, before its user-data runs: a link to the
        metadata service (camp_support.link_to_imds), and a way to the internet."""
        with self._veth_lock:
            self._veths += 1
            names = (f"hdmd{self._veths}{self.id[-4:]}a", f"hdmd{self._veths}{self.id[-4:]}b")
        cs.link_to_imds(node, self.imds_ns, ip, names)
        cs.docker("network", "connect", self.inet, node)

    def refresh_imds(self) -> dict:
        """The stand-in's view of every instance, from moto (DescribeInstances)."""
        ec2 = self.moto.client()
        view = {}
        for r in ec2.describe_instances()["Reservations"]:
            for i in r["Instances"]:
                if i["State"]["Name"] != "running" or not i.get("PrivateIpAddress"):
                    continue
                opts = i.get("MetadataOptions", {})
                profile = (i.get("IamInstanceProfile") or {}).get("Arn", "")
                ud = ec2.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="userData")
                view[i["PrivateIpAddress"]] = {
                    "instance_id": i["InstanceId"],
                    "hop_limit": opts.get("HttpPutResponseHopLimit", 1),
                    "http_tokens": opts.get("HttpTokens", "optional"),
                    "http_endpoint": opts.get("HttpEndpoint", "enabled"),
                    "role": profile.rsplit("/", 1)[-1] if profile else "",
                    "user_data": (ud.get("UserData") or {}).get("Value", ""),
                }
        tmp = self.imds_state.with_suffix(".tmp")
        tmp.write_text(json.dumps(view))
        tmp.rename(self.imds_state)
        return view

    def set_metadata_options(self, instance_id: str, **opts) -> None:
        """ModifyInstanceMetadataOptions (as an admin could, or an AMI default would). EC2 changes
        only the options given; moto resets the others to its defaults, so all are sent."""
        ec2 = self.moto.client()
        inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        current = {k: v for k, v in inst.get("MetadataOptions", {}).items()
                   if k in ("HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint")}
        ec2.modify_instance_metadata_options(InstanceId=instance_id, **{**current, **opts})
        self.refresh_imds()

    def instance_profile(self) -> None:
        """The worker's own role, made in moto's IAM so RunInstances may name it."""
        import boto3

        iam = boto3.client("iam", endpoint_url=self.moto.url, region_name=cs.REGION,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        iam.create_role(RoleName=self.WORKER_PROFILE, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "ec2.amazonaws.com"}}]}))
        iam.create_instance_profile(InstanceProfileName=self.WORKER_PROFILE)
        iam.add_role_to_instance_profile(InstanceProfileName=self.WORKER_PROFILE, RoleName=self.WORKER_PROFILE)

    def logs_of(self, container: str) -> list[dict]:
        out = cs.docker("logs", container, check=False)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    # -- the hub ---------------------------------------------------------------------------

    def hub_env(self) -> dict[str, str]:
        env = super().hub_env()
        env["HUB_PIDS_LIMIT"] = str(self.PIDS_LIMIT)
        env["HUB_CULL_IDLE_SECS"] = "0"
        return env

    def hub_extra_config(self) -> str:
        return super().hub_extra_config() + '''
# Negative controls: `open-*` students get dockerspawner's defaults (one flat network, no
# sandbox, logs without a useful size limit: 1 GB, overriding the workers' daemon default).
from hubdesk_spawner import HubdeskSwarmSpawner


class OpenForTests(HubdeskSwarmSpawner):
    async def start(self):
        if self.user.name.startswith("open-"):
            self.isolate_network = False
            self.harden = False
            self.extra_task_spec = {"log_driver": {"Name": "json-file", "Options": {"max-size": "1g"}}}
        return await super().start()


c.JupyterHub.spawner_class = OpenForTests
'''

    # -- hubdesk ---------------------------------------------------------------------------

    def launch_workers(self, count: int, timeout: float = 420) -> dict:
        """POST /api/v1/cluster/workers with an API token, then follow the job to its end."""
        if not self.api_token:
            res = subprocess.run([str(self.bin), "token", "create", "sandbox-test"], env=self.hubdesk.env,
                                 cwd=self.hubdesk.env["HUBDESK_DATA_DIR"], capture_output=True, text=True,
                                 timeout=120)
            assert res.returncode == 0, res.stderr
            self.api_token = res.stdout.strip().split()[-1]
        h = {"Authorization": f"Bearer {self.api_token}"}
        r = requests.post(f"{self.hubdesk.url}/api/v1/cluster/workers", json={"count": count},
                          headers=h, timeout=30)
        assert r.status_code == 202, (r.status_code, r.text)
        job = r.json()["job"] if "job" in r.json() else r.json()
        job_id = job["id"] if isinstance(job, dict) else job

        def ended():
            j = requests.get(f"{self.hubdesk.url}/api/v1/jobs/{job_id}", headers=h, timeout=30).json()
            return j if j["state"] in ("succeeded", "failed") else None

        j = cs.wait_for(f"launch job {job_id}", ended, timeout=timeout, every=1)
        assert j["state"] == "succeeded", j
        return j

    # -- students' servers -------------------------------------------------------------------

    def start_server(self, user: str) -> None:
        r = self.hub_api("POST", f"/users/{user}")
        assert r.status_code in (201, 409), (r.status_code, r.text)
        r = self.hub_api("POST", f"/users/{user}/server")
        assert r.status_code in (201, 202), (r.status_code, r.text)

    def wait_ready(self, user: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            model = self.hub_user(user)
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return
            if server is None and model.get("pending") is None:
                raise cs.CampError(f"{user}'s server failed to start:\n{self.hub_logs(120)}")
            if time.monotonic() > deadline:
                raise cs.CampError(f"{user}'s server not ready after {timeout:.0f} s")
            time.sleep(1)

    def node_of(self, user: str) -> str:
        """The node container (hypervisor) that runs the user's notebook."""
        host = self.running_node_of("jupyter-" + cs.escape_user(user))
        for iid, name in self.hv.running.items():
            if host == "ip-" + self.hv.ips[iid].replace(".", "-"):
                return name
        raise cs.CampError(f"{user}'s task runs on {host!r}, not on a booted worker")

    def container_of(self, user: str) -> tuple[str, str]:
        """(node container, notebook container id) of the user's running server."""
        node = self.node_of(user)
        cid = cs.docker("exec", node, "docker", "ps", "-q", "--filter", f"label=hubdesk.user={user}")
        assert cid and len(cid.split()) == 1, (user, cid)
        return node, cid

    def task_addresses(self, user: str) -> list[str]:
        """The IP addresses of the user's task on its networks."""
        svc = "jupyter-" + cs.escape_user(user)
        out = self.swarm.inner("service", "ps", "-q", "--filter", "desired-state=running", svc)
        addrs = []
        for task in out.split():
            t = json.loads(self.swarm.inner("inspect", task))[0]
            for att in t.get("NetworksAttachments") or []:
                addrs += [a.split("/")[0] for a in att.get("Addresses") or []]
        return addrs

    # -- the node's firewall, switched off and on for the negative controls ---------------------

    def firewall(self, node: str, on: bool) -> None:
        if on:
            cs.docker("exec", node, "/usr/local/sbin/hubdesk-sandbox-firewall")
        else:
            for chain in ("HUBDESK-SANDBOX", "HUBDESK-SANDBOX-IN"):
                cs.docker("exec", node, "iptables", "-w", "10", "-F", chain)

    # -- teardown --------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        problems = []
        for home, dev in reversed(self.loops):
            for args in (["umount", "-l", str(home)], ["losetup", "-d", dev]):
                res = cs.run(args, check=False)
                if res.returncode != 0:
                    problems.append(f"{' '.join(args)}: {res.stderr.strip()}")
        self.loops = []
        return problems + super().teardown()


# --------------------------------------------------------------------------------------------
# a notebook cell, run in a real kernel of the student's server through the hub's proxy


def run_cell(camp: cs.Camp, user: str, code: str, timeout: float = 120) -> dict:
    """Runs `code` in a fresh kernel of `user`'s server; the code prints one line
    `RESULT <json>`, which is returned (with `_stdout` and `_error`, the kernel's, beside it)."""
    base = f"{camp.hub_url}/user/{user}"
    h = {"Authorization": f"token {camp.e2e_hub_token}"}
    r = requests.post(f"{base}/api/kernels", json={"name": "python3"}, headers=h, timeout=60)
    assert r.status_code == 201, (r.status_code, r.text[:500])
    kernel = r.json()["id"]
    ws = websocket.create_connection(
        f"{base.replace('http://', 'ws://')}/api/kernels/{kernel}/channels",
        header=[f"Authorization: token {camp.e2e_hub_token}"], timeout=timeout)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    out, error, deadline = [], None, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            m = json.loads(ws.recv())
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            t = m["header"]["msg_type"]
            if t == "stream":
                out.append(m["content"]["text"])
            elif t == "error":
                error = f"{m['content']['ename']}: {m['content']['evalue']}"
            elif t == "status" and m["content"]["execution_state"] == "idle":
                break
        else:
            raise cs.CampError(f"the cell in {user}'s kernel ran longer than {timeout} s: {''.join(out)[-2000:]}")
    finally:
        ws.close()
        requests.delete(f"{base}/api/kernels/{kernel}", headers=h, timeout=30)
    text = "".join(out)
    result = {}
    for line in text.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    if error and not result:
        raise cs.CampError(f"the cell failed in {user}'s kernel: {error}\n{text[-2000:]}")
    return {**result, "_stdout": text, "_error": error}


def node_bash(node: str, script: str, timeout: float = 60) -> str:
    """bash on the node itself (the instance's host, not a container)."""
    res = subprocess.run(["docker", "exec", "-i", node, "bash", "-s"], input=script, text=True,
                         capture_output=True, timeout=timeout)
    return res.stdout + res.stderr
