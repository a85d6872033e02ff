"""Headless Chromium for page tests: a selenium driver with the flags this kind of machine
needs (no sandbox as root; no background networking, since the network is closed), or a skip
that says why it cannot run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,900",
)


@contextmanager
def chromium() -> Iterator[object]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "headless Chromium is not installed: `make test` installs Debian's chromium and "
            "chromium-driver where it runs as root with the package registry reachable"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev extra")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    try:
        session = webdriver.Chrome(service=Service(driver), options=options)
    except Exception as err:  # a browser that cannot start here is an environment problem
        pytest.skip(f"Chromium is installed but did not start: {err}")
    try:
        yield session
    finally:
        session.quit()
