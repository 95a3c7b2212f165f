"""`moor dashboard` in headless Chromium against a real moord: the live containers list,
actions checked through the Engine API, logs, the terminal, a pull from a registry on
127.0.0.1, compose grouping, the run dialog, escaping, and the guard (token, TLS, CSRF)."""

from __future__ import annotations

import io
import json
import os
import re
import ssl
import subprocess
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashkit import CuttableProxy, Dashboard, api, moor, start_dashboard, state, wait_for
from enginekit import Daemon
from peers import dockerd_available, start_dockerd, stop_dockerd, stop_process
from registrykit import (
    Server,
    free_port,
    skopeo,
    start_moor,
    stop_server,
    write_htpasswd,
    write_oci_layout,
)

from moorage.dashboard.pages.containers import FIRST_ROWS

XSS = "<img src=x onerror=alert(1)>"


def shot(page: Any, screenshots: str, name: str) -> None:
    page.screenshot(path=os.path.join(screenshots, f"{name}.png"))


def run(engine: Daemon, *args: str) -> str:
    return moor(engine.host, "run", "-d", "--dns", "127.0.0.1", "--stop-timeout", "1",
                *args).stdout.strip()


def row(page: Any, container: str) -> Any:
    return page.locator(f"#c-{container}")


# --------------------------------------------------------------------------- containers


def test_list_follows_the_cli(page: Any, engine: Daemon, dashboard: Dashboard,
                              screenshots: str) -> None:
    page.goto(f"{dashboard.url}/containers")
    page.wait_for_selector('body[data-live="open"]', state="attached")
    container = run(engine, "--name", "from-cli", "busybox:latest", "sleep", "300")
    # the create event may draw the row before the start event turns it running; how soon
    # is bench/dashboard.py's "event shown" (a wait here only tells a missed event apart)
    page.wait_for_selector(f'#c-{container}[data-state="running"]', timeout=10000)
    assert "from-cli" in row(page, container).inner_text()
    # the light theme, as the browser asks by default (dark: test_narrow_window_and_dark_theme)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == \
        "rgb(255, 255, 255)"
    shot(page, screenshots, "containers")
    moor(engine.host, "stop", "-t", "0", container)
    page.wait_for_selector(f'#c-{container}[data-state="exited"]', timeout=10000)


def test_stop_and_start_buttons_change_the_real_state(page: Any, engine: Daemon,
                                                      dashboard: Dashboard) -> None:
    container = run(engine, "--name", "buttons", "busybox:latest", "sleep", "300")
    page.goto(f"{dashboard.url}/containers")
    page.keyboard.press("Tab")  # the first stop of the keyboard: past the navigation
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_role("button", name="Stop buttons").click()
    wait_for(lambda: not state(engine.host, container)["Running"], 15, "the stop")
    page.wait_for_selector(f'#c-{container}[data-state="exited"]', timeout=10000)
    page.get_by_role("button", name="Start buttons").focus()  # and by keyboard
    page.keyboard.press("Enter")
    wait_for(lambda: state(engine.host, container)["Running"], 5, "the start")
    page.wait_for_selector(f'#c-{container}[data-state="running"]', timeout=10000)


def test_a_long_list_paints_its_first_rows_then_the_rest(page: Any, engine: Daemon,
                                                         dashboard: Dashboard) -> None:
    client = api(engine.host)
    have = len(client.get("/containers/json", {"all": True}))
    made = [client.post("/containers/create", {"name": f"many-{i:02}"},
                        {"Image": "busybox:latest", "Cmd": ["true"],
                         "HostConfig": {"NetworkMode": "none"}})["Id"]
            for i in range(max(0, FIRST_ROWS + 3 - have))]
    try:
        first = _request(f"{dashboard.url}/containers")[1]
        assert first.count('<tr id="c-') == FIRST_ROWS and "data-rest=" in first
        # without JavaScript, a link to the whole table
        everything = _request(f"{dashboard.url}/containers?all")[1]
        total = everything.count('<tr id="c-')
        assert f'<a href="/containers?all">Show all {total} containers</a>' in first
        assert total > FIRST_ROWS and "data-rest=" not in everything
        page.goto(f"{dashboard.url}/containers")
        last = re.findall(r'class="name" href="[^"]*">([^<]*)<',
                          _request(f"{dashboard.url}/containers/fragment")[1])
        page.get_by_role("link", name=last[-1], exact=True).wait_for(timeout=15000)
        # every row once, in the order of the whole table
        assert page.locator("#containers a.name").all_inner_texts() == last
    finally:
        for container in made:
            client.delete(f"/containers/{container}", {"force": True})
        client.close()


