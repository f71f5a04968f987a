"""The node scripts' commands, statically: deploy/hub-node.sh and deploy/nfs-node.sh on
Amazon Linux 2023 (dnf) and on Ubuntu (apt-get), side by side.

This machine has no Amazon Linux packages, so the dnf path cannot really run here (the Debian
path does, in the camp-in-a-box test). Each script runs with ``sh`` (dash) in a throwaway root:
a fresh /etc, /srv, /var, /opt, /tmp and /usr/local, the host's /usr under an overlay (what a
stub "package" adds lands in the overlay's upper dir), chrooted in a private mount namespace,
so the host's files are never touched. PATH starts with /stub/bin: every command that touches
the system (dnf, rpm, apt-get, dpkg, systemctl, docker, curl, mount, mountpoint, blkid,
mkfs.xfs, exportfs, openssl, journalctl, …) is ``tests/e2e/node_stubs/stub``, which logs its
arguments and answers plausibly. Everything else is real: the file writes, install, chown,
chmod, base64 | gunzip, and ``sha256sum -c`` of the hubdesk "release"
(``tests/e2e/node_stubs/hubdesk``, which the stub curl serves).

What it shows: which packages each package manager gets (and that a baked AMI or a re-run
fetches none), that the Amazon Linux path never calls apt-get, and that apart from package
names, PostgreSQL's directory and the NFS server's unit the two paths run the same commands
and write the same files. Needs root (mount namespace, chroot, a device node).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUBS = Path(__file__).with_name("node_stubs")

# What each path installs (the scripts' lists; the tests pin them).
HUB_PKGS = {
    "dnf": "docker nfs-utils nginx openssl postgresql15-server python3 tar gzip".split(),
    "apt": "docker.io nfs-common nginx openssl postgresql python3-venv curl".split(),
}
NFS_PKGS = {"dnf": ["nfs-utils", "xfsprogs"], "apt": ["nfs-kernel-server", "xfsprogs"]}
NFS_SERVER = {"dnf": "nfs-server", "apt": "nfs-kernel-server"}
PKG_TOOLS = {"dnf", "rpm", "apt-get", "dpkg"}
# The commands the stub stands in for (on both paths: nothing real may touch the host).
STUBBED = [
    "curl", "docker", "systemctl", "journalctl", "mount", "umount", "mountpoint", "blkid",
    "mkfs.xfs", "exportfs", "openssl", "sleep", "python3",
]
# Per flavour: the package manager, and the other one as a tripwire that logs and is "not found".
FLAVOURS = {"dnf": (["dnf", "rpm"], ["apt-get", "dpkg"]), "apt": (["apt-get", "dpkg"], [])}

RELEASE_URL = "https://releases.example/hubdesk-x86_64-linux"
RELEASE_SHA256 = hashlib.sha256((STUBS / "hubdesk").read_bytes()).hexdigest()
TOML = '# Written by `hubdesk aws up` for camp summer.\nbind = "127.0.0.1:8080"\n'
HUB_ENV = {
    "NFS_ADDR": "10.42.1.10",
    "HUBDESK_URL": RELEASE_URL,
    "HUBDESK_SHA256": RELEASE_SHA256,
    "DOMAIN": "",
    "EMAIL": "",
    "HOMES_UID": "1000",
    "HOMES_GID": "100",
    "NOTEBOOK_IMAGE": "registry.example/camp/notebook:2026",
    "HUBDESK_TOML": base64.b64encode(gzip.compress(TOML.encode())).decode(),
}
NFS_ENV = {"HOMES_VOLUME": "vol-0abc123", "EXPORT_CIDR": "10.42.0.0/16", "HOMES_UID": "1000", "HOMES_GID": "100"}
SWARM_INIT = (
    "docker", "swarm", "init", "--advertise-addr", "10.42.1.11",
    "--default-addr-pool", "10.128.0.0/9", "--default-addr-pool-mask-length", "24",
)
HUB_FSTAB = "10.42.1.10:/srv/nfs/homes /srv/homes nfs4 nfsvers=4.1,hard,noatime,_netdev 0 0"
NFS_FSTAB = "UUID=5e1f0c2a-7d3b-4c8e-9a61-0f2b3c4d5e6f /srv/nfs xfs defaults,nofail,noatime,prjquota 0 2"
EXPORT = "/srv/nfs/homes 10.42.0.0/16(rw,sync,no_subtree_check,root_squash)"
DEFAULT_HUB_IMAGE = "hubdesk/jupyterhub:6.1.1"

# Runs in a private mount namespace: /usr as an overlay, a fresh /usr/local, then the chroot.
ENTER = r"""
set -e
top=$1 root=$2; shift 2
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$top/usr-upper,workdir=$top/usr-work" "$root/usr"
mount --bind "$top/usr-local" "$root/usr/local"
mount --bind /dev/null "$root/dev/null"
exec chroot "$root" /usr/bin/env -i "$@"
"""
PATH = "/stub/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(autouse=True)
def _needs_root():
    why = None
    if os.geteuid() != 0:
        why = "needs root (a mount namespace, chroot, a device node)"
    elif not shutil.which("unshare") or not all(Path(d).is_symlink() for d in ("/bin", "/sbin", "/lib")):
        why = "needs unshare and a merged /usr"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the node scripts' test: {why}", pytrace=False)
        pytest.skip(f"SKIPPED the node scripts' test: {why}")


@dataclass
class Run:
    rc: int
    stderr: str
    calls: list[tuple[str, ...]]

    def of(self, *prefix: str) -> list[tuple[str, ...]]:
        """The calls that start with these words."""
        return [c for c in self.calls if c[: len(prefix)] == prefix]

    def index(self, *call: str) -> int:
        return self.calls.index(tuple(call))


class Node:
    """A throwaway root for one flavour; it keeps its files and the stubs' state across runs."""

    def __init__(self, top: Path, flavour: str):
        self.top, self.root, self.flavour = top, top / "root", flavour
        r = self.root
        for d in ("etc/systemd/system", "srv", "var/lib", "tmp", "opt", "root", "run", "dev/disk/by-id",
                  "proc", "usr", "stub/bin", "stub/state", "stub/www"):
            (r / d).mkdir(parents=True)
        (r / "tmp").chmod(0o1777)
        for d in ("usr-upper", "usr-work", "usr-local/bin", "usr-local/sbin", "usr-local/src"):
            (top / d).mkdir(parents=True)
        for link in ("bin", "sbin", "lib", "lib64"):
            if Path("/" + link).is_symlink():
                (r / link).symlink_to(os.readlink("/" + link))
        (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nec2-user:x:1000:1000::/home/ec2-user:/bin/sh\n")
        (r / "etc/group").write_text("root:x:0:\nusers:x:100:\n")
        (r / "etc/fstab").write_text("LABEL=/ / xfs defaults,noatime 1 1\n")
        shutil.copy("/etc/ld.so.cache", r / "etc/ld.so.cache")
        (r / "dev/null").touch()
        (r / "dev/console").touch()
        (r / "proc/mounts").touch()
        # The homes volume as the NVMe disk EC2 shows (a device number nothing uses: 240 is
        # "local/experimental"; no real command opens it, blkid and mkfs.xfs are stubs).
        os.mknod(r / "dev/nvme1n1", 0o600 | 0o060000, os.makedev(240, 0))
        (r / "dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc123").symlink_to("../../nvme1n1")
        shutil.copytree(REPO / "deploy", r / "deploy")
        shutil.copy(STUBS / "stub", r / "stub/stub")
        shutil.copy(STUBS / "hubdesk", r / "stub/www/hubdesk-x86_64-linux")
        present, absent = FLAVOURS[flavour]
        for name in STUBBED + present + absent:
            (r / "stub/bin" / name).symlink_to("/stub/stub")
        (r / "stub/state/absent").write_text("".join(n + "\n" for n in absent))
        (r / "stub/log").touch()

    def path(self, p: str) -> Path:
        """Where the node's file p is on the host."""
        if p.startswith("/usr/local/"):
            return self.top / "usr-local" / p[len("/usr/local/"):]
        if p.startswith("/usr/"):
            return self.top / "usr-upper" / p[len("/usr/"):]
        return self.root / p.lstrip("/")

    def text(self, p: str) -> str:
        return self.path(p).read_text()

    def state(self, name: str, lines: list[str]) -> None:
        (self.root / "stub/state" / name).write_text("".join(f"{x}\n" for x in lines))

    def exec(self, argv: list[str], env: dict[str, str] | None = None) -> Run:
        log = self.root / "stub/log"
        log.write_text("")
        assigns = [f"{k}={v}" for k, v in {"PATH": PATH, "HOME": "/root", "LANG": "C", **(env or {})}.items()]
        p = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", ENTER, "enter",
             str(self.top), str(self.root), *assigns, *argv],
            capture_output=True, text=True, timeout=120,
        )
        calls = [tuple(line.split("\t")) for line in log.read_text().splitlines()]
        return Run(p.returncode, p.stderr, calls)

    def script(self, name: str, env: dict[str, str]) -> Run:
        return self.exec(["sh", f"/deploy/{name}"], env)

    def bake(self, pkgs: list[str]) -> None:
        """An AMI with these packages in it (installed by the stub package manager)."""
        tool = ["dnf", "install", "-y"] if self.flavour == "dnf" else ["apt-get", "install", "-y", "-q"]
        assert self.exec(["/stub/bin/" + tool[0], *tool[1:], *pkgs]).rc == 0

    def tree(self) -> dict[str, tuple[int, int, int, bytes]]:
        """Every file the scripts may have written: path -> (mode, uid, gid, content)."""
        out = {}
        for base, prefix in ((self.root, ""), (self.top / "usr-local", "usr/local/")):
            for p in sorted(base.rglob("*")):
                rel = prefix + str(p.relative_to(base))
                if not prefix and rel.split("/")[0] in ("stub", "deploy", "dev"):
                    continue
                st = p.lstat()
                body = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
                out[rel] = (st.st_mode, st.st_uid, st.st_gid, body)
        return out


