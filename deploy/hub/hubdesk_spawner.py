"""The camp's spawner: dockerspawner 14's SwarmSpawner, made safe against its own users.

deploy/jupyterhub_config.py imports this module (it sits next to the config: `hubdesk
hub-config DIR` writes both) and sets HubdeskSwarmSpawner up from the environment. A student
runs arbitrary code as uid 1000 in the notebook container; what the container may do is decided
here and on the worker (the firewall in the worker's user-data). The threat model is in
ARCHITECTURE.md ("The student is the adversary").

What SwarmSpawner does not do and this class adds:
- a failed start never leaves its service behind; a stop returns only once the container is gone;
  poll() keeps a server that the swarm is moving (drain) instead of forgetting it;
- every student's server is on a Swarm network of its own that only the hub shares
  (isolate_network): student A's container cannot open any port of student B's;
- the container runs as uid 1000 with every capability dropped, no-new-privileges,
  ip_unprivileged_port_start=1024 (no privileged source ports, so NFS's `secure` check and
  AUTH_SYS mean something), a read-only root filesystem with a size-bounded /tmp, a pids limit
  and bounded logs (harden);
- the memory guarantee and limit and the CPU limit of the student's cohort, asked of hubdesk
  before each start (profile_url), so a profile changed on the cohort page applies at the next
  start; if hubdesk does not answer, the configured defaults apply and the start goes on.
"""

import asyncio
import json
from urllib.parse import quote

from docker.errors import APIError, NotFound
from docker.types import Mount
from dockerspawner import SwarmSpawner
from aiohttp.resolver import ThreadedResolver
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Bool, Int, Unicode

# Task states of a task on its way to running (or running).
ALIVE = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
# Task states after which the task's container has exited (and released the home).
ENDED = {"shutdown", "complete", "failed", "rejected", "orphaned", "remove"}
# The label on every network this spawner makes (hubdesk's cluster page and the tests find them).
NETWORK_LABEL = "hubdesk.network"