def test_health_and_pause(page: Any, engine: Daemon, dashboard: Dashboard) -> None:
    container = run(engine, "--name", "checked", "--health-cmd", "true",
                    "--health-interval", "1s", "busybox:latest", "sleep", "300")
    page.goto(f"{dashboard.url}/containers")
    row(page, container).locator(".health", has_text="healthy").wait_for(timeout=10000)
    page.get_by_role("button", name="Pause checked").click()
    wait_for(lambda: state(engine.host, container)["Paused"], 5, "the pause")
    page.wait_for_selector(f'#c-{container}[data-state="paused"]', timeout=10000)
    page.get_by_role("button", name="Unpause checked").click()
    wait_for(lambda: not state(engine.host, container)["Paused"], 5, "the unpause")
    page.wait_for_selector(f'#c-{container}[data-state="running"]', timeout=10000)


def test_logs_stream_new_lines_as_text(page: Any, engine: Daemon, dashboard: Dashboard,
                                       screenshots: str) -> None:
    script = "i=0; while true; do i=$((i+1)); echo \"line $i <script>alert(2)</script>\"; " \
             "sleep 0.3; done"
    container = run(engine, "--name", "talker", "busybox:latest", "sh", "-c", script)
    page.goto(f"{dashboard.url}/containers/{container}")
    log = page.locator("#log")
    log.locator("div").nth(1).wait_for()
    first = log.locator("div").count()
    log.locator("div").nth(first + 1).wait_for(timeout=10000)
    assert "<script>alert(2)</script>" in log.inner_text()
    assert log.locator("script").count() == 0
    page.get_by_label("Search logs").fill("line 1 ")
    assert all("line 1 " in text for text in log.locator("div:visible").all_inner_texts())
    shot(page, screenshots, "container")


def test_terminal_runs_a_command(page: Any, engine: Daemon, dashboard: Dashboard) -> None:
    container = run(engine, "--name", "shell", "busybox:latest", "sleep", "300")
    page.goto(f"{dashboard.url}/containers/{container}")
    page.get_by_role("button", name="Open a terminal").click()
    page.wait_for_selector("#term-status:text('Connected')")
    page.locator("#term .xterm-helper-textarea").focus()
    page.keyboard.type("echo dashboard-$((6*7))\n")
    page.locator("#term .xterm-rows", has_text="dashboard-42").wait_for(timeout=20000)
    # The exec's TTY took the terminal's size (fitted to the page, wider than 80x24).
    page.keyboard.type("stty size | sed 's/^/size=/'\n")
    found = page.locator("#term .xterm-rows", has_text=re.compile(r"size=\d+ \d+"))
    found.wait_for(timeout=20000)
    rows, cols = map(int, re.search(r"size=(\d+) (\d+)", found.inner_text()).groups())
    assert cols > 80 and rows > 5


def test_file_browser_downloads_through_archive(page: Any, engine: Daemon,
                                                dashboard: Dashboard) -> None:
    container = run(engine, "--name", "files", "busybox:latest", "sleep", "300")
    page.goto(f"{dashboard.url}/containers/{container}")
    page.get_by_role("textbox", name="Path").fill("/usr")
    page.get_by_role("button", name="Browse files").click()
    page.locator("#files").get_by_role("link", name="bin/", exact=True).click()
    page.locator("#files code", has_text="/usr/bin").wait_for()
    page.get_by_role("textbox", name="Path").fill("/etc")
    page.get_by_role("button", name="Browse files").click()
    page.locator("#files code", has_text="/etc").wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download hostname").click()
    with tarfile.open(download.value.path()) as archive:
        assert archive.extractfile("hostname").read().strip() == container[:12].encode()


