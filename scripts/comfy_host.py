"""Start and stop the embedded ComfyUI test server (shared by tests/e2e, tests/browser and scripts/demo.py).

    from comfy_host import ComfyServer, ensure_host
    ensure_host()                                   # runs scripts/setup_test_host.py when the host is not ready
    with ComfyServer(run_dir) as srv:               # python main.py --cpu --listen 127.0.0.1 --port <free> ...
        srv.base_url, srv.log_text(), srv.output_dir

The host is the one of the selected ComfyUI version (env SKYREELS_COMFY=oldest|newest, see
scripts/setup_test_host.py); on the newest it serves the newest frontend (``--front-end-root``) unless
SKYREELS_FRONTEND=pinned. The server runs from ``<host>/ComfyUI`` with the host venv's python, offline
(``--disable-api-nodes``, HF/transformers offline env), with its output/input/temp/user folders and its log
(``comfy.log``) under ``run_dir``; the input folder starts with the templates' example inputs
(workflows/example_inputs/). Models come from
``<host>/ComfyUI/models`` (tiny checkpoints from the set-up, or real files a user put there).
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import setup_test_host as setup  # noqa: E402
from templates import workflow_path  # noqa: E402, F401  (template id or title -> workflows/<title>.json)

LOG = logging.getLogger("comfy_host")
REPO = setup.REPO
PACK_LINK_NAME = setup.PACK_LINK_NAME


def pack_node_ids() -> list[str]:
    """Keys of the literal NODE_CLASS_MAPPINGS dict(s) in the pack's __init__.py (read with ast, no import)."""
    ids: list[str] = []
    for node in ast.walk(ast.parse((REPO / "__init__.py").read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        if any(isinstance(t, ast.Name) and t.id == "NODE_CLASS_MAPPINGS" for t in targets):
            if not isinstance(node.value, ast.Dict):
                raise ValueError("NODE_CLASS_MAPPINGS in __init__.py must be a literal dict")
            ids += [k for k in (ast.literal_eval(k) for k in node.value.keys) if k not in ids]
    return ids


def workflow_files() -> list[Path]:
    """The pack's example workflows (UI format), as ComfyUI's template browser lists them."""
    return sorted((REPO / "workflows").glob("*.json"))


EXAMPLE_INPUTS = REPO / "workflows" / "example_inputs"


def copy_example_inputs(input_dir: Path) -> list[Path]:
    """Copy the templates' example inputs (workflows/example_inputs/*) into a ComfyUI input folder."""
    input_dir.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(f, input_dir / f.name)) for f in sorted(EXAMPLE_INPUTS.iterdir()) if f.is_file()]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_problems(host: Path | None = None) -> list[str]:
    """What is missing for the test host to run this checkout (empty when ready)."""
    host = host or setup.host_dir()
    problems = []
    if not setup.venv_python(host).exists():
        problems.append(f"no venv at {host / 'venv'}")
    if not (setup.comfy_dir(host) / "main.py").exists():
        problems.append(f"no ComfyUI at {setup.comfy_dir(host)}")
    elif setup.installed_comfy_version(host) != setup.comfy_source().version:
        problems.append(f"{setup.comfy_dir(host)} is ComfyUI {setup.installed_comfy_version(host)}, "
                        f"SKYREELS_COMFY={setup.comfy_choice()} wants {setup.comfy_source().version}")
    if setup.comfy_source().frontend and not (host / "stamps" / "frontend").exists():
        problems.append(f"no {setup.comfy_source().frontend} in {host / 'frontend'}")
    if not (host / "stamps" / "verify").exists():
        problems.append("the set-up never finished (no stamps/verify)")
    link = setup.comfy_dir(host) / "custom_nodes" / PACK_LINK_NAME
    if not (link.is_symlink() and Path(os.readlink(link)) == REPO):
        problems.append(f"{link} does not point at this checkout ({REPO})")
    return problems