def debian_pg_bin() -> str:
    """Where the apt path finds PostgreSQL: the newest of the host's /usr/lib/postgresql (the
    overlay's lower layer) and the 16 that the stub's `postgresql` package adds."""
    have = [int(d.name) for d in Path("/usr/lib/postgresql").glob("*") if d.name.isdigit()]
    return f"/usr/lib/postgresql/{max([16, *have])}/bin"


def hub_node(tmp_path, flavour: str, **env: str) -> tuple[Node, Run]:
    node = Node(tmp_path / flavour, flavour)
    run = node.script("hub-node.sh", {**HUB_ENV, **env})
    assert run.rc == 0, run.stderr
    return node, run


# --------------------------------------------------------------------------------------------
# hub-node.sh


def test_hub_node_packages_per_path(tmp_path):
    dnf = hub_node(tmp_path, "dnf")[1]
    assert dnf.of("rpm") == [("rpm", "-q", *HUB_PKGS["dnf"])]
    assert dnf.of("dnf") == [("dnf", "install", "-y", *HUB_PKGS["dnf"])]
    assert not dnf.of("apt-get") and not dnf.of("dpkg"), "Amazon Linux has no apt-get"
    # AL2023 names only: no python3-venv (venv is in python3), curl is curl-minimal (there).
    assert not {"python3-venv", "curl", "docker.io", "postgresql"} & set(HUB_PKGS["dnf"])

    node, apt = hub_node(tmp_path, "apt")
    assert apt.of("dpkg") == [("dpkg", "-s", *HUB_PKGS["apt"])]
    assert apt.of("apt-get") == [("apt-get", "update", "-q"), ("apt-get", "install", "-y", "-q", *HUB_PKGS["apt"])]
    assert apt.of("systemctl", "disable") == [("systemctl", "disable", "--now", "postgresql")]
    assert f"HUBDESK_PG_BIN={debian_pg_bin()}\n" in node.text("/etc/hubdesk/env")