def test_compose_project_is_grouped(page: Any, engine: Daemon, dashboard: Dashboard,
                                    screenshots: str) -> None:
    containers = [run(engine, "--name", f"shop-{service}-1",
                      "--label", "com.docker.compose.project=shop",
                      "--label", f"com.docker.compose.service={service}",
                      "busybox:latest", "sh", "-c", f"echo ready-{service}; sleep 300")
                  for service in ("web", "db")]
    page.goto(f"{dashboard.url}/containers")
    group = page.locator('tbody[data-group="shop"]')
    for container in containers:
        assert group.locator(f"#c-{container}").count() == 1
    page.goto(f"{dashboard.url}/compose")
    project = page.locator("#p-shop")
    assert "web" in project.inner_text() and "db" in project.inner_text()
    page.get_by_role("button", name="Logs of shop").click()
    for service in ("web", "db"):  # merged, each line prefixed with its service
        page.locator("#project-log div", has_text=f"{service} |ready-{service}").wait_for()
    shot(page, screenshots, "compose")
    page.get_by_role("button", name="Down shop").click()
    project.wait_for(state="detached", timeout=10000)
    assert not moor(engine.host, "ps", "-aq", "--filter",
                    "label=com.docker.compose.project=shop").stdout.strip()


# --------------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def registry(base: str) -> Iterator[Server]:
    server = start_moor(os.path.join(base, "registry"))
    try:
        yield server
    finally:
        stop_server(server)