def ensure_host(run_setup: bool = True) -> Path:
    """Return the host folder, running the set-up first when it is incomplete (or raising with the command)."""
    host = setup.host_dir()
    problems = host_problems(host)
    if problems and run_setup:
        LOG.info("test host not ready (%s); running the set-up", "; ".join(problems))
        py = shutil.which("python3.11") or sys.executable
        subprocess.run([py, str(REPO / "scripts" / "setup_test_host.py"), "--comfy", setup.comfy_choice()], check=True)
        problems = host_problems(host)
    if problems:
        raise RuntimeError(f"test host not ready: {'; '.join(problems)}. Run: python3.11 "
                           f"scripts/setup_test_host.py --comfy {setup.comfy_choice()}")
    return host


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies (a killed pytest leaves no server behind). Linux only."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class ComfyServer:
    """One ComfyUI server process with the pack linked in; a context manager."""

    def __init__(self, run_dir: Path | str, *, port: int | None = None, extra_args=(), host: Path | None = None):
        self.host = Path(host) if host else setup.host_dir()
        self.run_dir = Path(run_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.run_dir / "comfy.log"
        self.output_dir = self.run_dir / "output"
        self.input_dir = self.run_dir / "input"
        self.temp_dir = self.run_dir / "temp"
        self.user_dir = self.run_dir / "user"
        self.models_dir = setup.comfy_dir(self.host) / "models"
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None
        self.startup_log = ""

    def command(self) -> list[str]:
        front_end = setup.frontend_root(self.host)
        return [
            str(setup.venv_python(self.host)), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-auto-launch", "--disable-api-nodes", "--output-directory", str(self.output_dir),
            "--input-directory", str(self.input_dir), "--temp-directory", str(self.temp_dir),
            "--user-directory", str(self.user_dir), "--database-url", "sqlite:///:memory:",
            *(["--front-end-root", str(front_end)] if front_end else []), *self.extra_args,
        ]

    def start(self, timeout: float = 180.0) -> ComfyServer:
        for d in (self.output_dir, self.input_dir, self.temp_dir, self.user_dir):
            d.mkdir(parents=True, exist_ok=True)
        copy_example_inputs(self.input_dir)  # the shipped templates run as they are
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   DO_NOT_TRACK="1", PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        t0 = time.monotonic()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.command(), cwd=setup.comfy_dir(self.host), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} while starting; log {self.log_path}:"
                                   f"\n{self.log_tail()}")
            if self._ready():
                break
            if time.monotonic() - t0 > timeout:
                self.stop()
                raise TimeoutError(f"ComfyUI not ready after {timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.25)
        self.start_seconds = time.monotonic() - t0
        self.startup_log = self.log_text()  # everything up to "Starting server" (custom node imports included)
        LOG.info("ComfyUI ready at %s in %.1f s (log %s)", self.base_url, self.start_seconds, self.log_path)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/system_stats", timeout=2) as r:
                return r.status == 200 and "system" in json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return False

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT (ComfyUI's clean shutdown), then SIGKILL of its process group after timeout."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass

    def log_since(self, offset: int) -> str:
        """Log text after a mark taken with ``len(srv.log_text())``."""
        return self.log_text()[offset:]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_SHARED: dict[str, ComfyServer] = {}
SESSION_RUNS = REPO / "artifacts" / "e2e_server"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def session_run_dir() -> Path:
    """artifacts/e2e_server/run-<pid>: one folder per test process (parallel sessions do not collide); folders of
    processes that are gone are removed."""
    SESSION_RUNS.mkdir(parents=True, exist_ok=True)
    for old in SESSION_RUNS.glob("run-*"):
        pid = old.name.removeprefix("run-")
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return SESSION_RUNS / f"run-{os.getpid()}"


def shared_server(run_dir: Path | str | None = None) -> ComfyServer:
    """One server per process (pytest session): started on first use, stopped by stop_shared() or at exit."""
    if "server" not in _SHARED or not _SHARED["server"].is_running():
        ensure_host()
        run_dir = Path(run_dir) if run_dir else session_run_dir()
        shutil.rmtree(run_dir, ignore_errors=True)
        _SHARED["server"] = ComfyServer(run_dir).start()
        atexit.register(stop_shared)
    return _SHARED["server"]


def stop_shared() -> None:
    srv = _SHARED.pop("server", None)
    if srv is not None:
        srv.stop()


def main(argv=None) -> int:
    """`python scripts/comfy_host.py [--port N]`: run the test server in the foreground until Ctrl-C."""
    import argparse

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser(description="Run the embedded ComfyUI with this pack until Ctrl-C.")
    ap.add_argument("--port", type=int, default=8188)
    ap.add_argument("--run-dir", default=str(REPO / "artifacts" / "comfy_host"))
    args = ap.parse_args(argv)
    ensure_host()
    with ComfyServer(args.run_dir, port=args.port) as srv:
        LOG.info("UI: %s  (log: %s)", srv.base_url, srv.log_path)
        try:
            srv.proc.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())


@contextlib.contextmanager
def frontend_page(viewport: tuple[int, int], prepare_inputs=None):
    """A ready ComfyUI frontend page (Debian Chromium, fresh profile) on a fresh test server, for the scripts that
    build workflows or take thumbnails in the real frontend. `prepare_inputs(input_dir)` runs before the page opens."""
    import tempfile

    from playwright.sync_api import sync_playwright

    if str(setup.REPO / "tests" / "browser") not in sys.path:
        sys.path.insert(0, str(setup.REPO / "tests" / "browser"))
    import conftest as browser  # tests/browser/conftest.py: chromium args, UI-ready check, settings

    ensure_host()
    with tempfile.TemporaryDirectory() as tmp, ComfyServer(Path(tmp) / "server") as srv:
        if prepare_inputs is not None:
            prepare_inputs(srv.input_dir)
        req = urllib.request.Request(srv.base_url + "/settings", data=json.dumps(browser.SERVER_SETTINGS).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(Path(tmp) / "profile"), executable_path=browser.CHROMIUM, headless=True, args=browser.CHROMIUM_ARGS,
                viewport={"width": viewport[0], "height": viewport[1]})
            ctx.add_init_script(browser.INIT_SCRIPT)
            try:
                page = ctx.new_page()
                page.goto(srv.base_url)
                page.wait_for_function(browser.UI_READY_JS, timeout=90_000)
                yield page
            finally:
                ctx.close()