@pytest.mark.parametrize("flavour", ["dnf", "apt"])
def test_hub_node_commands_and_files(tmp_path, flavour):
    node, run = hub_node(tmp_path, flavour)
    # Docker first, then the swarm (this node its manager, overlays off the VPC's 10.42/16).
    assert run.index("systemctl", "enable", "--now", "docker") < run.index(*SWARM_INIT)
    assert run.of("docker", "swarm") == [SWARM_INIT]
    assert run.of("docker", "network", "create") == [
        ("docker", "network", "create", "--driver", "overlay", "--attachable", "hubdesk-camp")]
    # The homes: one fstab line, then the mount.
    assert node.text("/etc/fstab").splitlines()[1:] == [HUB_FSTAB]
    assert run.of("mount") == [("mount", "/srv/homes")]
    # hubdesk: the release, checked by sha256sum (real) before it is installed, then its files.
    assert node.path("/usr/local/bin/hubdesk").read_bytes() == (STUBS / "hubdesk").read_bytes()
    assert node.path("/usr/local/bin/hubdesk").stat().st_mode & 0o777 == 0o755
    assert run.of("curl", "-fsSL") == [("curl", "-fsSL", "-o", "/tmp/hubdesk", RELEASE_URL)]
    assert run.of("hubdesk") == [("hubdesk", "hub-files"), ("hubdesk", "docker-proxy", "--print-unit")]
    # Secrets: /etc/hubdesk readable by hubdesk's group (gid 100) and nobody else.
    st = node.path("/etc/hubdesk").stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o750, 0, 100)
    for f in ("hub_oidc", "hub_api_token", "env", "hubdesk.toml"):
        st = node.path(f"/etc/hubdesk/{f}").stat()
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, 100), f
    assert node.text("/etc/hubdesk/hubdesk.toml") == TOML
    assert node.text("/etc/jupyterhub/hub_oidc") == node.text("/etc/hubdesk/hub_oidc")
    assert node.path("/etc/jupyterhub/crypt_key").stat().st_mode & 0o777 == 0o600
    env = node.text("/etc/hubdesk/env")
    assert "HUBDESK_PUBLIC_URL=https://203.0.113.11:8443\n" in env
    assert "HUBDESK_OIDC_REDIRECT_URIS=https://203.0.113.11/hub/oauth_callback\n" in env
    # TLS: self-signed for both addresses; nginx on 80, 443, 8443.
    (req,) = run.of("openssl", "req")
    assert "subjectAltName=IP:10.42.1.11,IP:203.0.113.11" in req
    conf = node.text("/etc/nginx/conf.d/hubdesk.conf")
    assert "listen 80; server_name ~.;" in conf and "listen 443 ssl;" in conf and "listen 8443 ssl;" in conf
    assert not node.path("/etc/nginx/sites-enabled/default").exists()
    # The units: hubdesk runs as 1000:100, the proxy's socket in group 100, the hub in its image.
    assert "User=1000\nGroup=100\n" in node.text("/etc/systemd/system/hubdesk.service")
    assert "--group 100 " in node.text("/etc/systemd/system/hubdesk-docker-proxy.service")
    unit = node.text("/etc/systemd/system/jupyterhub.service")
    assert f"-v /var/run/docker.sock:/var/run/docker.sock {DEFAULT_HUB_IMAGE}\n" in unit
    assert "HUB_NOTEBOOK_IMAGE=registry.example/camp/notebook:2026\n" in node.text("/etc/jupyterhub/env")
    assert run.of("systemctl") == [
        *([("systemctl", "disable", "--now", "postgresql")] if flavour == "apt" else []),
        ("systemctl", "enable", "--now", "docker"),
        ("systemctl", "enable", "nginx"),
        ("systemctl", "restart", "nginx"),
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", "--now", "hubdesk-docker-proxy", "hubdesk", "jupyterhub"),
        ("systemctl", "restart", "hubdesk"),
    ]
    # The setup link reaches the console (get-console-output).
    assert "setup link: https://203.0.113.11:8443/setup?token=stub-token" in node.text("/dev/console")
    assert not node.path("/etc/cron.d").exists()


