"""One moord, one busybox image, one dashboard and one headless Chromium for the module."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from dashkit import CHROMIUM, SCREENSHOTS, Dashboard, moor, start_dashboard
from enginekit import Daemon, start_daemon, stop_daemon
from peers import stop_process


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="dashboard-test-") as path:
        yield path


@pytest.fixture(scope="module")
def engine(base: str, busybox_tar: bytes) -> Iterator[Daemon]:
    os.mkdir(os.path.join(base, "moord"))
    daemon = start_daemon(os.path.join(base, "moord"))
    try:
        moor(daemon.host, "import", "-", "busybox:latest", input=busybox_tar)
        yield daemon
        containers = moor(daemon.host, "ps", "-aq", check=False).stdout.split()
        if containers:
            moor(daemon.host, "rm", "-f", *containers, check=False)
    finally:
        stop_daemon(daemon)


@pytest.fixture(scope="module")
def dashboard(engine: Daemon, base: str) -> Iterator[Dashboard]:
    server = start_dashboard(engine.host, base)
    yield server
    stop_process(server.process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium (make deps installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page at 1280x800; a JavaScript error or an alert() fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "alert":  # the XSS tests' payloads call alert()
            problems.append(f"alert: {dialog.message}")
            dialog.dismiss()
        else:
            dialog.accept()  # hx-confirm before a removal

    page.on("dialog", on_dialog)
    yield page
    context.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def screenshots() -> str:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir()
    return str(SCREENSHOTS)