def _layer_tar() -> bytes:
    """An image of its own (not sharing busybox's layer), big enough to show progress."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        data = os.urandom(3 << 20)
        info = tarfile.TarInfo("payload.bin")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_pull_shows_progress_and_lands_in_the_list(page: Any, engine: Daemon,
                                                   dashboard: Dashboard, registry: Server,
                                                   screenshots: str) -> None:
    reference = f"{registry.host}/pulled/payload:v1"
    moor(engine.host, "import", "-", reference, input=_layer_tar())
    moor(engine.host, "push", reference)
    moor(engine.host, "rmi", reference)
    page.goto(f"{dashboard.url}/images")
    page.locator("#pull-reference").fill(reference)
    page.get_by_role("button", name="Pull").click()
    page.wait_for_selector("#pull-progress progress", timeout=10000)
    page.wait_for_selector("#pull-progress [data-done]", timeout=20000)
    assert "Downloaded newer image" in page.locator("#pull-progress").inner_text()
    page.wait_for_selector(f"#images .ref:text-is('{reference}')", timeout=5000)
    shot(page, screenshots, "images")
    # tag, history and remove, each through its button
    image = page.locator("#images tr", has_text=reference)
    image.get_by_label(f"New tag for {reference}").fill("retagged:v2")
    image.get_by_role("button", name="Tag").click()
    page.wait_for_selector("#images .ref:text-is('retagged:v2')", timeout=5000)
    image.locator("summary", has_text="History").click()
    image.locator("details table").wait_for(timeout=15000)
    page.get_by_role("button", name="Remove retagged:v2").click()
    page.wait_for_selector("#images .ref:text-is('retagged:v2')", state="detached",
                           timeout=5000)
    # the registry's own catalog, and its tags
    page.goto(f"{dashboard.url}/registries")
    page.get_by_label("Address").fill(registry.host)
    page.get_by_role("button", name="Browse").click()
    page.locator("#catalog", has_text=f"{registry.host}/pulled/payload").wait_for(timeout=15000)
    page.get_by_label("Server").fill(registry.host)
    page.get_by_label("User name").fill("anyone")
    page.get_by_label("Password").fill("anything")
    page.get_by_role("button", name="Log in").click()
    page.locator("#login-result", has_text="Login Succeeded").wait_for(timeout=15000)
    assert page.locator("#catalog").get_by_role("link", name="v1").count() == 1


def test_browsing_a_registry_that_asks_for_credentials(page: Any, dashboard: Dashboard,
                                                       base: str) -> None:
    # moor registry serve with htpasswd: a 401 with a bearer challenge; the catalog
    # needs a token for registry:catalog:*, each tag list one for its repository.
    folder = os.path.join(base, "registry-auth")
    os.makedirs(folder)
    htpasswd = write_htpasswd(os.path.join(folder, "htpasswd"), {"alice": "s3cret"})
    layout = os.path.join(folder, "layout")
    write_oci_layout(layout, [("linux", "amd64")])
    with start_moor(os.path.join(folder, "registry"), "--htpasswd", htpasswd) as server:
        copied = skopeo("--insecure-policy", "copy", "--dest-tls-verify=false",
                        "--dest-creds", "alice:s3cret", f"oci:{layout}:latest",
                        f"docker://{server.host}/secure/app:1")
        assert copied.returncode == 0, copied.stderr
        page.goto(f"{dashboard.url}/registries")
        page.get_by_label("Address").fill(server.host)
        page.get_by_role("button", name="Browse").click()
        alert = page.locator("#alerts .alert", has_text=server.host)
        alert.wait_for(timeout=15000)
        assert "answered 401 to /v2/_catalog, not a catalog: log in first" in alert.inner_text()
        page.get_by_label("Server").fill(server.host)
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password").fill("s3cret")
        page.get_by_role("button", name="Log in").click()
        page.locator("#login-result", has_text="Login Succeeded").wait_for(timeout=15000)
        page.get_by_role("button", name="Browse").click()
        page.locator("#catalog", has_text=f"{server.host}/secure/app").wait_for(timeout=15000)
        assert page.locator("#catalog").get_by_role("link", name="1", exact=True).count() == 1


def test_run_dialog_publishes_a_port(page: Any, engine: Daemon, dashboard: Dashboard) -> None:
    port = free_port()
    page.goto(f"{dashboard.url}/images")
    page.locator("#images tr", has_text="busybox:latest").get_by_role("button",
                                                                       name="Run").click()
    dialog = page.locator("#run-dialog")
    dialog.get_by_label("Name", exact=True).fill("published")
    dialog.get_by_label("Command").fill("busybox httpd -f -p 80 -h /etc")
    dialog.get_by_label("Ports").fill(f"127.0.0.1:{port}:80")
    dialog.get_by_label("Restart policy").select_option("unless-stopped")
    dialog.get_by_role("button", name="Run").click()
    page.wait_for_url("**/containers/*", timeout=10000)
    link = page.get_by_role("link", name=f"127.0.0.1:{port}->80/tcp")
    assert link.get_attribute("href") == f"http://127.0.0.1:{port}/"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=5) as answer:
        assert answer.status == 200
    page.goto(f"{dashboard.url}/containers")
    page.get_by_role("link", name="published", exact=True).click()
    page.wait_for_selector("#container-page h1:text('published')")
    assert page.get_by_role("link", name=f"127.0.0.1:{port}->80/tcp").count() == 1


def test_engine_errors_are_shown_with_the_engines_message(page: Any, engine: Daemon,
                                                          dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/images")
    page.locator("#images tr", has_text="busybox:latest").get_by_role("button",
                                                                       name="Run").click()
    page.locator("#run-dialog").get_by_label("Name", exact=True).fill(XSS)
    page.locator("#run-dialog").get_by_role("button", name="Run").click()
    alert = page.locator("#alerts .alert")
    alert.wait_for(timeout=15000)
    assert "Invalid container name" in alert.inner_text()
    assert XSS in alert.inner_text()  # shown as text, not as an element
    assert page.locator("#alerts img").count() == 0


# --------------------------------------------------------------------------- escaping


def test_html_in_labels_and_logs_renders_as_text(page: Any, engine: Daemon,
                                                 dashboard: Dashboard) -> None:
    container = run(engine, "--label", f"com.docker.compose.project={XSS}",
                    "--label", f"note={XSS}", "busybox:latest", "sh", "-c",
                    "echo '<script>alert(3)</script>'; sleep 300")
    page.goto(f"{dashboard.url}/containers")
    header = page.locator(f"#c-{container}").locator("xpath=..").locator("tr.group")
    assert XSS in header.inner_text()
    page.goto(f"{dashboard.url}/containers/{container}")
    page.locator("#log div", has_text="alert(3)").wait_for()
    assert XSS in page.locator("dl.summary").inner_text()
    assert page.locator("main img, #log script").count() == 0
    moor(engine.host, "rm", "-f", container)


# --------------------------------------------------------------------------- the guard


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None,
             context: ssl.SSLContext | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_cross_origin_post_is_refused(page: Any, engine: Daemon,
                                      dashboard: Dashboard) -> None:
    container = run(engine, "--name", "target", "busybox:latest", "sleep", "300")
    # A page of another origin submits a form to the dashboard: the browser sends the
    # dashboard's cookies only if SameSite allowed them, and the Origin gives it away.
    page.set_content(f'<form method="post" action="{dashboard.url}/containers/{container}/stop">'
                     '<button>go</button></form>')
    page.get_by_role("button", name="go").click()
    page.wait_for_load_state()
    assert "cross-origin request refused" in page.content()
    # The same with a valid CSRF pair but a foreign Origin, and with no token at all.
    page.goto(f"{dashboard.url}/containers")
    csrf = page.evaluate("window.moorCsrf")
    cookie = f"moor_csrf={csrf}"
    target = f"{dashboard.url}/containers/{container}/stop"
    assert _request(target, "POST", {"Origin": "http://evil.example", "Cookie": cookie,
                                     "X-CSRF-Token": csrf})[0] == 403
    assert _request(target, "POST", {"Origin": dashboard.url, "Cookie": cookie})[0] == 403
    assert _request(target, "POST", {"Origin": dashboard.url, "Host": "evil.example",
                                     "Cookie": cookie, "X-CSRF-Token": csrf})[0] == 421
    terminal = f"{dashboard.url}/containers/{container}/terminal?csrf={csrf}"
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Cookie": cookie}
    assert _request(terminal, headers={**upgrade, "Origin": "http://evil.example"})[0] == 403
    assert state(engine.host, container)["Running"]


def test_non_loopback_needs_auth_and_tls(engine: Daemon, base: str) -> None:
    refused = moor(engine.host, "dashboard", "--listen", "0.0.0.0:7799", check=False)
    assert refused.returncode == 125
    assert "without --auth and --tls-cert/--tls-key" in refused.stderr
    cert, key = os.path.join(base, "dash.crt"), os.path.join(base, "dash.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    port = free_port()
    server = start_dashboard(engine.host, base, f"--listen=0.0.0.0:{port}", "--auth",
                             "--tls-cert", cert, "--tls-key", key, port=port, scheme="https")
    try:
        token_file = os.path.join(base, "cfg", "moor-dashboard", "token")
        token = Path(token_file).read_text().strip()
        assert os.stat(token_file).st_mode & 0o777 == 0o600
        wait_for(lambda: token in server.log(), what="the token printed once")
        assert server.log().count(token) == 2  # the token line and the address line
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False
        status, body = _request(f"{server.url}/containers", context=context)
        assert status == 401 and "token" in body
        assert _request(f"{server.url}/containers", headers={"Authorization": "Bearer nope"},
                        context=context)[0] == 401
        status, body = _request(f"{server.url}/containers",
                                headers={"Authorization": f"Bearer {token}"}, context=context)
        assert status == 200 and "<h1>Containers</h1>" in body
        # The printed address carries the token once; the browser keeps a session cookie.
        with urllib.request.urlopen(f"{server.url}/containers?token={token}", timeout=5,
                                    context=context) as answer:
            cookies = answer.headers.get_all("Set-Cookie")
        session = next(c for c in cookies if c.startswith("moor_session="))
        assert token not in session
        assert all(flag in session for flag in ("HttpOnly", "Secure", "SameSite=Strict"))
        assert _request(f"{server.url}/containers", context=context,
                        headers={"Cookie": session.split(";")[0]})[0] == 200
        with pytest.raises(OSError):  # TLS only
            urllib.request.urlopen(f"http://127.0.0.1:{port}/containers", timeout=5)
    finally:
        stop_process(server.process)


# --------------------------------------------------------------------------- views


def test_volume_and_network_create_and_remove(page: Any, engine: Daemon,
                                              dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/volumes")
    page.get_by_label("Name").fill("dash-vol")
    page.get_by_role("button", name="Create volume").click()
    page.get_by_role("button", name="Remove dash-vol").click()
    page.wait_for_selector("#volumes td:text-is('dash-vol')", state="detached", timeout=5000)
    page.goto(f"{dashboard.url}/networks")
    page.get_by_label("Name").fill("dash-net")
    page.get_by_role("button", name="Create network").click()
    page.get_by_role("button", name="Remove dash-net").click()
    page.wait_for_selector("#networks td:text-is('dash-net')", state="detached", timeout=5000)
    assert "dash-net" not in moor(engine.host, "network", "ls").stdout


@pytest.mark.parametrize("view", ["volumes", "networks", "registries", "system"])
def test_other_views_render(page: Any, engine: Daemon, dashboard: Dashboard,
                            screenshots: str, view: str) -> None:
    page.goto(f"{dashboard.url}/{view}")
    assert page.locator("h1").inner_text() == view.capitalize()
    assert not page.locator("#alerts .alert").count()
    shot(page, screenshots, view)


def test_every_view_answers_in_front_of_dockerd(base: str, busybox_tar: bytes) -> None:
    """The dashboard speaks only the Engine API, so it serves a real dockerd too, whose
    documents leave out what moord sends (a created container's SizeRw of 0 in /system/df)."""
    if not dockerd_available():
        pytest.skip("needs dockerd (make deps installs docker.io)")
    home = os.path.join(base, "dockerd")
    os.mkdir(home)
    daemon = start_dockerd(home)
    try:
        daemon.docker("import", "-", "busybox:latest", input=busybox_tar, check=True)
        client = api(daemon.host)
        created = client.post("/containers/create", {"name": "idle"},
                              {"Image": "busybox:latest", "Cmd": ["true"],
                               "HostConfig": {"NetworkMode": "none"}})["Id"]
        client.close()
        server = start_dashboard(daemon.host, home)
        try:
            for view in ("/containers", f"/containers/{created}", "/images", "/volumes",
                         "/networks", "/compose", "/registries", "/system"):
                status, body = _request(f"{server.url}{view}")
                assert status == 200 and body.rstrip().endswith("</html>"), (view, body[-300:])
        finally:
            stop_process(server.process)
    finally:
        stop_dockerd(daemon)


def test_system_prune_preview_lists_what_goes(page: Any, engine: Daemon,
                                              dashboard: Dashboard) -> None:
    moor(engine.host, "create", "--name", "leftover", "busybox:latest", "true")
    page.goto(f"{dashboard.url}/system")
    assert "leftover" in page.locator("#preview").inner_text()
    info = json.loads(moor(engine.host, "info", "--format", "{{json .}}").stdout)
    assert info["Name"] in page.locator("dl.summary").inner_text()
    page.get_by_role("button", name="Prune").click()
    page.locator("#prune-result", has_text="Total reclaimed space").wait_for(timeout=10000)
    assert not moor(engine.host, "ps", "-aq", "--filter", "name=leftover").stdout.strip()


def test_a_lost_engine_shows_a_banner_and_comes_back(page: Any, engine: Daemon,
                                                     base: str) -> None:
    proxy = CuttableProxy(os.path.join(base, "proxy.sock"), engine.socket)
    server = start_dashboard(proxy.host, base)
    try:
        page.goto(f"{server.url}/containers")
        page.wait_for_selector('body[data-live="open"]', state="attached")
        banner = page.locator("#banner")
        assert banner.is_hidden()
        proxy.cut()
        banner.wait_for(state="visible", timeout=5000)
        assert "Lost connection to the engine" in banner.inner_text()
        proxy.restore()
        banner.wait_for(state="hidden", timeout=5000)
        container = run(engine, "--name", "after-the-cut", "busybox:latest", "sleep", "300")
        row(page, container).wait_for(timeout=2000)
    finally:
        stop_process(server.process)
        proxy.cut()


def test_narrow_window_and_dark_theme(browser: Any, engine: Daemon, dashboard: Dashboard,
                                      screenshots: str) -> None:
    context = browser.new_context(viewport={"width": 420, "height": 800}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(f"{dashboard.url}/containers")
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == \
            "rgb(13, 17, 23)"
        assert page.get_by_role("button", name="Stop").first.is_visible()
        shot(page, screenshots, "containers-narrow-dark")
    finally:
        context.close()