def test_hub_node_paths_differ_only_where_they_must(tmp_path):
    """Same commands and same files, but for the package manager, its package names,
    Debian's own postgresql service and where the PostgreSQL binaries are."""
    dnf_node, dnf = hub_node(tmp_path, "dnf")
    apt_node, apt = hub_node(tmp_path, "apt")

    def rest(run: Run):
        return [c for c in run.calls if c[0] not in PKG_TOOLS and c[:3] != ("systemctl", "disable", "--now")]

    assert rest(dnf) == rest(apt)
    a, b = dnf_node.tree(), apt_node.tree()
    nginx_debian = {k for k in b if k.startswith("etc/nginx/sites-enabled")}
    assert set(a) == set(b) - nginx_debian
    assert {k for k in a if a[k] != b[k]} == {"etc/hubdesk/env"}
    env_a, env_b = (t["etc/hubdesk/env"][3].decode().splitlines() for t in (a, b))
    assert [(x, y) for x, y in zip(env_a, env_b) if x != y] == [
        ("HUBDESK_PG_BIN=/usr/bin", f"HUBDESK_PG_BIN={debian_pg_bin()}")]


@pytest.mark.parametrize("flavour", ["dnf", "apt"])
def test_hub_node_on_a_baked_ami_and_on_a_rerun_fetches_nothing(tmp_path, flavour):
    node = Node(tmp_path / flavour, flavour)
    node.bake(HUB_PKGS[flavour])
    first = node.script("hub-node.sh", HUB_ENV)
    assert first.rc == 0, first.stderr
    assert not first.of("dnf") and not first.of("apt-get"), "every package is there: no mirror needed"
    assert first.of("rpm" if flavour == "dnf" else "dpkg")
    secret = node.text("/etc/hubdesk/hub_oidc")

    again = node.script("hub-node.sh", HUB_ENV)
    assert again.rc == 0, again.stderr
    assert not again.of("dnf") and not again.of("apt-get")
    assert not again.of("docker", "swarm") and not again.of("docker", "network", "create")
    assert not again.of("docker", "build") and not again.of("openssl", "req") and not again.of("curl", "-fsSL")
    assert node.text("/etc/fstab").count(HUB_FSTAB) == 1
    assert node.text("/etc/hubdesk/hub_oidc") == secret


