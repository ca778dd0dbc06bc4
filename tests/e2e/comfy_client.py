"""A small HTTP + websocket client for a running ComfyUI (stdlib + websocket-client only).

    client = ComfyClient(base_url)
    result = client.run(api_prompt, timeout=300)        # queue, follow /ws?clientId=, read /history/<id>
    result.status                                       # "success" | "error" | "interrupted"
    result.error["exception_type"], result.error["exception_message"]
    result.progress                                     # [(node_id, value, max), ...] from "progress" events
    result.custom_events                                # [(type, data)]: messages without a prompt_id, e.g. a
                                                        # pack's own events (skyreels.progress) while it ran
    result.files()                                      # [{"filename", "subfolder", "type"}, ...] from outputs

Queue-then-interrupt: ``pid = client.queue(p)`` then ``client.wait(pid, on_event=cb)``, where cb(type, data) gets every
JSON message but "status" and may call ``client.interrupt()`` (e.g. on a "skyreels.progress" event of step k:
``result.steps(node)`` lists them, one per step; ComfyUI's own "progress" events are throttled from 0.30 on). A prompt the server rejects at validation raises
``PromptRejected`` with the server's ``error`` and ``node_errors``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import websocket  # websocket-client

DONE_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


class PromptRejected(RuntimeError):
    """POST /prompt answered 400: the prompt failed validation (nothing ran)."""

    def __init__(self, body: dict):
        self.body = body
        self.error = body.get("error", {})
        self.node_errors = body.get("node_errors", {})
        details = "; ".join(
            f"node {nid} ({ne.get('class_type')}): " + ", ".join(e.get("details") or e.get("message", "")
                                                               for e in ne.get("errors", []))
            for nid, ne in self.node_errors.items())
        super().__init__(f"prompt rejected: {self.error.get('message')} {self.error.get('details', '')} {details}")


@dataclass
class RunResult:
    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    events: list = field(default_factory=list)  # [(type, data)] JSON websocket messages for this prompt
    binary_frames: int = 0  # preview images and other binary websocket messages
    custom_events: list = field(default_factory=list)  # [(type, data)] JSON messages without a prompt_id
    history: dict = field(default_factory=dict)  # /history/<id>[<id>]

    @property
    def outputs(self) -> dict:
        return self.history.get("outputs", {})

    @property
    def progress(self) -> list[tuple[str, int, int]]:
        return [(d.get("node"), d["value"], d["max"]) for t, d in self.events if t == "progress"]

    def steps(self, node_id: str) -> list[tuple[int, int]]:
        """(step, total) of every sampling step a SkyReels node reported, from its own "skyreels.progress" events:
        one per step on every ComfyUI version (ComfyUI 0.30 drops "progress" events < 100 ms apart)."""
        return [(d["step"], d["total"]) for t, d in self.custom_events
                if t == "skyreels.progress" and str(d.get("node")) == str(node_id) and d.get("text")]

    @property
    def error(self) -> dict | None:
        """The execution_error message: exception_type, exception_message, node_id, node_type, traceback."""
        for t, d in self.events:
            if t == "execution_error":
                return d
        for name, d in self.history.get("status", {}).get("messages", []):
            if name == "execution_error":
                return d
        return None

    @property
    def executed_nodes(self) -> list[str]:
        return [d["node"] for t, d in self.events if t == "executing" and d.get("node") is not None]

    def files(self, node_id: str | None = None) -> list[dict]:
        """Every {"filename", "subfolder", "type"} entry in the outputs (images, videos, audio, ...)."""
        found = []
        for nid, out in self.outputs.items():
            if node_id is not None and nid != str(node_id):
                continue
            for value in out.values():
                if isinstance(value, list):
                    found += [v for v in value if isinstance(v, dict) and "filename" in v]
        return found

    def paths(self, output_dir: Path | str, suffix: str | None = None) -> list[Path]:
        """Output files as paths under the server's output folder (type "output" only)."""
        out = [Path(output_dir) / f.get("subfolder", "") / f["filename"] for f in self.files()
               if f.get("type") == "output"]
        return [p for p in out if suffix is None or p.suffix == suffix]

    def raise_for_status(self) -> RunResult:
        if self.status != "success":
            err = self.error or {}
            raise AssertionError(f"prompt {self.prompt_id} ended '{self.status}': {err.get('node_type')} "
                                 f"(node {err.get('node_id')}): {err.get('exception_type')}: "
                                 f"{err.get('exception_message')}\n{''.join(err.get('traceback') or [])}")
        return self


