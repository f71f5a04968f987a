"""Camp in a box: the real peers of tests/e2e/test_camp.py.

- :class:`Swarm`: the Docker-in-Docker swarm of tests/swarm/swarm.sh (here only the manager, the
  hub node; workers come from hubdesk through EC2).
- :class:`Moto`: a moto server (EC2) on loopback, with a VPC/subnet whose CIDR is the swarm
  network's, so an instance's private IP is the address its node container gets.
- :class:`Hypervisor`: the one hypervisor of the cluster tests (the Rust tests and bench/cluster
  run it as a process: ``python camp_support.py hypervisor``, see the end of this file):
  for every instance moto reports running with the cluster's tag it boots a worker node
  container from the "AMI" (a /var/lib/docker volume with the notebook image loaded), runs the
  instance's real decoded user-data in it as cloud-init would, and removes the container and its
  disk when the instance is terminated. The homes root is bind-mounted into every worker at the
  same path (the NFS export of production).
- :class:`CampHubdesk`: ``hubdesk serve`` on the host, on the swarm network's gateway address.
- :class:`HubContainer`: JupyterHub in a container on the manager node, on the attachable
  overlay network, running deploy/jupyterhub_config.py with HUB_SPAWNER=swarm.

Everything this module creates on the host engine carries the label ``hubdesk-test=<run id>``
(the label tests/swarm/swarm.sh uses), so ``swarm.sh down <id>`` removes it all and
:func:`leftovers` can prove nothing is left.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

import conftest as base

REPO = base.REPO
SWARM_SH = REPO / "tests" / "swarm" / "swarm.sh"
IMAGES_SH = REPO / "tests" / "swarm" / "images.sh"
VENV_BIN = Path(sys.executable).parent
LABEL = "hubdesk-test"
REGION = "us-east-1"


def log(msg: str) -> None:
    print(f"[camp {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class CampError(AssertionError):
    pass


def run(args: list[str], *, input: bytes | str | None = None, timeout: float = 300,
        check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    text = not isinstance(input, bytes)
    res = subprocess.run(args, input=input, capture_output=True, text=text, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise CampError(f"`{' '.join(map(str, args))}` exited {res.returncode}:\n"
                        f"{res.stdout}\n{res.stderr}")
    return res


def docker(*args: str, host: str | None = None, **kw) -> str:
    pre = ["docker"] + (["-H", host] if host else [])
    return run(pre + list(args), **kw).stdout.strip()


def docker_available() -> str | None:
    """None when the host engine answers; else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    res = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True,
                         text=True, timeout=30)
    if res.returncode != 0:
        return f"the Docker engine does not answer: {res.stderr.strip()}"
    if shutil.which("mmdebstrap") is None:
        return "mmdebstrap missing (tests/swarm/images.sh builds the images with it)"
    return None


class Phases:
    """Wall-clock time of each phase of the story, printed at the end."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.last = self.t0
        self.done: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.done.append((name, now - self.last))
        log(f"phase {name}: {now - self.last:.1f} s")
        self.last = now

    def summary(self) -> str:
        rows = [f"  {n:<28} {s:7.1f} s" for n, s in self.done]
        rows.append(f"  {'total':<28} {time.monotonic() - self.t0:7.1f} s")
        return "CAMP phases:\n" + "\n".join(rows)


# --------------------------------------------------------------------------------------------
# images


def images(*names: str) -> dict[str, str]:
    """tests/swarm/images.sh NAMES -> {"NODE_IMAGE": tag, …} (built offline, cached)."""
    out = run([str(IMAGES_SH), *names], timeout=1800).stdout.strip().splitlines()
    last = out[-1] if out else ""
    tags = dict(kv.split("=", 1) for kv in last.split() if "=" in kv)
    return {k: v for k, v in tags.items() if v}


# --------------------------------------------------------------------------------------------
# the swarm (manager only: the hub node)


@dataclass
class Swarm:
    id: str
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def up(cls, run_id: str, workers: int, extra_env: dict[str, str]) -> "Swarm":
        swarm = cls(run_id)
        env = dict(os.environ, **extra_env)
        res = subprocess.run([str(SWARM_SH), "up", "-i", run_id, "-w", str(workers)], env=env,
                             capture_output=True, text=True, timeout=600)
        swarm.up_log = res.stderr
        if res.returncode != 0:
            raise CampError(f"swarm.sh up failed ({res.returncode}):\n{res.stderr[-4000:]}")
        for line in res.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                swarm.env[k] = v.strip('"')
        return swarm

    def down(self) -> str:
        res = subprocess.run([str(SWARM_SH), "down", self.id], capture_output=True, text=True, timeout=300)
        return res.stderr.strip()

    @property
    def network(self) -> str:
        return self.env["HUBDESK_SWARM_NETWORK"]

    @property
    def subnet(self) -> str:
        return self.env["HUBDESK_SWARM_SUBNET"]

    @property
    def prefix(self) -> str:  # "10.213.N."
        return self.subnet.rsplit(".", 1)[0] + "."

    @property
    def gateway(self) -> str:
        """The host's own address on the swarm network (swarm.sh: the /24's .1)."""
        return self.prefix + "1"

    @property
    def manager(self) -> str:
        return self.env["HUBDESK_SWARM_MANAGER"]

    @property
    def manager_ip(self) -> str:
        return self.env["HUBDESK_SWARM_MANAGER_IP"]

    @property
    def docker_host(self) -> str:
        return self.env["HUBDESK_SWARM_DOCKER_HOST"]

    @property
    def node_image(self) -> str:
        return self.env["HUBDESK_NODE_IMAGE"]

    def inner(self, *args: str, **kw) -> str:
        """`docker ARGS` against the manager's engine."""
        return docker(*args, host=self.docker_host, **kw)