def test_hub_node_refuses_a_download_that_does_not_match_its_sha256(tmp_path):
    node = Node(tmp_path / "dnf", "dnf")
    run = node.script("hub-node.sh", {**HUB_ENV, "HUBDESK_SHA256": "0" * 64})
    assert run.rc == 1
    assert "hubdesk download does not match its sha256" in run.stderr
    assert not node.path("/usr/local/bin/hubdesk").exists()
    assert not run.of("hubdesk") and not run.of("systemctl", "enable", "--now", "hubdesk-docker-proxy")


# --------------------------------------------------------------------------------------------
# The JupyterHub image: HUB_IMAGE


def test_hub_image_built_on_the_node_when_missing(tmp_path):
    run = hub_node(tmp_path, "dnf")[1]
    assert run.of("docker", "image", "inspect") == [("docker", "image", "inspect", DEFAULT_HUB_IMAGE)]
    assert not run.of("docker", "pull"), "no registry host in the name: nothing to pull"
    assert run.of("docker", "build") == [
        ("docker", "build", "-q", "-t", DEFAULT_HUB_IMAGE, "/usr/local/src/jupyterhub-image")]


def test_hub_image_preloaded_is_used_as_it_is(tmp_path):
    node = Node(tmp_path / "dnf", "dnf")
    node.state("images", [DEFAULT_HUB_IMAGE])  # baked into the AMI, or docker load-ed
    run = node.script("hub-node.sh", HUB_ENV)
    assert run.rc == 0, run.stderr
    assert not run.of("docker", "build") and not run.of("docker", "pull")
    assert not node.path("/usr/local/src/jupyterhub-image").exists()
    assert "is on the node: no build" in run.stderr