class HubdeskSwarmSpawner(SwarmSpawner):
    """SwarmSpawner with a sandbox; see the module's docstring."""

    stop_wait_secs = Int(30, config=True, help="How long a stop waits for the container to exit.")

    isolate_network = Bool(
        True,
        config=True,
        help="""Each server on an attachable overlay network of its own, shared only with the hub.

        The hub (and its proxy, in the same container) is connected to every running server's
        network; notebooks never share one, so no notebook can reach another's ports. With
        False, every server is on network_name (one flat network: any notebook reaches any
        other on any port).""",
    )
    hub_container = Unicode(
        "",
        config=True,
        help="The hub's container (name or id) on the manager's engine, connected to each server's network.",
    )
    harden = Bool(
        True,
        config=True,
        help="Run the server with the sandbox below (user, capabilities, sysctls, read-only root, pids, logs).",
    )
    notebook_user = Unicode("1000:100", config=True, help="uid:gid of the server (the owner of every home).")
    pids_limit = Int(1024, config=True, help="Processes and threads of one server (a thread bomb stops here).")
    tmp_size = Int(1024**3, config=True, help="Bytes of /tmp (a tmpfs; it counts against the memory limit).")
    log_max_size = Unicode("10m", config=True, help="json-file max-size of the server's log.")
    log_max_file = Int(3, config=True, help="json-file max-file of the server's log.")
    profile_url = Unicode(
        "",
        config=True,
        help="""hubdesk's profile endpoint (…/oauth/profile); empty: the configured limits for all.

        GET {profile_url}/{username} with the hub's OAuth client id and secret (HTTP Basic)
        answers the cohort's mem_guarantee, mem_limit (bytes) and cpu_limit (CPUs).""",
    )
    profile_client_id = Unicode("", config=True, help="The hub's OAuth client id at hubdesk.")
    profile_client_secret = Unicode("", config=True, help="The hub's OAuth client secret at hubdesk.")
    profile_ca_certs = Unicode("", config=True, help="CA bundle for hubdesk's certificate (empty: the system's).")
    profile_validate_cert = Bool(True, config=True, help="Check hubdesk's certificate.")

    # -- the network of one's own ------------------------------------------------------------

    @property
    def own_network(self):
        return f"hubdesk-nb-{self.escaped_name}"

    async def _find_network(self, name):
        for net in await self.docker("networks", names=[name]):
            if net.get("Name") == name:  # the filter matches substrings
                return net
        return None

    async def _ensure_own_network(self):
        name = self.own_network
        if await self._find_network(name) is None:
            try:
                await self.docker(
                    "create_network",
                    name,
                    driver="overlay",
                    attachable=True,
                    check_duplicate=True,
                    labels={NETWORK_LABEL: "notebook", "hubdesk.user": self.user.name},
                )
            except APIError as e:
                if e.status_code != 409:  # made meanwhile by another start: fine
                    raise
        await self._connect_hub(name)
        return name

    async def _connect_hub(self, name):
        if not self.hub_container:
            raise ValueError("HubdeskSwarmSpawner.hub_container is required with isolate_network")
        try:
            await self.docker("connect_container_to_network", self.hub_container, name)
        except APIError as e:
            # 409 "… is already attached to network …" (20.10), 403 "endpoint with name …
            # already exists in network" (older engines): connected already
            if e.status_code != 409 and "already exists" not in str(e):
                raise
        self._hub_joined = True

    async def _drop_own_network(self):
        """The hub leaves the network, then it goes. The task's endpoint on the worker may take a
        moment to go after the task ended: retry for a while, else leave the network for the
        next start (it holds nothing)."""
        name = self.own_network
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            try:
                try:
                    await self.docker("disconnect_container_from_network", self.hub_container, name, force=True)
                except NotFound:
                    pass  # no such network: remove_network says so below
                except APIError as e:
                    if "is not connected" not in str(e):
                        raise
                await self.docker("remove_network", name)
                return
            except NotFound:
                return
            except APIError as e:
                if loop.time() > deadline:
                    self.log.warning("network %s stays for now: %s", name, e)
                    return
                await asyncio.sleep(0.5)

    # -- the sandbox ---------------------------------------------------------------------------

    def _sandbox(self):
        """The container and task settings of a sandboxed server (docker-py's keyword names)."""
        container = dict(self.extra_container_spec or {})
        container["user"] = self.notebook_user
        container["cap_drop"] = ["ALL"]
        container["sysctls"] = {**container.get("sysctls", {}), "net.ipv4.ip_unprivileged_port_start": "1024"}
        # Engines with API >= 1.46 honour it per service; older ones ignore the field, and the
        # workers' daemon default (no-new-privileges in daemon.json) covers them.
        container["privileges"] = {**(container.get("privileges") or {}), "NoNewPrivileges": True}
        container["read_only"] = True
        tmp = Mount(target="/tmp", source=None, type="tmpfs", tmpfs_size=self.tmp_size, tmpfs_mode=0o1777)
        container["mounts"] = [m for m in container.get("mounts", []) if m.get("Target") != "/tmp"] + [tmp]
        task = dict(self.extra_task_spec or {})
        task["log_driver"] = {
            "Name": "json-file",
            "Options": {"max-size": self.log_max_size, "max-file": str(self.log_max_file)},
        }
        return container, task

    def docker(self, method, *args, **kwargs):
        if method == "create_service" and self.harden and self.pids_limit > 0:
            # docker-py's Resources has no pids field; the Engine API has had it since 1.41.
            resources = kwargs["task_template"].setdefault("Resources", {})
            resources.setdefault("Limits", {})["Pids"] = self.pids_limit
        return super().docker(method, *args, **kwargs)

    # -- start, poll, stop ---------------------------------------------------------------------

    # -- the cohort's profile ------------------------------------------------------------------

    async def _apply_profile(self):
        """The student's cohort profile from hubdesk onto this start's limits; on any failure the
        configured limits stay (a start is never refused for want of a profile). One answer
        refuses the start: 423, the camp is paused (hubdesk's message goes to the student)."""
        if not self.profile_url:
            return
        # The configured limits, kept from the first start: a failed ask later falls back to
        # them, not to the last cohort profile this spawner saw.
        if not hasattr(self, "_configured_limits"):
            self._configured_limits = (self.mem_limit, self.mem_guarantee, self.cpu_limit)
        url = f"{self.profile_url.rstrip('/')}/{quote(self.user.name, safe='')}"
        request = HTTPRequest(
            url,
            auth_username=self.profile_client_id,
            auth_password=self.profile_client_secret,
            auth_mode="basic",
            ca_certs=self.profile_ca_certs or None,
            validate_cert=self.profile_validate_cert,
            request_timeout=10,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
            if response.code == 423:
                # The camp is paused: no student server starts, and the student is told why.
                try:
                    why = json.loads(response.body).get("error_description") or "The camp is paused."
                except ValueError:
                    why = "The camp is paused."
                raise web.HTTPError(423, why, reason=why)
            response.rethrow()
            profile = json.loads(response.body)
            mem_limit, mem_guarantee = int(profile["mem_limit"]), int(profile["mem_guarantee"])
            cpu_limit = float(profile["cpu_limit"])
        except web.HTTPError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure: the defaults, and say so
            self.log.warning("no profile for %s from hubdesk (%s): the configured limits apply", self.user.name, e)
            self.mem_limit, self.mem_guarantee, self.cpu_limit = self._configured_limits
            return
        self.mem_limit, self.mem_guarantee, self.cpu_limit = mem_limit, mem_guarantee, cpu_limit
        self.log.info(
            "profile of %s (cohort %s): %d MiB guaranteed, %d MiB limit, %.2f CPUs",
            self.user.name, profile.get("cohort"), mem_guarantee >> 20, mem_limit >> 20, cpu_limit,
        )

    async def start(self):
        try:
            await self._apply_profile()
            if self.isolate_network:
                self.network_name = await self._ensure_own_network()
            if self.harden:
                self.extra_container_spec, self.extra_task_spec = self._sandbox()
            return await super().start()
        except BaseException:  # also the cancellation of a start that timed out
            await asyncio.shield(self._remove_if_present())
            raise

    async def _remove_if_present(self):
        """A failed start (a task fails, e.g. a missing home; or start_timeout): JupyterHub stops
        the server only if poll() says it is running, and right after a failure the newest task
        is `failed` (or a fresh retry), so the service stayed with the swarm retrying it for good
        (seen in tests/swarm/spawn-smoke.sh's no-home phase). Remove it before the error goes up."""
        try:
            if await self.get_object() is not None:
                await self.remove_object()
            elif self.isolate_network:
                await self._drop_own_network()
        except Exception:
            self.log.exception("could not clean up %s after a failed start", self.service_name)

    async def remove_object(self):
        try:
            await self._scale_to_zero_and_wait()
            await super().remove_object()
        except NotFound:
            self.log.info("service %s is already gone", self.service_name)
        if self.isolate_network:
            await self._drop_own_network()

    async def poll(self):
        """Running while the swarm runs the server or is bringing it back.

        SwarmSpawner's poll() says "stopped" as soon as no task is `running`. When a worker is
        drained (hubdesk's Remove worker) or lost, the swarm shuts the task down and starts a new
        one elsewhere; a poll in those seconds made the hub forget a server that was coming back
        (seen in tests/e2e/test_camp.py). Stopped means: the service is gone or scaled to 0, or
        its newest task ended by itself (complete, failed, rejected) with nothing on its way.
        """
        service = await self.get_object()
        if service is None:
            return 0
        if self.isolate_network and not getattr(self, "_hub_joined", False):
            # A restarted hub is a new container: join the running server's network again.
            await self._connect_hub(self.own_network)
            self._hub_joined = True
        replicas = service.get("Spec", {}).get("Mode", {}).get("Replicated", {}).get("Replicas", 1)
        if replicas == 0:
            return 1
        tasks = await self.docker("tasks", filters={"service": service["ID"]})
        if any(t.get("Status", {}).get("State") in ALIVE for t in tasks):
            return None
        if not tasks:
            return None  # the orchestrator has not made the task yet
        newest = max(tasks, key=lambda t: t.get("CreatedAt", ""))
        if newest.get("Status", {}).get("State") in ("shutdown", "orphaned"):
            return None  # shut down by the swarm (drain, node lost): a replacement follows
        return 1

    async def _scale_to_zero_and_wait(self):
        """Stop means stopped: the container is gone before the service is.

        Removing a service returns at once while its container still runs for a few seconds on
        the worker with the home mounted. hubdesk's reset archives the home (a rename) right
        after the hub says "stopped"; a server restarted on the same node meanwhile would reuse
        that live mount (Docker refcounts a local volume's mount per node), which follows the
        renamed directory into the archive (seen in tests/e2e/test_camp.py). So: scale to 0,
        wait until every task has ended, then remove.
        """
        service = await self.get_object()
        if service is None:
            return
        await self.docker(
            "update_service",
            service["ID"],
            service["Version"]["Index"],
            mode={"Replicated": {"Replicas": 0}},
            fetch_current_spec=True,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_wait_secs
        while True:
            tasks = await self.docker("tasks", filters={"service": service["ID"]})
            live = [t for t in tasks if t.get("Status", {}).get("State") not in ENDED]
            if not live:
                return
            if loop.time() > deadline:
                self.log.warning(
                    "%s: %d task(s) still running %d s after scaling to 0; removing the service",
                    self.service_name, len(live), self.stop_wait_secs,
                )
                return
            await asyncio.sleep(0.5)


class UncachedResolver(ThreadedResolver):
    """getaddrinfo on the running loop's executor, for the hub's own HTTP client; built before
    any loop runs.

    The hub's "is the server up yet" checks and the servers' API go through aiohttp, which
    resolves through aiodns/c-ares (jupyterhub requires it), and c-ares caches answers for their
    TTL (Docker's embedded DNS says 600 s). A student's server stopped and started again within
    that time is a new service under the same name with a new address: the hub kept connecting
    to the old one until http_timeout and the spawn failed (seen in tests/swarm/spawn-smoke.sh's
    respawn phase). getaddrinfo (no cache in the container) and no aiohttp cache: every check
    asks Docker's DNS afresh. (The proxy resolves per request already.)
    """

    def __init__(self):  # ThreadedResolver's own __init__ wants a running loop
        pass

    @property
    def _loop(self):
        return asyncio.get_running_loop()


class HubdeskAnnouncements:
    """hubdesk's announcements on the hub's own pages.

    A daemon thread asks hubdesk's `GET /oauth/announcements` (the hub's client credentials, HTTP
    Basic) every `every` seconds and keeps the answer. `for_user` is a JupyterHub template
    variable (`c.JupyterHub.template_vars = {"announcement": feed.for_user}`: JupyterHub calls it
    with the page's user) that returns the HTML of the announcements for that person: those for
    everyone and those for a group they are in (`cohort-<slug>`, from the `groups` claim), minus
    those they dismissed on hubdesk, minus any past its end. A page never waits for hubdesk: it
    reads what the thread fetched last (nothing when hubdesk has not answered yet). The thread
    starts with the first page the hub renders, not when the configuration is read."""

    def __init__(self, url, client_id, client_secret, hubdesk_url="", every=15.0, ca_certs="",
                 validate_cert=True, log=None):
        import logging
        self.url, self.client_id, self.client_secret = url, client_id, client_secret
        self.hubdesk_url = hubdesk_url.rstrip("/")
        self.every, self.ca_certs, self.validate_cert = every, ca_certs, validate_cert
        self.log = log or logging.getLogger("hubdesk.announcements")
        self.current = []

    def refresh(self):
        import base64
        import ssl
        import urllib.request
        token = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        request = urllib.request.Request(self.url, headers={"Authorization": f"Basic {token}"})
        context = None
        if self.url.startswith("https"):
            context = ssl.create_default_context(cafile=self.ca_certs or None)
            if not self.validate_cert:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            self.current = json.loads(response.read())["announcements"]

    def start(self):
        import threading

        def loop():
            import time
            while True:
                try:
                    self.refresh()
                except Exception as e:  # noqa: BLE001 - hubdesk away: keep the last answer
                    self.log.warning("announcements from hubdesk: %s", e)
                time.sleep(self.every)

        threading.Thread(target=loop, name="hubdesk-announcements", daemon=True).start()
        return self

    def for_user(self, user):
        import datetime as dt
        import html
        current = self.current
        if not getattr(self, "_started", False):  # the first page rendered starts the thread
            self._started = True
            self.start()
        now = dt.datetime.now(dt.timezone.utc)
        name = getattr(user, "name", None)
        groups = {getattr(g, "name", g) for g in (getattr(user, "groups", None) or [])}
        shown = []
        for a in current:
            try:
                ends = dt.datetime.fromisoformat(a["ends_at"].replace("Z", "+00:00"))
            except (KeyError, ValueError):
                continue
            if ends <= now or (a.get("group") and a["group"] not in groups):
                continue
            if name and name in a.get("dismissed_by", []):
                continue
            shown.append(f'<p class="hubdesk-announcement" data-id="{int(a["id"])}">{html.escape(a["message"])}</p>')
        if not shown:
            return ""
        if self.hubdesk_url and name:
            shown.append(f'<p><a href="{html.escape(self.hubdesk_url)}/">Dismiss on your hubdesk page</a></p>')
        return "\n".join(shown)