# --------------------------------------------------------------------------------------------
# EC2: a moto server on loopback


def free_port(addr: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class MotoAt:
    """A moto server by its URL (one this process did not start: the Rust tests' own)."""

    def __init__(self, url: str):
        self.url = url

    def client(self):
        import boto3

        return boto3.client("ec2", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


class Moto(MotoAt):
    def __init__(self, logdir: Path, host: str = "127.0.0.1"):
        """On loopback, or on `host` (the host's address on a network of the test's, for
        instances of the box that call EC2 themselves)."""
        binary = VENV_BIN / "moto_server"
        if not os.access(binary, os.X_OK):
            raise CampError(f"{binary} missing: scripts/e2e-deps.sh installs moto[server]")
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.log_path = logdir / "moto.log"
        with open(self.log_path, "wb") as f:
            self.proc = subprocess.Popen([str(binary), "-H", host, "-p", str(self.port)],
                                         stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.url}/moto-api/", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise CampError(f"moto_server did not answer on {self.url}:\n{base._tail(self.log_path)}")
            time.sleep(0.2)

    def network(self, cidr: str) -> tuple[str, str]:
        """A VPC + subnet with the swarm's CIDR and a security group: (subnet id, group id)."""
        c = self.client()
        vpc = c.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        subnet = c.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        sg = c.create_security_group(GroupName="camp-workers", Description="swarm workers",
                                     VpcId=vpc)["GroupId"]
        return subnet, sg

    def some_ami(self) -> str:
        for image in self.client().describe_images()["Images"]:
            if image.get("RootDeviceName"):
                return image["ImageId"]
        raise CampError("moto lists no AMI")

    def stop(self) -> None:
        base._stop(type("P", (), {"proc": self.proc})())  # SIGTERM, then the process group


# --------------------------------------------------------------------------------------------
# the hypervisor: moto instances -> worker node containers that run their user-data


class Hypervisor:
    """Boots every running instance tagged ``hubdesk:cluster=<cluster>`` as a worker node."""

    def __init__(self, swarm: Swarm, moto: MotoAt, cluster: str, ami_images: list[str],
                 mounts: list[str], machine_setup: Callable[[str, str], None] | None = None,
                 notify: Callable[[dict], None] | None = None):
        self.swarm, self.moto, self.cluster = swarm, moto, cluster
        self.mounts = mounts
        # Told of every boot, failure and removal (the process mode: one JSON line each).
        self.notify = notify or (lambda _msg: None)
        # (container, private ip) -> None: the machine's own network, set up before its
        # user-data runs (e.g. the route to the metadata service, a second interface).
        self.machine_setup = machine_setup
        self.label = f"{LABEL}={swarm.id}"
        self.running: dict[str, str] = {}  # instance id -> container
        self.ips: dict[str, str] = {}  # instance id -> private ip
        self.boot_logs: dict[str, str] = {}
        self.errors: list[str] = []
        self.events: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._booting: set[str] = set()
        self.privileges = self._privileges_of(swarm.manager)
        self.ami_volume = f"{LABEL}-{swarm.id}-ami"
        self._prepare(ami_images)
        self._thread = threading.Thread(target=self._watch, name="hypervisor", daemon=True)
        self._thread.start()

    # -- the "AMI" ---------------------------------------------------------------------------

    @staticmethod
    def _privileges_of(manager: str) -> list[str]:
        """The node containers' privileges, copied from the manager (swarm.sh chose them)."""
        hc = json.loads(docker("inspect", "-f", "{{json .HostConfig}}", manager))
        if hc.get("Privileged"):
            return ["--privileged"]
        args: list[str] = []
        for key, flag in (("CapAdd", "--cap-add"), ("CapDrop", "--cap-drop"),
                          ("SecurityOpt", "--security-opt"), ("DeviceCgroupRules", "--device-cgroup-rule")):
            for v in hc.get(key) or []:
                args += [flag, v]
        for d in hc.get("Devices") or []:
            args += ["--device", d["PathOnHost"]]
        return args

    def _prepare(self, ami_images: list[str]) -> None:
        """A node's /var/lib/docker with the notebook image loaded, as a worker AMI has it baked in."""
        t0 = time.monotonic()
        docker("volume", "create", "--label", self.label, self.ami_volume)
        seed = f"{LABEL}-{self.swarm.id}-ami-seed"
        docker("run", "-d", "--name", seed, "--label", self.label, "--network", "none",
               "-v", f"{self.ami_volume}:/var/lib/docker", *self.privileges, self.swarm.node_image)
        try:
            deadline = time.monotonic() + 60
            while run(["docker", "exec", seed, "docker", "version"], check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise CampError(f"the AMI seed's dockerd did not start:\n{docker('logs', seed, check=False)}")
                time.sleep(0.3)
            for image in ami_images:
                saved = _saved_tar(image)
                with open(saved, "rb") as f:
                    res = subprocess.run(["docker", "exec", "-i", seed, "docker", "load", "-q"], stdin=f,
                                         capture_output=True, timeout=900)
                if res.returncode != 0:
                    raise CampError(f"loading {image} into the AMI: {res.stderr.decode(errors='replace')}")
            docker("stop", "-t", "30", seed)
        finally:
            docker("rm", "-f", "-v", seed, check=False)
        log(f"hypervisor: AMI {self.ami_volume} with {' '.join(ami_images)} in {time.monotonic() - t0:.1f} s")

    # -- the watch loop ----------------------------------------------------------------------

    def _watch(self) -> None:
        ec2 = self.moto.client()
        while not self._stop.is_set():
            try:
                out = ec2.describe_instances(
                    Filters=[{"Name": "tag:hubdesk:cluster", "Values": [self.cluster]}])
            except Exception as e:  # noqa: BLE001 - moto going away at teardown
                if not self._stop.is_set():
                    self._event(f"describe_instances: {e}")
                time.sleep(0.5)
                continue
            for r in out.get("Reservations", []):
                for inst in r.get("Instances", []):
                    iid, state = inst["InstanceId"], inst["State"]["Name"]
                    if state == "running" and iid not in self._booting:
                        self._booting.add(iid)
                        ip = inst.get("PrivateIpAddress", "")
                        threading.Thread(target=self._boot_thread, args=(iid, ip), daemon=True).start()
                    if state in ("shutting-down", "terminated"):
                        with self._lock:
                            name = self.running.pop(iid, None)
                        if name:
                            self._event(f"{iid} {state}: removing {name}")
                            docker("rm", "-f", "-v", name, check=False)
                            docker("volume", "rm", "-f", f"{name}-docker", check=False)
                            self.notify({"removed": iid})
            self._stop.wait(0.3)

    def _event(self, msg: str) -> None:
        log(f"hypervisor: {msg}")
        with self._lock:
            self.events.append(f"{time.strftime('%H:%M:%S')} {msg}")

    def _boot_thread(self, iid: str, ip: str) -> None:
        try:
            name, out = self._boot(iid, ip)
            with self._lock:
                self.running[iid] = name
                self.ips[iid] = ip
                self.boot_logs[iid] = out
            self._event(f"{iid} booted as {name} ({ip})")
            self.notify({"booted": iid, "container": name, "ip": ip, "log": out})
        except Exception as e:  # noqa: BLE001 - reported by the test
            with self._lock:
                self.errors.append(f"{iid}: {e}")
            self._event(f"{iid} failed to boot: {e}")
            self.notify({"error": f"{iid}: {e}"})

    def _boot(self, iid: str, ip: str) -> tuple[str, str]:
        """A disk from the AMI, the machine (a node container whose engine is not started: that
        is the user-data's job), the kernel's cgroup set-up (the node image's entrypoint without
        its last line), then the user-data itself, as cloud-init runs it."""
        attr = self.moto.client().describe_instance_attribute(InstanceId=iid, Attribute="userData")
        b64 = (attr.get("UserData") or {}).get("Value")
        if not b64:
            raise CampError("no user-data")
        script = base64.b64decode(b64.strip())
        name = f"{LABEL}-{self.swarm.id}-{iid}"
        disk = f"{name}-docker"
        self._event(f"{iid} running ({ip}): booting {name}")
        docker("volume", "create", "--label", self.label, disk)
        docker("run", "--rm", "--network", "none", "--label", self.label,
               "-v", f"{self.ami_volume}:/from:ro", "-v", f"{disk}:/to",
               "--entrypoint", "/bin/cp", self.swarm.node_image, "-a", "/from/.", "/to/", timeout=900)
        args = ["run", "-d", "--name", name, "--hostname", "ip-" + ip.replace(".", "-"),
                "--label", self.label, "--label", f"{LABEL}.instance={iid}",
                "--network", self.swarm.network, "-v", f"{disk}:/var/lib/docker"]
        if ip.startswith(self.swarm.prefix):
            args += ["--ip", ip]
        for m in self.mounts:
            args += ["-v", m]
        args += self.privileges
        args += ["--entrypoint", "/usr/bin/tini", self.swarm.node_image, "--", "sleep", "infinity"]
        docker(*args)
        docker("exec", name, "sh", "-c",
               "sed '/^exec dockerd/d' /usr/local/bin/node-entrypoint.sh > /tmp/hubdesk-prep.sh"
               " && sh /tmp/hubdesk-prep.sh"
               # The node image has Docker but no NFS client: a stand-in plays the installed
               # package, so the script's "install if missing" step skips (no mirror here).
               " && { command -v mount.nfs >/dev/null || ln -s /bin/true /usr/sbin/mount.nfs; }")
        if self.machine_setup:
            self.machine_setup(name, ip)
        subprocess.run(["docker", "exec", "-i", name, "sh", "-c",
                        "mkdir -p /var/lib/cloud && cat > /var/lib/cloud/user-data"],
                       input=script, check=True, capture_output=True, timeout=60)
        res = subprocess.run(["docker", "exec", name, "sh", "/var/lib/cloud/user-data"],
                             capture_output=True, text=True, timeout=300)
        out = res.stdout + res.stderr
        if res.returncode != 0:
            raise CampError(f"user-data failed ({res.returncode}): {out}")
        return name, out

    # -- for the test ------------------------------------------------------------------------

    def container_of(self, iid: str) -> str | None:
        with self._lock:
            return self.running.get(iid)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def report(self) -> str:
        with self._lock:
            lines = ["events:", *self.events, "errors:", *self.errors]
            for iid, out in self.boot_logs.items():
                lines += [f"--- user-data output of {iid} ---", out]
        return "\n".join(lines)


def _saved_tar(image: str) -> Path:
    """`docker save IMAGE` once per image id (the same cache swarm.sh keeps)."""
    cache = Path(os.environ.get("HUBDESK_IMAGE_CACHE", "/var/tmp/hubdesk-images"))
    cache.mkdir(parents=True, exist_ok=True)
    image_id = docker("image", "inspect", "-f", "{{.Id}}", image).split(":", 1)[1][:12]
    path = cache / f"saved-{image_id}.tar"
    if not path.exists() or path.stat().st_size == 0:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            subprocess.run(["docker", "save", image], stdout=f, check=True, timeout=900)
        tmp.rename(path)
    return path



# --------------------------------------------------------------------------------------------
# shared by the box tests


@contextlib.contextmanager
def report_on_failure(request, name: str, sections: Callable[[], list[tuple[str, str]]]) -> Iterator[None]:
    """While the block runs, a failed setup or call of `request`'s test gets `sections()`
    (title, text) added to its report (the peers' logs, events and consoles)."""

    class Reporter:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(self, item, call):
            outcome = yield
            rep = outcome.get_result()
            if rep.failed and rep.when in ("setup", "call") and item is request.node:
                rep.sections.extend(sections())

    plugin = Reporter()
    request.config.pluginmanager.register(plugin, name)
    try:
        yield
    finally:
        request.config.pluginmanager.unregister(plugin)


def link_to_imds(node: str, imds_ns: str, ip: str, names: tuple[str, str]) -> None:
    """The instance's link-local path to the metadata stand-in, as EC2's hypervisor gives each
    instance: a veth pair `names` (made on the host, both ends moved at once into the node's
    and the stand-in's network namespaces). The node side carries the node's own address (so
    the node's requests, and its containers' requests after NAT, come from the address the
    stand-in knows the instance by) and the route to 169.254.169.254; the stand-in side the
    route back. A Docker bridge would not do: the host's bridge netfilter drops packets for
    addresses outside an internal network's subnet."""
    a, b = names
    pid = lambda c: docker("inspect", "-f", "{{.State.Pid}}", c)  # noqa: E731
    node_pid, imds_pid = pid(node), pid(imds_ns)
    run(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
    run(["ip", "link", "set", a, "netns", node_pid])
    run(["ip", "link", "set", b, "netns", imds_pid])
    run(["nsenter", "-t", node_pid, "-n", "sh", "-c",
         f"ip link set {a} up && ip addr add {ip}/32 dev {a} && "
         f"ip route add 169.254.169.254/32 dev {a} src {ip}"])
    run(["nsenter", "-t", imds_pid, "-n", "sh", "-c",
         f"ip link set {b} up && ip route replace {ip}/32 dev {b}"])

# --------------------------------------------------------------------------------------------
# leftovers


def leftovers(run_id: str) -> list[str]:
    """What the host engine still holds with this run's label (should be nothing)."""
    found = []
    for kind, cmd in (("container", ["ps", "-aq"]), ("volume", ["volume", "ls", "-q"]),
                      ("network", ["network", "ls", "-q"])):
        out = docker(*cmd, "--filter", f"label={LABEL}={run_id}", check=False)
        found += [f"{kind} {x}" for x in out.split()]
    return found


def node_logs(swarm: Swarm, hv: Hypervisor | None, lines: int = 60) -> str:
    names = [swarm.manager] + (list(hv.running.values()) if hv else [])
    parts = []
    for n in names:
        res = run(["docker", "logs", "--tail", str(lines), n], check=False)
        parts.append(f"--- docker logs {n} ---\n{res.stdout}{res.stderr}")
        res = run(["docker", "exec", n, "sh", "-c", "tail -n 40 /var/log/hubdesk-dockerd.log 2>/dev/null"],
                  check=False)
        if res.stdout.strip():
            parts.append(f"--- {n}: /var/log/hubdesk-dockerd.log ---\n{res.stdout}")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# hubdesk on the host, on the swarm network's gateway address


@dataclass
class CampHubdesk:
    url: str
    env: dict
    stdout_path: Path
    stderr_path: Path
    proc: subprocess.Popen | None = None

    def logs(self, lines: int = 200) -> str:
        return (f"--- hubdesk stdout (tail) ---\n{base._tail(self.stdout_path, lines)}\n"
                f"--- hubdesk stderr (tail) ---\n{base._tail(self.stderr_path, lines)}")

    def stop(self) -> None:
        base._stop(self)

    def kill_and_restart(self) -> None:
        """`kill -9`, then the same command on the same address (the hub knows it)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
        with open(self.stdout_path, "ab") as fo, open(self.stderr_path, "ab") as fe:
            self.proc = subprocess.Popen([self.proc.args[0], "serve"], env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=fo, stderr=fe, start_new_session=True,
                                         cwd=self.env["HUBDESK_DATA_DIR"])
        why = base._wait_ready(self, float(os.environ.get("HUBDESK_E2E_READY_TIMEOUT", "60")))
        if why is not None:
            raise CampError(f"hubdesk did not come back at {self.url}: {why}\n{self.logs()}")


def toml_str(s: str) -> str:
    return json.dumps(s)


def start_hubdesk(bin_: Path, env: dict, addr: str, logdir: Path) -> CampHubdesk:
    last = None
    for attempt in range(1, 4):
        port = free_port(addr)
        url = f"http://{addr}:{port}"
        e = dict(env, HUBDESK_BIND=f"{addr}:{port}", HUBDESK_PUBLIC_URL=url)
        out, err = logdir / f"hubdesk-{attempt}.stdout.log", logdir / f"hubdesk-{attempt}.stderr.log"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen([str(bin_), "serve"], env=e, stdin=subprocess.DEVNULL, stdout=fo,
                                    stderr=fe, start_new_session=True, cwd=e["HUBDESK_DATA_DIR"])
        hd = CampHubdesk(url, e, out, err, proc)
        why = base._wait_ready(hd, float(os.environ.get("HUBDESK_E2E_READY_TIMEOUT", "60")))
        if why is None:
            return hd
        hd.stop()
        last = f"hubdesk at {url}: {why}\n{hd.logs()}"
        if "in use" not in base._tail(err).lower():
            break
    raise CampError(last)


# --------------------------------------------------------------------------------------------
# misc


def wait_for(what: str, predicate: Callable[[], object], timeout: float, every: float = 0.5):
    """Polls predicate until it returns something truthy; returns it or fails saying `what`."""
    deadline = time.monotonic() + timeout
    last_err = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - kept for the message
            last_err = e
        if time.monotonic() > deadline:
            raise CampError(f"timed out after {timeout:.0f} s waiting for {what}"
                            + (f" (last error: {last_err!r})" if last_err else ""))
        time.sleep(every)


def escape_user(name: str) -> str:
    """escapism as dockerspawner uses it (safe: lowercase letters and digits; '-' -> '-2d')."""
    safe = set("abcdefghijklmnopqrstuvwxyz0123456789")
    return "".join(c if c in safe else "-" + c.encode().hex() for c in name)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True



# --------------------------------------------------------------------------------------------
# the whole camp


HUB_CONFIG = REPO / "deploy" / "jupyterhub_config.py"
HUB_SPAWNER_MODULE = REPO / "deploy" / "hub" / "hubdesk_spawner.py"
CLIENT_ID = "jupyterhub"
HUB_PORT = 8000
ADMIN = "boss"
COUNSELOR = "coach"


class Camp:
    """Builds the camp piece by piece; :meth:`teardown` removes whatever was built (safe after a
    failure at any step, and twice)."""

    def __init__(self, hubdesk_bin: Path, workdir: Path):
        self.bin = hubdesk_bin
        self.id = "camp" + secrets.token_hex(4)
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        # Not under pytest's tmp dir (mode 700): the homes root is bind-mounted into node
        # containers and the embedded postgres runs as `postgres`.
        self.root_dir = Path(f"/var/tmp/hubdesk-{self.id}")
        self.root_dir.mkdir(mode=0o755)
        self.homes = self.root_dir / "homes"
        self.homes.mkdir(mode=0o755)
        self.template = self.root_dir / "template"
        self.template.mkdir(mode=0o755)
        (self.template / "README.md").write_text("# Welcome to camp\n\nYour work lives here.\n")
        (self.template / "welcome.ipynb").write_text(json.dumps({
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Welcome to camp"]}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        self.phases = Phases()
        self.images: dict[str, str] = {}
        self.swarm: Swarm | None = None
        self.moto: Moto | None = None
        self.hv: Hypervisor | None = None
        self.hubdesk: CampHubdesk | None = None
        self.hub_container: str | None = None
        self.overlay = f"{LABEL}-{self.id}-overlay"
        self.dbname: str | None = None
        self.admin_url = os.environ.get("DATABASE_URL")
        self.admin_password = "Admin-camp-" + secrets.token_hex(8)
        self.counselor_password = "Counsel-" + secrets.token_hex(8)
        self.client_secret = secrets.token_urlsafe(32)
        self.hub_token = secrets.token_hex(24)
        self.e2e_hub_token = secrets.token_hex(24)
        self.cluster = self.id
        self.data_dir = self.root_dir / "hubdesk-data"
        self.data_dir.mkdir(mode=0o755)
        self.torn_down = False
        self.worker_toml_extra = ""  # more [cluster.worker] lines (a test's own template)
        self.toml_extra = ""  # more tables at the end of hubdesk.toml (e.g. [calendar])

    # -- pieces ------------------------------------------------------------------------------

    def build_images(self, names: list[str]) -> None:
        self.images = images(*names)

    def swarm_up(self) -> None:
        extra = {
            "HUBDESK_NODE_IMAGE": self.images["NODE_IMAGE"],
            "HUBDESK_TINY_IMAGE": self.images["TINY_IMAGE"],
            "HUBDESK_SWARM_INIT_ARGS": "--dispatcher-heartbeat 1s",
        }
        if self.images.get("HUB_IMAGE"):
            extra["HUBDESK_SWARM_LOAD_IMAGES"] = self.images["HUB_IMAGE"]
        self.swarm = Swarm.up(self.id, 0, extra)
        # The hub's network: an attachable overlay, as deploy/ makes it on the hub node.
        self.swarm.inner("network", "create", "--driver", "overlay", "--attachable",
                         "--label", f"{LABEL}={self.id}", self.overlay)

    def moto_up(self) -> None:
        self.moto = Moto(self.logdir)
        self.subnet_id, self.sg_id = self.moto.network(self.swarm.subnet)
        self.ami_id = self.moto.some_ami()

    def hypervisor_up(self, ami_images: list[str],
                      machine_setup: Callable[[str, str], None] | None = None) -> None:
        self.hv = Hypervisor(self.swarm, self.moto, self.cluster, ami_images,
                             mounts=[f"{self.homes}:{self.homes}"], machine_setup=machine_setup)

    @property
    def hub_url(self) -> str:
        return f"http://{self.swarm.manager_ip}:{HUB_PORT}"

    def hubdesk_up(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HUBDESK_", "AWS_", "DATABASE_URL"))}
        env.update(
            RUST_BACKTRACE="1",
            HUBDESK_DATA_DIR=str(self.data_dir),
            HUBDESK_HUB_URL=f"{self.hub_url}/hub/",
            HUBDESK_OIDC_CLIENT_ID=CLIENT_ID,
            HUBDESK_OIDC_CLIENT_SECRET=self.client_secret,
            HUBDESK_OIDC_REDIRECT_URIS=f"{self.hub_url}/hub/oauth_callback",
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL=self.moto.url,
        )
        if self.admin_url:
            self.dbname = "e2e_camp_" + secrets.token_hex(6)
            res = base._psql(self.admin_url, f'CREATE DATABASE "{self.dbname}"')
            if res.returncode != 0:
                raise CampError(f"CREATE DATABASE {self.dbname}: {res.stderr}")
            env["DATABASE_URL"] = base._with_dbname(self.admin_url, self.dbname)
        (self.data_dir / "hubdesk.toml").write_text(f"""\
[homes]
root = {toml_str(str(self.homes))}
template = {toml_str(str(self.template))}

[hub]
api_token = {toml_str(self.hub_token)}

[cluster]
enabled = true
name = {toml_str(self.cluster)}
docker_host = {toml_str(self.swarm.docker_host)}
manager_addr = {toml_str(self.swarm.manager_ip + ":2377")}
notebook_memory_bytes = {512 * 1024 * 1024}
join_timeout_secs = 240
drain_timeout_secs = 180

[cluster.worker]
ami = {toml_str(self.ami_id)}
instance_type = "t3.large"
subnet_id = {toml_str(self.subnet_id)}
security_group_ids = [{toml_str(self.sg_id)}]
{self.worker_toml_extra}
{self.toml_extra}""")
        base._run_cli(self.bin, ["migrate"], env)
        base._run_cli(self.bin, ["admin", "create", ADMIN, "--password-stdin"], env,
                      stdin=self.admin_password + "\n")
        self.hubdesk = start_hubdesk(self.bin, env, self.swarm.gateway, self.logdir)

    def hub_env(self) -> dict[str, str]:
        """The environment deploy/jupyterhub_config.py runs with in the hub container."""
        return {
            "HUBDESK_URL": self.hubdesk.url,
            "HUB_OAUTH_CLIENT_ID": CLIENT_ID,
            "HUB_OAUTH_CLIENT_SECRET": self.client_secret,
            "HUB_STATE_DIR": "/srv/jupyterhub",
            "HUB_BIND_URL": f"http://0.0.0.0:{HUB_PORT}",
            "HUB_PUBLIC_URL": self.hub_url,
            "HUB_INTERNAL_IP": "0.0.0.0",
            "HUB_INTERNAL_PORT": "8081",
            "HUB_CONNECT_IP": "hub",
            "HUB_PROXY_API_URL": "http://127.0.0.1:8001",
            "HUB_LOG_LEVEL": "DEBUG",
            "HUBDESK_HUB_API_TOKEN": self.hub_token,
            "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
            "HUB_SPAWNER": "swarm",
            "HUB_NOTEBOOK_IMAGE": self.images["NOTEBOOK_IMAGE"],
            "HUB_SWARM_NETWORK": self.overlay,
            "HUB_SWARM_ENDPOINT_MODE": "dnsrr",
            "HUB_HOMES_VOLUME": "bind",
            "HUB_HOMES_ROOT": str(self.homes),
            "HUB_MEM_LIMIT": "1G",
            "HUB_MEM_GUARANTEE": "256M",
            "HUB_SPAWN_START_TIMEOUT": "240",
            "HUB_EXTRA_CONFIG": "/etc/jupyterhub/camp_extra.py",
            "E2E_HUB_TOKEN": self.e2e_hub_token,
        }

    def hub_up(self) -> None:
        """JupyterHub in a container on the manager (the hub node), on the overlay network, its
        proxy published on the manager's address; the manager's engine socket mounted in."""
        name = "hub"
        args = ["create", "--name", name, "--hostname", name, "--network", self.overlay,
                "--label", f"{LABEL}={self.id}",
                "-p", f"{HUB_PORT}:{HUB_PORT}",
                "-v", "/var/run/docker.sock:/var/run/docker.sock"]
        for k, v in self.hub_env().items():
            args += ["-e", f"{k}={v}"]
        args.append(self.images["HUB_IMAGE"])
        self.swarm.inner(*args)
        self.hub_container = name
        extra = self.workdir / "camp_extra.py"
        extra.write_text(self.hub_extra_config())
        self.swarm.inner("cp", str(HUB_CONFIG), f"{name}:/etc/jupyterhub/jupyterhub_config.py")
        self.swarm.inner("cp", str(HUB_SPAWNER_MODULE), f"{name}:/etc/jupyterhub/hubdesk_spawner.py")
        self.swarm.inner("cp", str(extra), f"{name}:/etc/jupyterhub/camp_extra.py")
        self.swarm.inner("start", name)
        wait_for("the hub's API on " + self.hub_url,
                 lambda: self._hub_alive() and requests.get(f"{self.hub_url}/hub/api/", timeout=3).ok,
                 timeout=120)

    def hub_extra_config(self) -> str:
        """HUB_EXTRA_CONFIG: the test's admin service `e2e` (users, servers, access)."""
        return (
            "import os\n"
            "c.JupyterHub.services.append({'name': 'e2e', 'api_token': os.environ['E2E_HUB_TOKEN']})\n"
            "c.JupyterHub.load_roles.append({'name': 'e2e', 'scopes': ['admin:users', 'admin:servers',"
            " 'access:servers', 'read:groups'], 'services': ['e2e']})\n")

    def _hub_alive(self) -> bool:
        state = self.swarm.inner("inspect", "-f", "{{.State.Status}}", self.hub_container, check=False)
        if state in ("exited", "dead"):
            raise CampError(f"the hub container {state}:\n{self.hub_logs()}")
        return True

    # -- the hub's REST API (the e2e service: admin on users/servers) --------------------------

    def hub_api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.request(method, f"{self.hub_url}/hub/api{path}",
                                headers={"Authorization": f"token {self.e2e_hub_token}"}, **kw)

    def hub_user(self, name: str) -> dict:
        r = self.hub_api("GET", f"/users/{name}")
        r.raise_for_status()
        return r.json()

    # -- the swarm's view ----------------------------------------------------------------------

    def nodes(self) -> list[dict]:
        out = self.swarm.inner("node", "ls", "--format", "{{json .}}")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def node_addr(self, node_id: str) -> str:
        return self.swarm.inner("node", "inspect", "-f", "{{.Status.Addr}}", node_id)

    def service_tasks(self, service: str) -> list[dict]:
        out = self.swarm.inner("service", "ps", "--no-trunc", "--format", "{{json .}}", service, check=False)
        return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]

    def running_node_of(self, service: str) -> str | None:
        """The hostname of the node where the service's task runs now, if one does."""
        for t in self.service_tasks(service):
            if t.get("DesiredState") == "Running" and str(t.get("CurrentState", "")).startswith("Running"):
                return t.get("Node")
        return None

    def notebook_containers(self, user: str) -> list[str]:
        """`docker ps` lines of the user's running notebook containers on every worker (label
        hubdesk.user); an exited container holds no mount."""
        lines = []
        for iid, node in list(self.hv.running.items()):
            out = run(["docker", "exec", node, "docker", "ps", "--filter", f"label=hubdesk.user={user}",
                       "--format", "{{.ID}} {{.Status}}"], check=False).stdout.split("\n")
            lines += [f"{self.hv.ips.get(iid)}: {x}" for x in out if x.strip()]
        return lines

    # -- logs ----------------------------------------------------------------------------------

    def hub_logs(self, lines: int = 1500) -> str:
        if not (self.swarm and self.hub_container):
            return "(no hub container)"
        res = run(["docker", "-H", self.swarm.docker_host, "logs", "--tail", str(lines), self.hub_container],
                  check=False)
        return res.stdout + res.stderr

    def report_sections(self) -> list[tuple[str, str]]:
        out = []
        try:
            if self.hubdesk:
                out.append((f"hubdesk {self.hubdesk.url}", self.hubdesk.logs()))
            if self.hub_container:
                out.append(("hub container", self.hub_logs()))
            if self.hv:
                out.append(("hypervisor", self.hv.report()))
            if self.swarm:
                services = self.swarm.inner("service", "ls", check=False)
                tasks = "\n".join(
                    self.swarm.inner("service", "ps", "--no-trunc", s, check=False)
                    for s in self.swarm.inner("service", "ls", "-q", check=False).split())
                nodes = self.swarm.inner("node", "ls", check=False)
                out.append(("swarm", f"{nodes}\n\n{services}\n\n{tasks}"))
                out.append(("node logs", node_logs(self.swarm, self.hv)))
            if self.moto:
                out.append(("moto", base._tail(self.moto.log_path, 40)))
        except Exception as e:  # noqa: BLE001 - a report must not hide the failure
            out.append(("camp report", f"could not collect everything: {e!r}"))
        return out

    # -- teardown ------------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Everything down; returns what went wrong (empty: all clean)."""
        problems: list[str] = []
        if self.torn_down:
            return problems
        self.torn_down = True

        def step(what, fn):
            t0 = time.monotonic()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - go on with the rest
                problems.append(f"{what}: {e!r}")
            log(f"teardown {what}: {time.monotonic() - t0:.1f} s")

        if self.hv:
            step("hypervisor", self.hv.stop)
        if self.hubdesk:
            step("hubdesk", self.hubdesk.stop)
        if self.moto:
            step("moto", self.moto.stop)
        if self.swarm:
            # The nodes' own state (services, the hub container, notebook volumes) lives in
            # their /var/lib/docker volumes: removing the nodes removes it all.
            step("swarm down", lambda: log(self.swarm.down()))
        if self.dbname:
            res = base._psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            if res.returncode != 0:
                problems.append(f"drop database {self.dbname}: {res.stderr}")
        # hubdesk's embedded postgres (no DATABASE_URL) stops with hubdesk; the files go here.
        step("files", lambda: shutil.rmtree(self.root_dir))
        left = leftovers(self.id)
        if left:
            problems.append(f"left on the host engine with label {LABEL}={self.id}: {left}")
        for what, proc in (("hubdesk", self.hubdesk and self.hubdesk.proc), ("moto", self.moto and self.moto.proc)):
            if proc is not None and proc.poll() is None:
                problems.append(f"{what} (pid {proc.pid}) still running")
        if self.root_dir.exists():
            problems.append(f"{self.root_dir} still exists")
        return problems


# --------------------------------------------------------------------------------------------
# the hypervisor as a process of its own: the Rust cluster tests and bench/cluster spawn it
# (tests/api/cluster_peers.rs) as they spawn moto_server, so there is one hypervisor to change.


def _hypervisor_process(argv: list[str]) -> int:
    """`python camp_support.py hypervisor --swarm-id ID --moto-url URL --cluster C --ami-image I`

    The swarm is swarm.sh's: its ``HUBDESK_*`` variables come in the environment. One JSON line
    per happening on stdout — ``{"ready": …}`` once the AMI is prepared, then ``{"booted": iid,
    "container", "ip", "log"}``, ``{"removed": iid}``, ``{"error": …}`` — and the log on stderr.
    It watches until its stdin closes (the parent went away), then stops."""
    import argparse

    ap = argparse.ArgumentParser(prog="camp_support.py hypervisor")
    ap.add_argument("--swarm-id", required=True)
    ap.add_argument("--moto-url", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--ami-image", action="append", default=[])
    ap.add_argument("--mount", action="append", default=[])
    args = ap.parse_args(argv)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # log() and anything else printed go to the log, not the protocol
    lock = threading.Lock()

    def emit(msg: dict) -> None:
        with lock:
            out.write(json.dumps(msg) + "\n")

    swarm = Swarm(args.swarm_id, {k: v for k, v in os.environ.items() if k.startswith("HUBDESK_")})
    try:
        hv = Hypervisor(swarm, MotoAt(args.moto_url), args.cluster, args.ami_image, args.mount,
                        notify=emit)
    except Exception as e:  # noqa: BLE001 - told to the parent, which fails the test with it
        emit({"failed": str(e)})
        return 1
    emit({"ready": hv.ami_volume})
    for _ in sys.stdin:
        pass
    hv.stop()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["hypervisor"]:
        sys.exit("usage: camp_support.py hypervisor --help")
    sys.exit(_hypervisor_process(sys.argv[2:]))