def test_hub_image_from_a_registry_is_pulled_and_runs(tmp_path):
    image = "registry.example:5000/camp/jupyterhub:6.1.1"
    node = Node(tmp_path / "dnf", "dnf")
    node.state("registry", [image])
    run = node.script("hub-node.sh", {**HUB_ENV, "HUB_IMAGE": image})
    assert run.rc == 0, run.stderr
    assert run.of("docker", "pull") == [("docker", "pull", "-q", image)]
    assert not run.of("docker", "build")
    unit = node.text("/etc/systemd/system/jupyterhub.service")
    assert f" {image}\n" in unit and DEFAULT_HUB_IMAGE not in unit


def test_hub_image_that_cannot_be_pulled_is_built_under_its_name(tmp_path):
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/camp-hub:6.1.1"
    node, run = hub_node(tmp_path, "apt", HUB_IMAGE=image)
    assert run.of("docker", "pull") == [("docker", "pull", "-q", image)]
    assert run.of("docker", "build") == [("docker", "build", "-q", "-t", image, "/usr/local/src/jupyterhub-image")]
    assert f" {image}\n" in node.text("/etc/systemd/system/jupyterhub.service")


def test_hub_image_that_is_not_an_image_reference_stops_the_script_at_once(tmp_path):
    node = Node(tmp_path / "dnf", "dnf")
    run = node.script("hub-node.sh", {**HUB_ENV, "HUB_IMAGE": "hub:1\nExecStartPre=/bin/sh -c reboot"})
    assert run.rc == 1 and "HUB_IMAGE is not an image reference" in run.stderr
    assert run.calls == []


# --------------------------------------------------------------------------------------------
# Let's Encrypt (DOMAIN)


@pytest.mark.parametrize("flavour", ["dnf", "apt"])
def test_hub_node_with_a_domain_renews_by_a_systemd_timer(tmp_path, flavour):
    node, run = hub_node(tmp_path, flavour, DOMAIN="camp.example.org", EMAIL="ops@camp.example.org")
    (req,) = run.of("openssl", "req")
    assert "subjectAltName=IP:10.42.1.11,DNS:camp.example.org" in req
    assert run.of("python3") == [("python3", "-m", "venv", "/opt/certbot")]
    assert run.of("pip") == [("pip", "install", "-q", "certbot>=3,<4")]
    assert run.of("certbot") == [("certbot", "certonly", "--webroot", "-w", "/var/www/acme", "-d", "camp.example.org",
                                  "--agree-tos", "-n", "-m", "ops@camp.example.org")]
    assert os.readlink(node.path("/etc/hubdesk/tls/cert.pem")) == "/etc/letsencrypt/live/camp.example.org/fullchain.pem"
    # Amazon Linux 2023 has no cron daemon: a timer, on both paths.
    assert not node.path("/etc/cron.d/certbot").exists()
    assert "ExecStart=/opt/certbot/bin/certbot renew" in node.text("/etc/systemd/system/hubdesk-certbot-renew.service")
    assert "OnCalendar=" in node.text("/etc/systemd/system/hubdesk-certbot-renew.timer")
    assert ("systemctl", "enable", "--now", "hubdesk-certbot-renew.timer") in run.calls
    assert "HUBDESK_INTERNAL_URL=https://camp.example.org:8443\n" in node.text("/etc/jupyterhub/env")


