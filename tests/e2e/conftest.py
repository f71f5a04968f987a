"""Fixtures for hubdesk's end-to-end browser tests.

- ``hubdesk``: a running ``hubdesk serve`` (one per test session) on a free 127.0.0.1 port, with a
  fresh database and an admin ``boss``. Its stdout/stderr are attached to the report of any test
  that fails.
- ``browser``: a headless Debian Chromium driven by the Debian chromedriver (no downloads).
- ``screenshot``: saves PNGs to docs/screenshots/ when HUBDESK_SCREENSHOTS=1, else to a tmp dir.
- ``http``: a factory of logged-out :class:`HubdeskClient` (requests-based, CSRF-aware).

Environment:
  HUBDESK_BIN          hubdesk binary (default ${CARGO_TARGET_DIR:-target}/debug/hubdesk)
  DATABASE_URL         PostgreSQL where the tests may CREATE DATABASE e2e_<random> (dropped after);
                       unset: hubdesk starts its own embedded PostgreSQL in a temp HUBDESK_DATA_DIR
  HUBDESK_SCREENSHOTS  1: write screenshots into docs/screenshots/NAME.png
  HUBDESK_E2E_READY_TIMEOUT  seconds to wait for /readyz (default 60)
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest
import requests

# Selenium manager must never try to download a driver or a browser.
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

from e2e_support import HubdeskClient  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ADMIN_USER = "boss"
ADMIN_PASSWORD = "Admin-e2e-" + secrets.token_hex(8)  # must not contain the user name
DUMMY_HUB_URL = "http://127.0.0.1:1/hub"


# --------------------------------------------------------------------------------------------
# hubdesk binary and database


def _hubdesk_bin() -> Path:
    if os.environ.get("HUBDESK_BIN"):
        return Path(os.environ["HUBDESK_BIN"]).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    return (target / "debug" / "hubdesk").resolve()


@pytest.fixture(scope="session")
def hubdesk_bin() -> Path:
    path = _hubdesk_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"hubdesk binary not found at {path}: build it (cargo build) or set HUBDESK_BIN",
            pytrace=False,
        )
    return path


def _with_dbname(url: str, dbname: str) -> str:
    """The postgres:// URL with another database name (the URL path), keeping ?host=... etc.

    A libpq-style socket URL with an empty host (``postgres://user@/db?host=/dir``) is rewritten
    with the socket dir percent-encoded as the host (``postgres://user@%2Fdir/db``): libpq reads
    both, but URL parsers such as sqlx's reject a user name with an empty host.
    """
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.hostname is None:
        params = parse_qsl(query, keep_blank_values=True)
        hosts = [v for k, v in params if k == "host"]
        if hosts and hosts[0].startswith("/"):
            userinfo = netloc.rpartition("@")[0]
            port = f":{parts.port}" if parts.port else ""
            host = quote(hosts[0], safe="")
            netloc = f"{userinfo}@{host}{port}" if userinfo else f"{host}{port}"
            query = urlencode([(k, v) for k, v in params if k != "host"])
    return urlunsplit((parts.scheme, netloc, "/" + dbname, query, parts.fragment))


def _psql(url: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="session")
def hubdesk_env() -> Iterator[dict]:
    """Environment for every hubdesk command of the session: a fresh database + data dir."""
    # Not under pytest's basetemp (mode 700): run as root, hubdesk's embedded PostgreSQL runs as
    # the `postgres` user and must be able to enter the data dir.
    data_dir = Path(tempfile.mkdtemp(prefix="hubdesk-e2e-data-"))
    data_dir.chmod(0o755)
    # hubdesk runs in this dir too; HUBDESK_CONFIG and other HUBDESK_* of the caller are dropped.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBDESK_")}
    env["HUBDESK_DATA_DIR"] = str(data_dir)
    env["HUBDESK_HUB_URL"] = DUMMY_HUB_URL
    # The calendar page plans with 16 GiB workers (no cluster here to ask EC2 for the size).
    env["HUBDESK_CALENDAR__WORKER_MEMORY_BYTES"] = str(16 << 30)
    # The camp's clock: absent, the system time; a test that writes an instant here moves
    # "now" for the calendar and announcements (and removes the file when done).
    env["HUBDESK_CALENDAR__TEST_CLOCK_FILE"] = str(data_dir / "camp-clock")
    env.setdefault("RUST_BACKTRACE", "1")
    admin_url = os.environ.get("DATABASE_URL")
    dbname = None
    if admin_url:
        dbname = "e2e_" + secrets.token_hex(6)
        res = _psql(admin_url, f'CREATE DATABASE "{dbname}"')
        if res.returncode != 0:
            pytest.fail(f"CREATE DATABASE {dbname} failed on $DATABASE_URL:\n{res.stderr}", pytrace=False)
        env["DATABASE_URL"] = _with_dbname(admin_url, dbname)
    else:
        env.pop("DATABASE_URL", None)  # hubdesk starts its embedded PostgreSQL under data_dir
    try:
        yield env
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if dbname:
        res = _psql(admin_url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        if res.returncode != 0:
            print(f"warning: could not drop {dbname}: {res.stderr}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tail(path: Path, lines: int = 150) -> str:
    try:
        text = _ANSI.sub("", path.read_text(errors="replace"))
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _run_cli(bin_: Path, args: list[str], env: dict, stdin: str | None = None, timeout: int = 180):
    res = subprocess.run(
        [str(bin_), *args], input=stdin, env=env, capture_output=True, text=True, timeout=timeout,
        cwd=env["HUBDESK_DATA_DIR"],  # not the repo: no stray ./hubdesk.toml gets picked up
    )
    if res.returncode != 0:
        pytest.fail(
            f"`hubdesk {' '.join(args)}` exited {res.returncode}\n"
            f"--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}",
            pytrace=False,
        )
    return res


@dataclass
class Hubdesk:
    url: str
    hub_url: str
    admin_user: str
    admin_password: str
    env: dict
    stdout_path: Path
    stderr_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def logs(self, lines: int = 150) -> str:
        return (
            f"--- hubdesk stdout (tail) ---\n{_tail(self.stdout_path, lines)}\n"
            f"--- hubdesk stderr (tail) ---\n{_tail(self.stderr_path, lines)}"
        )


_RUNNING: list[Hubdesk] = []


def _start_serve(bin_: Path, env: dict, logdir: Path, attempt: int) -> Hubdesk:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(env, HUBDESK_BIND=f"127.0.0.1:{port}", HUBDESK_PUBLIC_URL=url)
    out = logdir / f"serve-{attempt}.stdout.log"
    err = logdir / f"serve-{attempt}.stderr.log"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            [str(bin_), "serve"], env=env, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
            start_new_session=True, cwd=env["HUBDESK_DATA_DIR"],
        )
    return Hubdesk(url, DUMMY_HUB_URL, ADMIN_USER, ADMIN_PASSWORD, env, out, err, proc)


def _stop(hd: Hubdesk) -> None:
    proc = hd.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        try:  # its whole process group (start_new_session): children such as an embedded postgres
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.kill()
        proc.wait(timeout=10)


def _wait_ready(hd: Hubdesk, timeout: float) -> str | None:
    """None when /readyz answered 200; otherwise why not."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with requests.Session() as s:
        s.trust_env = False
        while time.monotonic() < deadline:
            if hd.proc.poll() is not None:
                return f"hubdesk serve exited with code {hd.proc.returncode}"
            try:
                r = s.get(hd.url + "/readyz", timeout=2)
                if r.status_code == 200:
                    return None
                last = f"/readyz answered {r.status_code}: {r.text[:200]!r}"
            except requests.RequestException as e:
                last = f"/readyz: {type(e).__name__}"
            time.sleep(0.25)
    return f"not ready after {timeout:.0f}s ({last})"


@pytest.fixture(scope="session")
def hubdesk(hubdesk_bin, hubdesk_env, tmp_path_factory) -> Iterator[Hubdesk]:
    """A running `hubdesk serve` with an admin `boss`; yields a Hubdesk (``.url`` = base URL)."""
    logdir = tmp_path_factory.mktemp("hubdesk-logs")
    _run_cli(hubdesk_bin, ["migrate"], hubdesk_env)
    _run_cli(
        hubdesk_bin, ["admin", "create", ADMIN_USER, "--password-stdin"], hubdesk_env,
        stdin=ADMIN_PASSWORD + "\n",
    )
    timeout = float(os.environ.get("HUBDESK_E2E_READY_TIMEOUT", "60"))
    hd = None
    for attempt in range(1, 4):
        hd = _start_serve(hubdesk_bin, hubdesk_env, logdir, attempt)
        why = _wait_ready(hd, timeout)
        if why is None:
            break
        _stop(hd)
        err = _tail(hd.stderr_path).lower()
        if attempt < 3 and "in use" in err:  # lost the race for the free port: try another one
            continue
        pytest.fail(f"hubdesk serve at {hd.url}: {why}\n{hd.logs()}", pytrace=False)
    _RUNNING.append(hd)
    try:
        yield hd
    finally:
        _RUNNING.remove(hd)
        _stop(hd)


# --------------------------------------------------------------------------------------------
# browser


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    for p in (CHROMIUM, CHROMEDRIVER):
        if not os.access(p, os.X_OK):
            pytest.fail(f"{p} missing: run scripts/e2e-deps.sh", pytrace=False)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-proxy-server",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
        "--lang=en-US",
    ):
        opts.add_argument(arg)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# screenshots


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    if os.environ.get("HUBDESK_SCREENSHOTS") == "1":
        d = REPO / "docs" / "screenshots"
        d.mkdir(parents=True, exist_ok=True)
        return d
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def screenshot(browser, screenshot_dir) -> Callable[..., Path]:
    """screenshot("name", full_page=False) -> path of NAME.png."""

    def take(name: str, full_page: bool = False) -> Path:
        path = screenshot_dir / f"{name}.png"
        if full_page:
            _full_page_png(browser, path)
        else:
            browser.save_screenshot(str(path))
        return path

    return take


def _full_page_png(driver, path: Path) -> None:
    import base64

    try:
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        width, height = int(size["width"]), min(int(size["height"]), 6000)
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))
    except Exception:  # noqa: BLE001 - a viewport screenshot is good enough
        driver.save_screenshot(str(path))


# --------------------------------------------------------------------------------------------
# requests-based client (for status-code checks the browser can't see)


@pytest.fixture
def http(hubdesk) -> Iterator[Callable[[], HubdeskClient]]:
    clients: list[HubdeskClient] = []

    def make() -> HubdeskClient:
        c = HubdeskClient(hubdesk.url)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


# --------------------------------------------------------------------------------------------
# failure reports: hubdesk logs + the browser's last page


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or rep.when not in ("setup", "call"):
        return
    for hd in _RUNNING:
        rep.sections.append((f"hubdesk serve {hd.url}", hd.logs()))
    driver = getattr(item, "funcargs", {}).get("browser")
    if driver is not None:
        try:
            d = Path(tempfile.mkdtemp(prefix="hubdesk-e2e-failure-"))
            driver.save_screenshot(str(d / "page.png"))
            (d / "page.html").write_text(driver.page_source)
            rep.sections.append(
                ("browser", f"url: {driver.current_url}\ntitle: {driver.title}\nsaved: {d}/page.png, page.html")
            )
        except Exception as e:  # noqa: BLE001
            rep.sections.append(("browser", f"could not capture the page: {e}"))
