"""The demo reports in a real browser: headless Chromium (Debian's package, installed here if missing and we are
root) renders each page, every figure loads, and the page logs nothing to the console. Skipped, with the reason,
when Chromium cannot be had."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from snncheck.cli import main

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom"]

# appended to a copy of the page: after load it writes what it found into the DOM that --dump-dom prints
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const el = document.createElement("pre"); el.id = "snncheck-probe";
  el.textContent = JSON.stringify({images: imgs.length, broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length,
                                   height: document.body.scrollHeight, title: document.title});
  document.body.appendChild(el);
});
</script>"""


def _chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and cannot be installed here (not root or no apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        except subprocess.TimeoutExpired:
            pytest.skip(f"installing Chromium timed out ({' '.join(cmd)})")
        if proc.returncode != 0:
            pytest.skip(f"Chromium could not be installed: {' '.join(cmd)} failed: {proc.stderr.strip()[-200:]}")
    return shutil.which("chromium") or pytest.skip("apt-get installed chromium but no chromium binary was found")


@pytest.fixture(scope="module")
def demo_reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out-dir", str(out), "--samples", "8", "--timesteps", "4"]) == 0
    return out


def _open(chromium: str, page, tmp_path):
    probed = tmp_path / f"probed_{page.name}"
    probed.write_text(page.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", probed.as_uri()],
                          capture_output=True, text=True, timeout=120)
    match = re.search(r'id="snncheck-probe">([^<]*)<', proc.stdout)
    assert match, f"the page did not finish loading in Chromium (rc {proc.returncode}): {proc.stderr[-500:]}"
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(match.group(1).replace("&quot;", '"')), console


@pytest.mark.parametrize("name", ["demo_correct.html", "demo_seed_bug.html"])
def test_demo_report_renders_in_chromium(demo_reports, tmp_path, name):
    chromium = _chromium()
    found, console = _open(chromium, demo_reports / name, tmp_path)
    assert found["images"] >= 8, found              # rasters, rate maps, membrane and weight scatters per layer
    assert found["broken"] == 0, found
    assert found["height"] > 2000, found            # the page laid out its sections
    assert console == [], console


def test_the_probe_sees_a_broken_figure_and_a_console_error(tmp_path):
    """The check above can fail: a page with an undecodable image and a console message is caught."""
    chromium = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="data:image/png;base64,AAAA"><script>console.error("boom")</script>'
                   "</body></html>")
    found, console = _open(chromium, bad, tmp_path)
    assert found["broken"] == 1 and any("boom" in line for line in console)