class ComfyClient:
    def __init__(self, base_url: str, client_id: str | None = None, http_timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.http_timeout = http_timeout

    # ---------------------------------------------------------------------------------------------- HTTP

    def request(self, method: str, path: str, payload=None) -> tuple[int, bytes]:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=self.http_timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path: str):
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body[:500]!r}")
        return json.loads(body)

    def post_json(self, path: str, payload) -> tuple[int, dict | None]:
        status, body = self.request("POST", path, payload)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, {"raw": body.decode(errors="replace")}

    def object_info(self, node_class: str | None = None) -> dict:
        if node_class is None:
            return self.get_json("/object_info")
        return self.get_json("/object_info/" + urllib.parse.quote(node_class))[node_class]

    def workflow_templates(self) -> dict[str, list[str]]:
        return self.get_json("/workflow_templates")

    def workflow_template(self, module: str, name: str) -> dict:
        return self.get_json(f"/api/workflow_templates/{urllib.parse.quote(module)}/{urllib.parse.quote(name)}.json")

    def history(self, prompt_id: str | None = None) -> dict:
        return self.get_json("/history" + (f"/{prompt_id}" if prompt_id else ""))

    def queue_state(self) -> dict:
        return self.get_json("/queue")

    def interrupt(self, prompt_id: str | None = None) -> None:
        status, body = self.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})
        if status != 200:
            raise RuntimeError(f"POST /interrupt -> {status}: {body}")

    def view(self, filename: str, subfolder: str = "", type_: str = "output") -> bytes:
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type_})
        status, body = self.request("GET", "/view?" + q)
        if status != 200:
            raise RuntimeError(f"GET /view {filename} -> {status}")
        return body

    def queue(self, prompt: dict, extra_data: dict | None = None) -> str:
        """POST /prompt (API format); returns the prompt id or raises PromptRejected."""
        payload = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            payload["extra_data"] = extra_data
        status, body = self.post_json("/prompt", payload)
        if status != 200:
            raise PromptRejected(body or {})
        return body["prompt_id"]

    # ----------------------------------------------------------------------------------------- websocket

    def connect(self) -> websocket.WebSocket:
        ws_url = self.base_url.replace("http://", "ws://", 1) + "/ws?clientId=" + self.client_id
        ws = websocket.create_connection(ws_url, timeout=10)
        ws.settimeout(1.0)
        return ws

    def wait(self, prompt_id: str, timeout: float = 600.0, ws: websocket.WebSocket | None = None,
             on_event: Callable[[str, dict], None] | None = None) -> RunResult:
        """Follow the websocket until the prompt ends (or raise TimeoutError), then read its history."""
        own_ws = ws is None
        ws = ws or self.connect()
        result = RunResult(prompt_id, "unknown")
        deadline = time.monotonic() + timeout
        quiet_after_finish = 0
        try:
            while result.status == "unknown":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s; last events "
                                       f"{[t for t, _ in result.events[-10:]]}")
                try:
                    msg = ws.recv()
                except websocket.WebSocketTimeoutException:
                    # finished while we were not listening: read what is still queued (a loaded machine can be
                    # slow to deliver the last messages), then stop after a second quiet second
                    if self._finished_in_history(prompt_id):
                        quiet_after_finish += 1
                        if quiet_after_finish >= 2:
                            result.status = "from_history"
                    continue
                if isinstance(msg, bytes):
                    result.binary_frames += 1
                    continue
                m = json.loads(msg)
                mtype, data = m.get("type"), m.get("data") or {}
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if mtype != "status":
                    (result.events if "prompt_id" in data else result.custom_events).append((mtype, data))
                    if on_event is not None:
                        on_event(mtype, data)
                if mtype in DONE_EVENTS and data.get("prompt_id") == prompt_id:
                    result.status = mtype.removeprefix("execution_")
        finally:
            if own_ws:
                ws.close()
        result.history = self._wait_history(prompt_id)
        if result.status == "from_history":
            result.status = _status_from_history(result.history)
        return result

    def run(self, prompt: dict, timeout: float = 600.0, extra_data: dict | None = None,
            on_event: Callable[[str, dict], None] | None = None) -> RunResult:
        """Queue a prompt and wait for it, listening on the websocket from before the queueing."""
        ws = self.connect()
        try:
            prompt_id = self.queue(prompt, extra_data)
            return self.wait(prompt_id, timeout, ws=ws, on_event=on_event)
        finally:
            ws.close()

    def _finished_in_history(self, prompt_id: str) -> bool:
        h = self.history(prompt_id).get(prompt_id)
        return bool(h and h.get("status", {}).get("status_str"))

    def _wait_history(self, prompt_id: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            h = self.history(prompt_id).get(prompt_id)
            if h and h.get("status", {}).get("status_str"):
                return h
            if time.monotonic() > deadline:
                raise TimeoutError(f"/history/{prompt_id} has no status after the prompt ended")
            time.sleep(0.1)


def _status_from_history(h: dict) -> str:
    names = [name for name, _ in h.get("status", {}).get("messages", [])]
    for ev in DONE_EVENTS:
        if ev in names:
            return ev.removeprefix("execution_")
    return "success" if h.get("status", {}).get("status_str") == "success" else "error"