# --------------------------------------------------------------------------------------------
# nfs-node.sh


def nfs_node(tmp_path, flavour: str) -> tuple[Node, Run]:
    node = Node(tmp_path / flavour, flavour)
    run = node.script("nfs-node.sh", NFS_ENV)
    assert run.rc == 0, run.stderr
    return node, run


@pytest.mark.parametrize("flavour", ["dnf", "apt"])
def test_nfs_node_commands_and_files(tmp_path, flavour):
    node, run = nfs_node(tmp_path, flavour)
    pkgs = NFS_PKGS[flavour]
    if flavour == "dnf":
        assert run.of("rpm") == [("rpm", "-q", *pkgs)]
        assert run.of("dnf") == [("dnf", "install", "-y", *pkgs)]
        assert not run.of("apt-get") and not run.of("dpkg")
    else:
        assert run.of("dpkg") == [("dpkg", "-s", *pkgs)]
        assert run.of("apt-get") == [("apt-get", "update", "-q"), ("apt-get", "install", "-y", "-q", *pkgs)]
    assert "homes volume vol-0abc123 is /dev/nvme1n1" in run.stderr
    ((_, flag, label, disk),) = run.of("mkfs.xfs")
    assert (flag, disk) == ("-L", "/dev/nvme1n1") and 0 < len(label) <= 12, "an XFS label: 12 characters at most"
    assert node.text("/etc/fstab").splitlines() == ["LABEL=/ / xfs defaults,noatime 1 1", NFS_FSTAB]
    assert run.of("mount") == [("mount", "/srv/nfs")]
    st = node.path("/srv/nfs/homes").stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o755, 1000, 100)
    assert node.text("/etc/exports.d/hubdesk.exports") == EXPORT + "\n"
    assert run.index("systemctl", "enable", "--now", NFS_SERVER[flavour]) < run.index("exportfs", "-ra")
    # hubdesk-quota, taken from beside the script (by hand; user-data carries the same files).
    assert node.path("/usr/local/sbin/hubdesk-quota").read_bytes() == (REPO / "deploy/hubdesk-quota.sh").read_bytes()
    for unit in ("service", "path", "timer"):
        shipped = (REPO / f"deploy/hubdesk-quota.{unit}").read_text()
        assert node.text(f"/etc/systemd/system/hubdesk-quota.{unit}") == shipped
    assert run.of("systemctl")[-2:] == [
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", "--now", "hubdesk-quota.path", "hubdesk-quota.timer"),
    ]


def test_nfs_node_paths_differ_only_where_they_must(tmp_path):
    dnf_node, dnf = nfs_node(tmp_path, "dnf")
    apt_node, apt = nfs_node(tmp_path, "apt")
    rest = lambda run: [c for c in run.calls if c[0] not in PKG_TOOLS]  # noqa: E731
    assert [tuple(NFS_SERVER["apt"] if w == NFS_SERVER["dnf"] else w for w in c) for c in rest(dnf)] == rest(apt)
    assert dnf_node.tree() == apt_node.tree()


@pytest.mark.parametrize("flavour", ["dnf", "apt"])
def test_nfs_node_second_boot_keeps_the_filesystem_and_fetches_nothing(tmp_path, flavour):
    node, _ = nfs_node(tmp_path, flavour)
    node.state("mounts", [])  # a reboot: nothing mounted, the disk keeps its filesystem
    again = node.script("nfs-node.sh", NFS_ENV)
    assert again.rc == 0, again.stderr
    assert not again.of("mkfs.xfs"), "never formatted twice"
    assert not again.of("dnf") and not again.of("apt-get")
    assert again.of("mount") == [("mount", "/srv/nfs")]
    assert node.text("/etc/fstab").count("/srv/nfs ") == 1
