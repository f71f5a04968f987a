"""A camp from zero in the box: the peers of tests/e2e/test_zero.py.

`hubdesk aws up` runs against moto; the box's hypervisor (:class:`Box`) boots **every** instance
the camp launches (the NFS node, the hub node) as a container of the `sysnode` image
(tests/swarm/images.sh: Debian bookworm, systemd as PID 1, the node scripts' packages baked in),
at the private address EC2 gave it, on a network of the test's own with the camp's subnet
(10.42.1.0/24, fixed by `hubdesk aws up`). Each instance gets, as on EC2:

- its metadata and user-data from a stand-in metadata service (standins/imds.py at
  169.254.169.254, over a point-to-point link per instance, honouring the metadata options
  moto recorded); the image's cloud-init stand-in runs the user-data once per instance, its
  output in /var/log/cloud-init-output.log and on the console (`docker logs`: the box's
  `get-console-output`);
- a root disk for Docker from its "AMI" (a /var/lib/docker with images preloaded: the hub
  image for the hub node, so the node needs no registry);
- the EBS volumes moto says are attached to it, as real block devices: one sparse file per
  volume id on a loop device (the same device for the volume's whole life, so a second
  `aws up` finds the same filesystem), with the udev link of a Nitro instance
  (/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…) made inside the node.

The one stand-in for what this kernel lacks (no NFS server or client): the sysnode image's
`nfs-kernel-server` and `nfs-common` packages publish an export by a bind mount under /box-nfs,
a directory shared by every node of the box with mount propagation (see
tests/swarm/images/sysnode/). Everything else in deploy/nfs-node.sh and deploy/hub-node.sh runs
as on EC2.

Everything created on the host engine carries the label ``hubdesk-test=<box id>``.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from functools import partial
from pathlib import Path

import camp_support as cs

STANDINS = Path(__file__).resolve().parent / "standins"
SUBNET = "10.42.1.0/24"  # hubdesk aws up: the camp's subnet (src/provision/model.rs)
GATEWAY = "10.42.1.1"  # the host on the box's network
IMDS_IP = "10.42.1.250"
NFS_IP, HUB_IP = "10.42.1.10", "10.42.1.11"
CAMP = "zero"
CAP_NAMES = ("CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
             "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
             "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
             "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
             "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ").split()


def log(msg: str) -> None:
    print(f"[box {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Box:
    def __init__(self, hubdesk_bin: Path, workdir: Path):
        self.bin = hubdesk_bin
        self.id = "zero" + secrets.token_hex(3)
        self.label = f"{cs.LABEL}={self.id}"
        self.network = f"{cs.LABEL}-{self.id}"
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        # Not under pytest's tmp dir (mode 700): node containers bind-mount parts of it.
        self.root = Path(f"/var/tmp/hubdesk-{self.id}")
        self.root.mkdir(mode=0o755)
        self.nfs_dir = self.root / "box-nfs"
        self.disks = self.root / "disks"
        self.disks.mkdir()
        self.imds_state = self.root / "imds-state.json"
        self.imds_state.write_text("{}")
        self.images: dict[str, str] = {}
        self.moto: cs.Moto | None = None
        self.loops: dict[str, str] = {}  # volume id -> /dev/loopN (kept for the volume's life)
        self.running: dict[str, str] = {}  # instance id -> container
        self.ips: dict[str, str] = {}
        self.plugged: set[tuple[str, str]] = set()  # (instance, volume)
        self.events: list[str] = []
        self.errors: list[str] = []
        self._booting: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._veths = 0
        self.release: http.server.ThreadingHTTPServer | None = None
        self.release_url = ""
        self.release_sha256 = ""
        self.torn_down = False

    # -- the pieces ----------------------------------------------------------------------------

    def up(self) -> None:
        self.images = cs.images("node", "hub", "notebook", "sysnode")
        self.privileges = self._privileges()
        cs.docker("network", "create", "--internal", "--subnet", SUBNET, "--gateway", GATEWAY,
                  "--label", self.label, self.network)
        # The NFS stand-in's shared directory: a shared mount, so a bind made inside the NFS
        # node propagates here and on to every other node (which mount it rslave).
        self.nfs_dir.mkdir()
        cs.run(["mount", "--bind", str(self.nfs_dir), str(self.nfs_dir)])
        cs.run(["mount", "--make-rshared", str(self.nfs_dir)])
        self._imds_up()
        # EC2 for `hubdesk aws` on the host and for the hub node's cluster desk alike.
        self.moto = cs.Moto(self.logdir, host=GATEWAY)
        self._hub_profile()
        self._amis()
        self._release_up()
        self._thread = threading.Thread(target=self._watch, name="box-hypervisor", daemon=True)
        self._thread.start()

    def _privileges(self) -> list[str]:
        """--privileged, or near-privileged where the engine cannot grant every capability
        (tests/swarm/swarm.sh's rule; the image's entrypoint then makes /sys and cgroups rw)."""
        probe = cs.run(["docker", "run", "--rm", "--privileged", "--network", "none",
                        "--entrypoint", "/bin/true", self.images["SYSNODE_IMAGE"]], check=False)
        if probe.returncode == 0:
            return ["--privileged"]
        pid = cs.run(["pgrep", "-xo", "dockerd"], check=False).stdout.strip() or "self"
        bnd = next(int(line.split()[1], 16) for line in open(f"/proc/{pid}/status")
                   if line.startswith("CapBnd"))
        args = ["--cap-add", "ALL"]
        args += [a for i, c in enumerate(CAP_NAMES) if not (bnd >> i) & 1 for a in ("--cap-drop", c)]
        return args + ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                       "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm"]

    def _imds_up(self) -> None:
        ns = self.imds_ns = f"{cs.LABEL}-{self.id}-imds-net"
        cs.docker("run", "-d", "--name", ns, "--label", self.label, "--network", self.network,
                  "--ip", IMDS_IP, "--cap-add", "NET_ADMIN", "--entrypoint", "/bin/sh",
                  self.images["SYSNODE_IMAGE"], "-c",
                  "ip addr add 169.254.169.254/32 dev lo && exec sleep infinity")
        self.imds = f"{cs.LABEL}-{self.id}-imds"
        cs.docker("run", "-d", "--name", self.imds, "--label", self.label,
                  "--network", f"container:{ns}", "-v", f"{STANDINS}:/standins:ro",
                  "-v", f"{self.root}:/state:ro", "--entrypoint", "/usr/bin/python3",
                  self.images["SYSNODE_IMAGE"], "-u", "/standins/imds.py",
                  "/state/imds-state.json", "80")

    def _amis(self) -> None:
        """Two "AMIs": a /var/lib/docker with the hub image for the hub node (tagged as
        hub-node.sh's HUB_IMAGE default, so the node runs it without building), and with the
        notebook image for workers."""
        self.ami_volumes = {}
        for role, images in (("hub", [(self.images["HUB_IMAGE"], "hubdesk/jupyterhub:6.1.1")]),
                             ("worker", [(self.images["NOTEBOOK_IMAGE"], None)])):
            vol = f"{cs.LABEL}-{self.id}-ami-{role}"
            self.ami_volumes[role] = vol
            cs.docker("volume", "create", "--label", self.label, vol)
            seed = f"{vol}-seed"
            cs.docker("run", "-d", "--name", seed, "--label", self.label, "--network", "none",
                      "-v", f"{vol}:/var/lib/docker", *self.privileges, self.images["NODE_IMAGE"])
            try:
                cs.wait_for(f"the {role} AMI seed's dockerd", lambda: cs.run(
                    ["docker", "exec", seed, "docker", "version"], check=False).returncode == 0, 60)
                for image, tag in images:
                    with open(cs._saved_tar(image), "rb") as f:
                        res = subprocess.run(["docker", "exec", "-i", seed, "docker", "load", "-q"],
                                             stdin=f, capture_output=True, timeout=900)
                    if res.returncode != 0:
                        raise cs.CampError(f"loading {image}: {res.stderr.decode(errors='replace')}")
                    if tag:
                        cs.docker("exec", seed, "docker", "tag", image, tag)
                cs.docker("stop", "-t", "30", seed)
            finally:
                cs.docker("rm", "-f", "-v", seed, check=False)

    HUB_PROFILE = "camp-hub"

    def _hub_profile(self) -> None:
        """The hub node's instance profile (README step 1), made in moto's IAM: the metadata
        stand-in hands its role's credentials to the hub node, as EC2 does."""
        import boto3

        iam = boto3.client("iam", endpoint_url=self.moto.url, region_name=cs.REGION,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        iam.create_role(RoleName=self.HUB_PROFILE, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "ec2.amazonaws.com"}}]}))
        iam.put_role_policy(RoleName=self.HUB_PROFILE, PolicyName="hubdesk",
                            PolicyDocument=(cs.REPO / "deploy" / "iam-policy.json").read_text())
        iam.create_instance_profile(InstanceProfileName=self.HUB_PROFILE)
        iam.add_role_to_instance_profile(InstanceProfileName=self.HUB_PROFILE, RoleName=self.HUB_PROFILE)

    def _release_up(self) -> None:
        """The hubdesk release the hub node downloads (`aws up --hubdesk-url`): this build's
        binary, served by the host on the box's network with its SHA-256."""
        h = hashlib.sha256()
        with open(self.bin, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.release_sha256 = h.hexdigest()
        # Only the binary is served (a hard link in a directory of its own, or a copy).
        release = self.root / "release"
        release.mkdir()
        try:
            os.link(self.bin, release / self.bin.name)
        except OSError:
            shutil.copy2(self.bin, release / self.bin.name)
        handler = partial(_QuietHandler, directory=str(release))
        self.release = http.server.ThreadingHTTPServer((GATEWAY, 0), handler)
        threading.Thread(target=self.release.serve_forever, daemon=True).start()
        self.release_url = f"http://{GATEWAY}:{self.release.server_address[1]}/{self.bin.name}"

    # -- hubdesk aws, as the organizer runs it -------------------------------------------------

    def aws(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUBDESK_", "AWS_"))}
        env.update(AWS_ENDPOINT_URL=self.moto.url, AWS_REGION=cs.REGION,
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent/box",
                   AWS_SHARED_CREDENTIALS_FILE="/nonexistent/box")
        res = subprocess.run([str(self.bin), "aws", *args], env=env, capture_output=True,
                             text=True, timeout=timeout, cwd=self.root, stdin=subprocess.DEVNULL)
        (self.logdir / "aws.log").open("a").write(
            f"$ hubdesk aws {' '.join(args)}\n{res.stdout}{res.stderr}\n-> {res.returncode}\n")
        return res

    def up_args(self, *extra: str) -> list[str]:
        return ["--yes", "--camp", CAMP, "--ssh-cidr", f"{GATEWAY}/32",
                "--instance-profile", self.HUB_PROFILE,
                "--ami", self.moto.some_ami(), "--homes-gb", "2",
                "--hubdesk-url", self.release_url, "--hubdesk-sha256", self.release_sha256,
                "--notebook-image", self.images["NOTEBOOK_IMAGE"], *extra]

    # -- the hypervisor ----------------------------------------------------------------------

    def _watch(self) -> None:
        ec2 = self.moto.client()
        while not self._stop.is_set():
            try:
                # Every instance of this moto: the camp's nodes and the cluster desk's workers.
                res = ec2.describe_instances()
                vols = ec2.describe_volumes()["Volumes"]
            except Exception as e:  # noqa: BLE001 - moto going away at teardown
                if not self._stop.is_set():
                    self._event(f"describe: {e}")
                self._stop.wait(0.5)
                continue
            roots = {}  # instance -> its root device (the image's disk, not an EBS data volume)
            for r in res.get("Reservations", []):
                for inst in r.get("Instances", []):
                    iid, state = inst["InstanceId"], inst["State"]["Name"]
                    roots[iid] = inst.get("RootDeviceName", "/dev/sda1")
                    if state in ("pending", "running") and iid not in self._booting:
                        self._booting.add(iid)
                        self.refresh_imds()
                        threading.Thread(target=self._boot_thread, daemon=True,
                                         args=(iid, inst.get("PrivateIpAddress", ""), inst)).start()
                    if state in ("shutting-down", "terminated", "stopping", "stopped"):
                        self._power_off(iid, state)
            for v in vols:
                for a in v.get("Attachments", []):
                    key = (a["InstanceId"], v["VolumeId"])
                    if a.get("Device") == roots.get(a["InstanceId"]):
                        continue
                    with self._lock:
                        ready = a["InstanceId"] in self.running and key not in self.plugged
                    if ready and a.get("State", "attached") in ("attaching", "attached"):
                        self._plug(a["InstanceId"], v, a.get("Device", ""))
            self._stop.wait(0.5)

    def _event(self, msg: str) -> None:
        log(msg)
        with self._lock:
            self.events.append(f"{time.strftime('%H:%M:%S')} {msg}")

    def refresh_imds(self) -> None:
        ec2 = self.moto.client()
        view = {}
        for r in ec2.describe_instances()["Reservations"]:
            for i in r["Instances"]:
                if i["State"]["Name"] not in ("pending", "running") or not i.get("PrivateIpAddress"):
                    continue
                opts = i.get("MetadataOptions", {})
                ud = ec2.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="userData")
                view[i["PrivateIpAddress"]] = {
                    "instance_id": i["InstanceId"],
                    "hop_limit": opts.get("HttpPutResponseHopLimit", 1),
                    "http_tokens": opts.get("HttpTokens", "optional"),
                    "http_endpoint": opts.get("HttpEndpoint", "enabled"),
                    "role": ((i.get("IamInstanceProfile") or {}).get("Arn", "") or "/").rsplit("/", 1)[-1],
                    "user_data_b64": (ud.get("UserData") or {}).get("Value", ""),
                }
        tmp = self.imds_state.with_suffix(".tmp")
        tmp.write_text(json.dumps(view))
        tmp.rename(self.imds_state)

    def _boot_thread(self, iid: str, ip: str, inst: dict) -> None:
        try:
            name = self._boot(iid, ip, inst)
            with self._lock:
                self.running[iid] = name
                self.ips[iid] = ip
            self._event(f"{iid} booted as {name} ({ip})")
        except Exception as e:  # noqa: BLE001 - reported by the test
            with self._lock:
                self.errors.append(f"{iid}: {e}")
            self._event(f"{iid} failed to boot: {e}")

    def role_of(self, inst: dict) -> str:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        return tags.get("hubdesk:role", "worker")

    def _boot(self, iid: str, ip: str, inst: dict) -> str:
        role = self.role_of(inst)
        name = f"{cs.LABEL}-{self.id}-{role}-{iid}"
        disk = f"{name}-docker"
        self._event(f"{iid} ({role}, {ip}): booting {name}")
        cs.docker("volume", "create", "--label", self.label, disk)
        ami = self.ami_volumes.get(role) or self.ami_volumes["worker"]
        cs.docker("run", "--rm", "--network", "none", "--label", self.label,
                  "-v", f"{ami}:/from:ro", "-v", f"{disk}:/to", "--entrypoint", "/bin/cp",
                  self.images["SYSNODE_IMAGE"], "-a", "/from/.", "/to/", timeout=900)
        cs.docker("create", "-t", "--name", name, "--hostname", "ip-" + ip.replace(".", "-"),
                  "--label", self.label, "--label", f"{cs.LABEL}.instance={iid}",
                  "--network", self.network, "--ip", ip, *self.privileges,
                  "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                  "-v", f"{disk}:/var/lib/docker",
                  # The NFS node publishes into the shared directory (rshared); the others
                  # only receive (rslave), so nothing mounted inside them (their Docker's
                  # layers) propagates out to the host.
                  "-v", f"{self.nfs_dir}:/box-nfs:{'rshared' if role == 'nfs' else 'rslave'}",
                  self.images["SYSNODE_IMAGE"])
        # The one thing of EC2's that lives elsewhere in the box: the region's EC2 endpoint
        # (moto). Every service of the machine sees it, as the real endpoint is seen by name.
        conf_d = self.root / iid / "system.conf.d"
        conf_d.mkdir(parents=True)
        (conf_d / "box-endpoint.conf").write_text("# the box: EC2 of this region is moto (tests/e2e/zero_support.py)\n"
                            f"[Manager]\nDefaultEnvironment=AWS_ENDPOINT_URL={self.moto.url}\n")
        cs.docker("cp", str(conf_d), f"{name}:/etc/systemd/")
        cs.docker("start", name)
        self._link_to_imds(name, ip)
        if role == "worker":
            # The notebooks' homes: on EC2 each notebook's Docker volume mounts the NFS export
            # itself (HUB_HOMES_VOLUME=nfs, a kernel NFS mount this kernel cannot make); in the
            # box the worker has the export at /srv/homes (the NFS stand-in) and the hub binds
            # from there (HUB_HOMES_VOLUME=bind, see kernel_standins_for_hub).
            src = f"/box-nfs/{NFS_IP}/srv/nfs/homes"
            cs.docker("exec", name, "sh", "-c", f"mkdir -p /srv/homes && mount --bind {src} /srv/homes")
        return name

    def _link_to_imds(self, node: str, ip: str) -> None:
        with self._lock:
            self._veths += 1
            names = (f"hdz{self._veths}{self.id[-4:]}a", f"hdz{self._veths}{self.id[-4:]}b")
        cs.link_to_imds(node, self.imds_ns, ip, names)

    def _plug(self, iid: str, vol: dict, device: str) -> None:
        """An attached EBS volume as a block device in the node: the volume's loop device, its
        node in the container's /dev and the link udev makes on a Nitro instance."""
        vid = vol["VolumeId"]
        with self._lock:
            node = self.running[iid]
            self.plugged.add((iid, vid))
        if vid not in self.loops:
            img = self.disks / f"{vid}.img"
            if not img.exists():
                with open(img, "wb") as f:
                    f.truncate(int(vol.get("Size", 2)) * 1024 ** 3)
            self.loops[vid] = cs.run(["losetup", "-f", "--show", str(img)]).stdout.strip()
        loop = self.loops[vid]
        minor = os.minor(os.stat(loop).st_rdev)
        serial = vid.replace("-", "")
        cs.docker("exec", node, "sh", "-c",
                  f"[ -b {loop} ] || mknod {loop} b 7 {minor}; mkdir -p /dev/disk/by-id && "
                  f"ln -sf {loop} /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{serial}")
        self._event(f"{vid} attached to {iid} as {device} ({loop})")

    def _power_off(self, iid: str, state: str) -> None:
        with self._lock:
            name = self.running.pop(iid, None)
            self.plugged = {p for p in self.plugged if p[0] != iid}
        if not name:
            return
        self._event(f"{iid} {state}: removing {name}")
        ip = self.ips.get(iid, "")
        merged = cs.docker("inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", name, check=False)
        cs.docker("rm", "-f", "-v", name, check=False)
        # A node with shared propagation (the NFS node) leaves copies of its own mounts (the
        # homes filesystem) under its root on the host: gone with it.
        sweep_mounts(merged)
        cs.docker("volume", "rm", "-f", f"{name}-docker", check=False)
        # An NFS node's exports live on in the shared directory's other copies: gone with it.
        if ip and (self.nfs_dir / ip).exists():
            cs.run(["umount", "-R", "-l", str(self.nfs_dir / ip)], check=False)

    # -- for the test --------------------------------------------------------------------------

    def kernel_standins_for_hub(self, hub: str) -> None:
        """What this kernel lacks, on the hub's side (deploy/jupyterhub_config.py knows both
        shapes of each; the other tests run them too):
        - the notebooks mount their homes by bind from the workers' /srv/homes (the NFS
          stand-in) instead of by a kernel NFS mount (HUB_HOMES_VOLUME=bind);
        - the notebook services' endpoint is DNS round robin, not a virtual IP: a swarm VIP
          needs IPVS, which this kernel does not have (HUB_SWARM_ENDPOINT_MODE=dnsrr).
        The hub's environment file as hub-node.sh wrote it, changed in these lines only."""
        self.sh(hub, "sed -i 's/^HUB_HOMES_VOLUME=nfs$/HUB_HOMES_VOLUME=bind/' /etc/jupyterhub/env"
                     " && grep -q '^HUB_HOMES_VOLUME=bind$' /etc/jupyterhub/env"
                     " && echo HUB_HOMES_ROOT=/srv/homes >> /etc/jupyterhub/env"
                     " && echo HUB_SWARM_ENDPOINT_MODE=dnsrr >> /etc/jupyterhub/env"
                     " && systemctl restart jupyterhub")

    def reboot(self, iid: str) -> None:
        """A reboot of the instance: the machine restarts (systemd boots again from its disk;
        cloud-init does not run the user-data again) and gets its link to the metadata service
        back. Not for a node with EBS volumes (the box plugs them after boot, EC2 before)."""
        with self._lock:
            name, ip = self.running[iid], self.ips[iid]
        assert not any(p[0] == iid for p in self.plugged), "reboot of a node with volumes"
        self._event(f"{iid}: reboot")
        cs.docker("restart", "-t", "20", name, timeout=120)
        self._link_to_imds(name, ip)

    def workers(self) -> dict[str, str]:
        """instance id -> container of the booted workers."""
        with self._lock:
            return {i: n for i, n in self.running.items() if "-worker-" in n}

    def node(self, role: str, timeout: float = 300) -> tuple[str, str]:
        """(instance id, container) of the camp's running node of this role."""
        def find():
            ec2 = self.moto.client()
            res = ec2.describe_instances(Filters=[
                {"Name": "tag:hubdesk:camp", "Values": [CAMP]},
                {"Name": "tag:hubdesk:role", "Values": [role]},
                {"Name": "instance-state-name", "Values": ["running"]}])
            for r in res["Reservations"]:
                for i in r["Instances"]:
                    with self._lock:
                        if i["InstanceId"] in self.running:
                            return i["InstanceId"], self.running[i["InstanceId"]]
            if self.errors:
                raise cs.CampError("; ".join(self.errors))
            return None
        return cs.wait_for(f"the {role} node", find, timeout)

    def sh(self, node: str, script: str, timeout: float = 120, check: bool = True) -> str:
        return cs.run(["docker", "exec", node, "sh", "-c", script], timeout=timeout, check=check).stdout

    def booted(self, node: str, iid: str, timeout: float = 900) -> str:
        """Waits for the instance's user-data to finish; its exit code must be 0. Returns the
        console output."""
        marker = f"/var/lib/cloud/instances/{iid}/boot-finished"
        cs.wait_for(f"{node}'s user-data", lambda: cs.run(
            ["docker", "exec", node, "test", "-e", marker], check=False).returncode == 0
            or self._dead(node), timeout, every=2)
        rc = self.sh(node, f"cat /var/lib/cloud/instances/{iid}/rc 2>/dev/null || echo none").strip()
        console = self.console(node)
        if rc != "0":
            raise cs.CampError(f"{node}: user-data exited {rc}\n{console[-6000:]}\n"
                               f"{self.sh(node, 'journalctl --no-pager -n 80 2>&1', check=False)}")
        return console

    def _dead(self, node: str) -> bool:
        state = cs.docker("inspect", "-f", "{{.State.Running}}", node, check=False)
        if state != "true":
            raise cs.CampError(f"{node} stopped:\n{cs.docker('logs', '--tail', '100', node, check=False)}")
        return False

    def console(self, node: str) -> str:
        res = cs.run(["docker", "logs", node], check=False)
        return res.stdout + res.stderr

    def report(self) -> str:
        parts = ["events:", *self.events, "errors:", *self.errors]
        for iid, node in list(self.running.items()):
            parts.append(f"--- console of {node} (tail) ---\n{self.console(node)[-5000:]}")
            parts.append(f"--- journal of {node} (tail) ---\n" + cs.run(
                ["docker", "exec", node, "journalctl", "--no-pager", "-n", "60"],
                check=False).stdout)
            for unit in ("hubdesk", "jupyterhub"):
                parts.append(f"--- {unit} on {node} ---\n" + cs.run(
                    ["docker", "exec", node, "journalctl", "--no-pager", "-o", "cat", "-n", "40",
                     "-u", unit], check=False).stdout)
        aws_log = self.logdir / "aws.log"
        if aws_log.exists():
            parts.append(f"--- hubdesk aws ---\n{aws_log.read_text()[-5000:]}")
        return "\n".join(parts)

    def teardown(self) -> list[str]:
        if self.torn_down:
            return []
        if os.environ.get("HUBDESK_BOX_KEEP"):
            # Debugging: leave the box running (remove it with tests/swarm/swarm.sh down --all,
            # umount -R /var/tmp/hubdesk-zero*/box-nfs and losetup -D).
            log(f"HUBDESK_BOX_KEEP: the box {self.id} stays; moto at {self.moto.url if self.moto else '-'}")
            self.torn_down = True
            return []
        self.torn_down = True
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        if self.release:
            self.release.shutdown()
        for name in cs.docker("ps", "-aq", "--filter", f"label={self.label}", check=False).split():
            merged = cs.docker("inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", name, check=False)
            cs.docker("rm", "-f", "-v", name, check=False, timeout=120)
            sweep_mounts(merged)
        for v in cs.docker("volume", "ls", "-q", "--filter", f"label={self.label}", check=False).split():
            cs.docker("volume", "rm", "-f", v, check=False)
        cs.docker("network", "rm", self.network, check=False)
        if self.nfs_dir.exists():
            cs.run(["umount", "-R", "-l", str(self.nfs_dir)], check=False)
        for loop in self.loops.values():
            cs.run(["losetup", "-d", loop], check=False)
        if self.moto:
            self.moto.stop()
        left = cs.leftovers(self.id)
        if not left:
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=False)
        return left


def sweep_mounts(below: str) -> None:
    """Lazily unmounts every host mount at or below `below` (deepest first)."""
    if not below or below == "/" or not below.startswith("/"):
        return
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == below or point.startswith(below.rstrip("/") + "/"):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        cs.run(["umount", "-l", point], check=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
