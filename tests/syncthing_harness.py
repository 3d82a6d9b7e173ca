"""Two real Syncthing instances sharing one folder, bound to 127.0.0.1, nothing else.

Each gets a home of its own (`syncthing generate`), its GUI/API and its sync listener on free
ports of 127.0.0.1, global and local discovery, relays, NAT and usage reports off, and the other
as its only device, at its fixed address. The REST API (with the API key written into the
config) says when they are connected and when a folder is in sync.
"""

from __future__ import annotations

import copy
import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helpers import wait_for

SYNCTHING = shutil.which("syncthing") or "/usr/bin/syncthing"
FOLDER_ID = "vault"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    name: str
    home: Path
    folder: Path
    device_id: str
    gui_port: int
    sync_port: int
    api_key: str
    process: subprocess.Popen[bytes] | None = None

    def api(self, path: str, method: str = "GET", body: object = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gui_port}{path}",
            data=data,
            method=method,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read().decode()
        return json.loads(text) if text.strip() else None

    def up(self) -> bool:
        try:
            return bool(self.api("/rest/system/ping"))
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def start(self) -> None:
        log = (self.home / "syncthing.log").open("ab")
        self.process = subprocess.Popen(
            [
                SYNCTHING,
                "serve",
                f"--home={self.home}",
                "--no-browser",
                "--no-restart",
                "--no-upgrade",
                f"--gui-address=http://127.0.0.1:{self.gui_port}",
                f"--gui-apikey={self.api_key}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "STNOUPGRADE": "1"},
        )
        log.close()
        wait_for(self.up, 60, f"syncthing {self.name} to answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def connected(self, other: Instance) -> bool:
        connections = self.api("/rest/system/connections")["connections"]
        return bool(connections.get(other.device_id, {}).get("connected"))

    def knows(self, rel: str, text: str) -> bool:
        """This instance's index has the file as it is now (its scan has seen `text`)."""
        self.rescan()
        answer = self.api(f"/rest/db/file?folder={FOLDER_ID}&file={urllib.parse.quote(rel)}")
        return int(answer.get("local", {}).get("size", -1)) == len(text.encode())

    def rescan(self) -> None:
        self.api(f"/rest/db/scan?folder={FOLDER_ID}", method="POST")

    def in_sync_with(self, other: Instance) -> bool:
        """This instance has everything `other` has, and nothing is left to pull or push."""
        mine = self.api(f"/rest/db/status?folder={FOLDER_ID}")
        remote = self.api(f"/rest/db/completion?folder={FOLDER_ID}&device={other.device_id}")
        return (
            mine.get("state") == "idle"
            and mine.get("needTotalItems", 1) == 0
            and remote.get("completion") == 100
            and remote.get("needItems", 1) == 0
        )


def _generate(name: str, base: Path, folder: Path) -> Instance:
    home = base / f"syncthing-{name}"
    home.mkdir(parents=True)
    subprocess.run(
        [SYNCTHING, "generate", f"--home={home}", "--no-default-folder", "--skip-port-probing"],
        check=True,
        capture_output=True,
        timeout=120,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    device_id = ET.parse(home / "config.xml").getroot().find("device").get("id")  # type: ignore[union-attr]
    return Instance(
        name, home, folder, str(device_id), _free_port(), _free_port(), secrets.token_hex(16)
    )


def _configure(me: Instance, peer: Instance, ignores: str) -> None:
    """Only 127.0.0.1, only the peer, one folder watched for changes as they happen."""
    path = me.home / "config.xml"
    tree = ET.parse(path)
    root = tree.getroot()
    for old in root.findall("device") + root.findall("folder"):
        if old.get("id") != me.device_id:
            root.remove(old)
    gui = root.find("gui")
    assert gui is not None
    gui.find("address").text = f"127.0.0.1:{me.gui_port}"  # type: ignore[union-attr]
    gui.find("apikey").text = me.api_key  # type: ignore[union-attr]
    options = root.find("options")
    assert options is not None
    settings = {
        "listenAddress": f"tcp://127.0.0.1:{me.sync_port}",
        "globalAnnounceEnabled": "false",
        "localAnnounceEnabled": "false",
        "relaysEnabled": "false",
        "natEnabled": "false",
        "urAccepted": "-1",
        "autoUpgradeIntervalH": "0",
        "crashReportingEnabled": "false",
        "startBrowser": "false",
    }
    for key, value in settings.items():
        for element in options.findall(key):
            options.remove(element)
        ET.SubElement(options, key).text = value
    device = ET.SubElement(
        root,
        "device",
        {"id": peer.device_id, "name": peer.name, "compression": "never", "introducer": "false"},
    )
    ET.SubElement(device, "address").text = f"tcp://127.0.0.1:{peer.sync_port}"
    # A folder made from the config's own defaults, as the GUI makes one: an element left
    # out is zero, not its default (no <maxConflicts> would mean no conflict copies at all).
    folder = copy.deepcopy(root.find("defaults/folder"))
    assert folder is not None
    folder.attrib.update(
        {
            "id": FOLDER_ID,
            "label": FOLDER_ID,
            "path": str(me.folder),
            "type": "sendreceive",
            "rescanIntervalS": "3600",
            "fsWatcherEnabled": "true",
            "fsWatcherDelayS": "1",
        }
    )
    for old_device in folder.findall("device"):
        folder.remove(old_device)
    for device_id in (me.device_id, peer.device_id):
        ET.SubElement(folder, "device", {"id": device_id})
    root.insert(0, folder)
    tree.write(path)
    me.folder.mkdir(parents=True, exist_ok=True)
    (me.folder / ".stignore").write_text(ignores)


@dataclass
class Pair:
    a: Instance
    b: Instance

    def start(self) -> None:
        self.a.start()
        self.b.start()
        wait_for(lambda: self.a.connected(self.b) and self.b.connected(self.a), 60, "connected")

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()

    def synced(self, timeout: float = 60) -> None:
        """Both have the same files (each rescans first: its watcher may lag)."""
        deadline = time.monotonic() + timeout

        def settled() -> bool:
            return self.a.in_sync_with(self.b) and self.b.in_sync_with(self.a)

        self.a.rescan()
        self.b.rescan()
        wait_for(settled, max(1.0, deadline - time.monotonic()), "the two folders in sync")


def syncthing_pair(base: Path, folder_a: Path, folder_b: Path, ignores: str) -> Pair:
    a = _generate("a", base, folder_a)
    b = _generate("b", base, folder_b)
    _configure(a, b, ignores)
    _configure(b, a, ignores)
    return Pair(a, b)
