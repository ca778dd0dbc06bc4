"""Train the toy SkyReels-V2 model family (demonstration models) on procedural clips, on a CPU, from a seed.

    python scripts/train_toy.py --seed 0 [--out toy_models] [--stages text,vae,dit,sample] [--quick]

(the shipped files: exactly this command with the defaults; on the development machine's shared 2-core CPU it took
about 8 min for the VAE and 6 min for the DiT stage; several times longer while other jobs shared the CPU)

Writes, in ComfyUI `models/` sub-folders under --out (default: the repo's `toy_models/`):
  text_encoders/umt5_xxl_toy.safetensors    the frozen random tiny umT5 of the test host (same builder, same bytes),
                                            with its sentencepiece tokenizer inside (ComfyUI layout)
  vae/wan_2.1_vae_toy.safetensors           Wan2.1 VAE (dim 8, 1 residual block per stage, z_dim 16), trained as an
                                            autoencoder; its latent statistics folded into conv1 / conv2 (below)
  diffusion_models/skyreels_v2_toy_t2v_df.safetensors   Wan2.1 / SkyReels-V2 DiT (dim 128 = 1 head of 128, 3 layers,
                                            ffn 512, text_dim 32): text-to-video and diffusion forcing in one model
and, under artifacts/: toy_loss_curves.png, toy_train_log.json (per-stage losses, times, settings), and
toy_sample_v2.png (stage `sample`: a real clip, its VAE reconstruction, and 4 held-out prompts sampled by the pack).

Stages (each one reuses the previous one's file, so `--stages dit` retrains only the DiT):
  text    the tiny umT5 file; caption embeddings are computed with the pack's own `load_text_encoder`.
  vae     autoencoder on random 32x32 crops of 5- and 9-frame clips (the Wan VAE is fully convolutional, and 9 frames
          exercise its causal cache across 3 time chunks): L1 + L2, object pixels weighted x5, KL 3e-4 on the
          (mu, log_var) the real encoder outputs. Then the latent-normalisation fold: the pack normalises every Wan
          latent with the released VAE's fixed per-channel LATENT_MEAN / LATENT_STD (in the code, not the file), so
          the toy VAE's quant conv `conv1` is rescaled to output LATENT_MEAN + LATENT_STD * (mu - m) / s (m, s: the
          toy's measured per-channel mean / std) and `conv2` gets the inverse. The file keeps the real key layout,
          loads unchanged, and its normalised latents have zero mean and unit std per channel on the data.
  vae_video  (optional, not in the default stages and not used for the shipped files) a second VAE phase on
          video crops only; at ~10 s per step on the shared CPU it could not be evaluated in time.
  dit     first its training set: VAE latents (normalised, as `WanVAE.encode`) of 17-frame 64x64 clips; then flow
          matching exactly as the pack samples: x_sigma = (1 - sigma) x0 + sigma eps, target eps - x0, model time
          t = floor(1000 sigma). Half the clips share one sigma over their frames (T2V); the rest get per-frame sigmas
          (diffusion forcing): a clean-ish prefix (sigma <= 0.05, what DF shows carried frames at) with the rest at one
          level, or sorted independent levels (asynchronous DF). 10 % of captions are dropped for CFG: replaced by the
          empty prompt or the workflows' default negative prompt (both are what a user's negative gives). The text
          cross-attention trains on a compact context that is exactly equivalent to the pack's 512-row one
          (`CompactTextAttention`, checked at start), 10x cheaper on a CPU.
  sample  held-out prompts through the pack's loaders and `sample_video`, decoded, into artifacts/toy_sample_v2.png.

Everything is seeded: the same --seed gives the same files on the same torch build (CPU, 2 threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import make_tiny_checkpoints as tiny  # noqa: E402
from scripts.toy import data  # noqa: E402
from skyreels_core.checkpoints.metadata import config_metadata  # noqa: E402
from skyreels_core.encoders.umt5 import UMT5Config, load_text_encoder  # noqa: E402
from skyreels_core.models.video_vae import LATENT_MEAN, LATENT_STD, VAE3DConfig, WanVAE, load_video_vae  # noqa: E402
from skyreels_core.models.wan_dit import WanDiTConfig, WanModel, WanT2VCrossAttention  # noqa: E402
from skyreels_core.models.wan_dit_loader import WAN_CONFIG_KEY  # noqa: E402
from skyreels_core.nn.attention import attention  # noqa: E402

log = logging.getLogger("train_toy")

TEXT_FILE = "text_encoders/umt5_xxl_toy.safetensors"
VAE_FILE = "vae/wan_2.1_vae_toy.safetensors"
DIT_FILE = "diffusion_models/skyreels_v2_toy_t2v_df.safetensors"
TOY_META_KEY = "skyreels.toy.training"
EMA_DECAY = 0.99  # the DiT file holds this exponential moving average of the weights

VAE_CONFIG = VAE3DConfig(dim=8, num_res_blocks=1)
DIT_CONFIG = WanDiTConfig(model_type="t2v", in_dim=16, dim=128, ffn_dim=512, num_heads=1, num_layers=3,
                          text_dim=UMT5Config.TINY.dim, out_dim=16)
# The negative prompt of the shipped V2 workflows (reference default): trained as an unconditional caption too.
DEFAULT_NEGATIVE = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, overall "
    "gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands, "
    "poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy background, three "
    "legs, many people in the background, walking backwards"
)


@dataclasses.dataclass
class Settings:
    seed: int = 0
    vae_steps: int = 1200
    vae_batch: int = 4
    vae_lr: float = 2e-3
    vae_video_steps: int = 60
    vae_video_lr: float = 1e-3
    encode_clips: int = 400
    dit_steps: int = 3000
    dit_batch: int = 16
    dit_lr: float = 8e-4
    cfg_dropout: float = 0.1

    @classmethod
    def quick(cls, seed: int) -> Settings:
        """A smoke run (a minute): same code paths, useless weights."""
        return cls(seed=seed, vae_steps=3, vae_batch=2, vae_video_steps=2, encode_clips=8, dit_steps=5, dit_batch=4)


def _cosine_lr(step: int, total: int, peak: float, warmup: int = 20) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1))))


def _write(out: Path, rel: str, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    files = tiny._render(tiny.TinyFile(rel, lambda: (state, metadata)))
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_bytes(files[rel])
    return out / rel


# -- text ---------------------------------------------------------------------------------------------------------


def stage_text(out: Path) -> Path:
    """The test host's tiny umT5 + tokenizer (comfy layout), under the toy name."""
    files = tiny._render(tiny.TinyFile(TEXT_FILE, tiny._umt5("comfy")))
    (out / TEXT_FILE).parent.mkdir(parents=True, exist_ok=True)
    (out / TEXT_FILE).write_bytes(files[TEXT_FILE])
    return out / TEXT_FILE


def caption_contexts(out: Path) -> tuple[dict[str, int], torch.Tensor]:
    """({caption: row}, contexts [N, 512, 32]) for every caption, "" and DEFAULT_NEGATIVE, through the pack's loader."""
    encoder = load_text_encoder(out / TEXT_FILE)
    captions = [c.caption for c in data.all_combos()] + ["", DEFAULT_NEGATIVE]
    rows = {cap: i for i, cap in enumerate(captions)}
    contexts = torch.cat([encoder.encode(captions[i : i + 32]).float() for i in range(0, len(captions), 32)])
    return rows, contexts


# -- VAE ----------------------------------------------------------------------------------------------------------


def _object_weight(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss weight [B, 1, F, H, W]: 5 on the object, 1 on the background (the object is ~10 % of a frame)."""
    median = x.flatten(3).median(dim=3).values[..., None, None]
    return 1.0 + 4.0 * ((x - median).abs().sum(1, keepdim=True) > 0.1).float()


def _vae_batch(rng: random.Random, step: int, batch: int, train: tuple[data.Combo, ...],
               crop: int | None = None) -> torch.Tensor:
    """Every 4th step `batch` 5- or 9-frame clips (the temporal layers and the causal cache); the other steps
    3 x `batch` single frames (the first time chunk: all spatial weights; 5x cheaper per clip on a CPU).
    Random 32x32 windows (the Wan VAE is fully convolutional); with `crop`, crop x crop windows around the object's
    middle position (+-crop/4), so that it is in view of a small window."""
    frames = rng.choice((5, 5, 9)) if step % 4 == 3 else 1
    batch = batch if frames > 1 else 3 * batch
    clips = [data.render_clip(rng.choice(train), rng.getrandbits(32), frames) for _ in range(batch)]
    crops = []
    for clip in clips:
        if crop is None:  # phase 1
            top, left = rng.randrange(0, 33), rng.randrange(0, 33)
            crops.append(clip.video[:, :, top : top + 32, left : left + 32])
            continue
        cx, cy = (float(v) for v in clip.centres[frames // 2])
        jitter = crop // 4
        left = min(max(int(cx) - crop // 2 + rng.randint(-jitter, jitter), 0), data.SIZE - crop)
        top = min(max(int(cy) - crop // 2 + rng.randint(-jitter, jitter), 0), data.SIZE - crop)
        crops.append(clip.video[:, :, top : top + crop, left : left + crop])
    return torch.stack(crops)


def vae_loss(vae: WanVAE, x: torch.Tensor, generator: torch.Generator, kl_weight: float = 3e-4):
    moments = vae.encode_moments(x)
    mu, log_var = moments.chunk(2, dim=1)
    log_var = log_var.clamp(-20.0, 10.0)
    z = mu + torch.exp(0.5 * log_var) * torch.randn(mu.shape, generator=generator)
    rec = vae.decode_raw(z)
    weight = _object_weight(x)
    recon = (weight * ((rec - x).abs() + (rec - x) ** 2)).mean()
    kl = 0.5 * (mu**2 + log_var.exp() - 1.0 - log_var).mean()
    return recon + kl_weight * kl, recon.detach(), kl.detach()


def stage_vae(out: Path, s: Settings, history: dict) -> Path:
    torch.manual_seed(s.seed)
    vae = WanVAE(VAE_CONFIG)
    with torch.no_grad():  # start with a nearly deterministic posterior (std 0.05): with log_var 0 the sampled
        vae.conv1.bias[VAE_CONFIG.z_dim :] = -6.0  # noise (std 1) drowns the small initial mu and learning crawls
    opt = torch.optim.Adam(vae.parameters(), lr=s.vae_lr)
    rng, gen = random.Random(s.seed * 7 + 1), torch.Generator().manual_seed(s.seed * 7 + 2)
    train = data.split_combos()[0]
    losses, start = [], time.time()
    for step in range(s.vae_steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, s.vae_steps, s.vae_lr)
        loss, recon, kl = vae_loss(vae, _vae_batch(rng, step, s.vae_batch, train), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(float(recon))
        if step % 50 == 0 or step == s.vae_steps - 1:
            log.info("vae step %d/%d recon %.4f kl %.3f (%.0f s)", step, s.vae_steps, recon, kl, time.time() - start)
    vae.eval().requires_grad_(False)
    m, sd = _latent_stats(vae, s.seed)
    state = fold_latent_stats({k: v.detach().clone() for k, v in vae.state_dict().items()}, m, sd)
    history["vae"] = {"recon_loss": losses, "seconds": time.time() - start, "latent_mean": m.tolist(),
                      "latent_std": sd.tolist(), "params": sum(p.numel() for p in vae.parameters())}
    meta = {TOY_META_KEY: json.dumps({"seed": s.seed, "steps": s.vae_steps, "final_recon": _tail(losses)})}
    return _write(out, VAE_FILE, state, meta)


@torch.no_grad()
def _latent_stats(vae: WanVAE, seed: int, clips: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean / std [16] of the raw posterior mean on full 17-frame clips."""
    videos = torch.stack([c.video for c in data.sample_clips(clips, seed + 1000)])
    mu = torch.cat([vae.encode_raw(videos[i : i + 8]) for i in range(0, clips, 8)])
    return mu.mean((0, 2, 3, 4)), mu.std((0, 2, 3, 4)).clamp_min(1e-3)


def fold_latent_stats(state: dict[str, torch.Tensor], mean: torch.Tensor, std: torch.Tensor) -> dict:
    """Rescale conv1 (mu, log_var rows) and conv2 so the pack's fixed normalisation maps this VAE's latents to zero
    mean, unit std: new mu = LATENT_MEAN + LATENT_STD * (mu - mean) / std, decoded exactly as before."""
    z = mean.numel()
    a = torch.tensor(LATENT_STD) / std  # new mu = a * mu + c
    c = torch.tensor(LATENT_MEAN) - a * mean
    w1, b1 = state["conv1.weight"].clone(), state["conv1.bias"].clone()
    w1[:z] *= a.view(-1, 1, 1, 1, 1)
    b1[:z] = a * b1[:z] + c
    b1[z:] += 2.0 * a.log()  # the variance scales by a^2
    w2, b2 = state["conv2.weight"], state["conv2.bias"]
    flat = w2.view(z, z)
    state.update({"conv1.weight": w1, "conv1.bias": b1, "conv2.weight": (flat / a[None]).view_as(w2).contiguous(),
                  "conv2.bias": b2 - flat @ (c / a)})
    return state


def stage_vae_video(out: Path, s: Settings, history: dict) -> Path:
    """Phase 2 of the VAE: continue from the phase-1 file on 16x16 crops of video clips only (the later time chunks,
    whose temporal layers phase 1 trained on a quarter of its steps; conv3d backward is slow on a CPU), then measure and fold the latent statistics again
    (the fold composes: it is an affine map of whatever conv1 outputs)."""
    vae = load_video_vae(out / VAE_FILE).train().requires_grad_(True)
    opt = torch.optim.Adam(vae.parameters(), lr=s.vae_video_lr)
    rng, gen = random.Random(s.seed * 7 + 6), torch.Generator().manual_seed(s.seed * 7 + 7)
    train = data.split_combos()[0]
    losses, start = [], time.time()
    for step in range(s.vae_video_steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, s.vae_video_steps, s.vae_video_lr, warmup=10)
        loss, recon, _ = vae_loss(vae, _vae_batch(rng, 3, s.vae_batch, train, crop=16), gen, kl_weight=0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(float(recon))
        if step % 10 == 0 or step == s.vae_video_steps - 1:
            log.info("vae video step %d/%d recon %.4f (%.0f s)", step, s.vae_video_steps, _tail(losses, 10),
                     time.time() - start)
    vae.eval().requires_grad_(False)
    m, sd = _latent_stats(vae, s.seed)
    state = fold_latent_stats({k: v.detach().clone() for k, v in vae.state_dict().items()}, m, sd)
    history["vae_video"] = {"recon_loss": losses, "seconds": time.time() - start}
    meta = {TOY_META_KEY: json.dumps({"seed": s.seed, "steps": s.vae_steps, "video_steps": s.vae_video_steps,
                                      "final_recon": _tail(losses)})}
    return _write(out, VAE_FILE, state, meta)


# -- DiT ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def stage_encode(out: Path, s: Settings, history: dict) -> dict:
    """Normalised latents [N, 16, 5, 8, 8] of N training clips and their caption strings."""
    vae = load_video_vae(out / VAE_FILE)
    clips = data.sample_clips(s.encode_clips, s.seed * 7 + 3)
    start, latents = time.time(), []
    for i in range(0, len(clips), 8):
        latents.append(vae.encode(torch.stack([c.video for c in clips[i : i + 8]])))
        if i % 160 == 0:
            log.info("encoded %d/%d clips (%.0f s)", i, len(clips), time.time() - start)
    latents = torch.cat(latents)
    history["encode"] = {"clips": len(clips), "seconds": time.time() - start,
                         "latent_mean": float(latents.mean()), "latent_std": float(latents.std())}
    return {"latents": latents, "captions": [c.caption for c in clips]}


class CompactTextAttention(WanT2VCrossAttention):
    """Training only (same weights and keys): the text cross-attention over a compact context.

    The pack's context is [real rows | 512 - n zero rows], and every zero row gives the same key and value, so
    attending to P of them with an extra logit log((512 - n) / P) equals attending to all 512 - n. `pad_bias`
    [B, 1, 1, L] holds those logits (0 on real rows); the context shrinks from 512 rows to the longest caption.
    """

    pad_bias: torch.Tensor | None = None

    def forward(self, x, context, context_img=None, backend: str = "auto"):
        q, k, v = self.qkv(x, context)
        return self.o(attention(q, k, v, mask=self.pad_bias, backend="sdpa").flatten(2))


def compact_contexts(contexts: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """contexts [N, 512, D] (zero rows after each caption) -> (context [B, L, D], pad_bias [B, 1, 1, L]) for `rows`,
    L = the longest caption in the batch + 1."""
    full = contexts[rows]
    lengths = (full.abs().sum(-1) > 0).sum(-1)  # real rows come first (umT5 zeroes the padded ones)
    width = int(lengths.max()) + 1
    pads = (width - lengths).clamp_min(1).float()
    real = torch.arange(width)[None] < lengths[:, None]
    bias = torch.where(real, 0.0, torch.log((full.shape[1] - lengths).float() / pads)[:, None])
    return full[:, :width], bias[:, None, None, :]


def use_compact_text_attention(model: WanModel, enable: bool = True) -> None:
    for block in model.blocks:
        block.cross_attn.__class__ = CompactTextAttention if enable else WanT2VCrossAttention


def _sigmas(rng: torch.Generator, batch: int, frames: int) -> torch.Tensor:
    """[B, F] noise levels: per clip one of shared (1/2), clean prefix + shared (1/4), sorted per-frame (1/4)."""
    u = torch.rand(batch, 1, generator=rng)
    shared = 3.0 * u / (1 + 2.0 * u)  # flow shift 3: more weight on high noise, as the samplers' shifted grids
    sigma = shared.expand(batch, frames).clone()
    mode = torch.randint(0, 4, (batch,), generator=rng)
    for b in range(batch):
        if mode[b] == 2:  # diffusion forcing with carried frames: the first k latents are (almost) clean
            k = int(torch.randint(1, frames - 1, (1,), generator=rng))
            sigma[b, :k] = 0.05 * torch.rand(k, generator=rng)
        elif mode[b] == 3:  # asynchronous: noise grows along time
            sigma[b] = torch.rand(frames, generator=rng).sort().values
    return sigma.clamp(0.0, 0.999)


def dit_loss(model: WanModel, x0: torch.Tensor, context: torch.Tensor, rng: torch.Generator,
             pad_bias: torch.Tensor | None = None):
    """Flow-matching MSE of one batch; pad_bias: see CompactTextAttention (None: the full context)."""
    for block in model.blocks:
        if isinstance(block.cross_attn, CompactTextAttention):
            block.cross_attn.pad_bias = pad_bias
    b, _, frames = x0.shape[:3]
    sigma = _sigmas(rng, b, frames)
    t = (sigma * 1000).floor()  # the samplers' int64(1000 sigma)
    noise = torch.randn(x0.shape, generator=rng)
    s5 = sigma.view(b, 1, frames, 1, 1)
    x = (1 - s5) * x0 + s5 * noise
    v = model(x, t, context)
    return F.mse_loss(v, noise - x0)


def stage_dit(out: Path, s: Settings, history: dict, encoded: dict) -> Path:
    rows, contexts = caption_contexts(out)
    torch.manual_seed(s.seed * 7 + 4)
    model = WanModel(DIT_CONFIG)
    _check_compact(model, contexts)
    use_compact_text_attention(model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=s.dit_lr, weight_decay=0.01, betas=(0.9, 0.99))
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = torch.Generator().manual_seed(s.seed * 7 + 5)
    latents, caps = encoded["latents"], torch.tensor([rows[c] for c in encoded["captions"]])
    uncond = torch.tensor([rows[""], rows[DEFAULT_NEGATIVE]])
    losses, start = [], time.time()
    for step in range(s.dit_steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, s.dit_steps, s.dit_lr, warmup=50)
        idx = torch.randint(0, latents.shape[0], (s.dit_batch,), generator=rng)
        cap = caps[idx].clone()
        drop = torch.rand(s.dit_batch, generator=rng) < s.cfg_dropout
        cap[drop] = uncond[torch.randint(0, 2, (int(drop.sum()),), generator=rng)]
        context, pad_bias = compact_contexts(contexts, cap)
        loss = dit_loss(model, latents[idx], context, rng, pad_bias)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].lerp_(v, 1 - decay)
        losses.append(float(loss.detach()))
        if step % 100 == 0 or step == s.dit_steps - 1:
            log.info("dit step %d/%d loss %.4f (%.0f s)", step, s.dit_steps, _tail(losses, 50), time.time() - start)
    history["dit"] = {"loss": losses, "seconds": time.time() - start,
                      "params": sum(p.numel() for p in model.parameters())}
    meta = config_metadata(DIT_CONFIG, WAN_CONFIG_KEY)
    meta[TOY_META_KEY] = json.dumps({"seed": s.seed, "steps": s.dit_steps, "final_loss": _tail(losses), "ema": EMA_DECAY})
    state = {k: v.contiguous() for k, v in ema.items()}
    state["model_type.SkyReels-V2-T2V-toy"] = torch.zeros(1)  # SkyReels' marker key (the loader accepts it)
    return _write(out, DIT_FILE, state, meta)


@torch.no_grad()
def _check_compact(model: WanModel, contexts: torch.Tensor) -> None:
    """The compact text attention must give the pack's full-context output (else training would learn another
    model than the one the pack runs)."""
    x, t, rows = torch.randn(2, 16, 2, 4, 4), torch.tensor([500.0, 20.0]), torch.tensor([0, contexts.shape[0] - 1])
    reference = model(x, t, contexts[rows])
    use_compact_text_attention(model)
    context, bias = compact_contexts(contexts, rows)
    for block in model.blocks:
        block.cross_attn.pad_bias = bias
    compact = model(x, t, context)
    use_compact_text_attention(model, False)
    error = float((compact - reference).abs().max())
    if error > 1e-4:
        raise RuntimeError(f"compact text attention differs from the full context by {error:.2e}")
    log.info("compact text attention matches the 512-row context (max diff %.1e)", error)


# -- report -------------------------------------------------------------------------------------------------------


def _tail(values: list[float], n: int = 20) -> float:
    tail = values[-n:]
    return sum(tail) / max(len(tail), 1)


def _smooth(values: list[float], n: int) -> list[float]:
    return [sum(values[max(0, i - n + 1) : i + 1]) / len(values[max(0, i - n + 1) : i + 1]) for i in range(len(values))]


def plot_losses(history: dict, path: Path) -> None:
    """Loss curves (log10 y, smoothed) of every trained model, one panel each, as a PNG (PIL only)."""
    from PIL import Image, ImageDraw

    panels = [(n, k) for n, k in (("vae", "recon_loss"), ("vae_video", "recon_loss"), ("dit", "loss")) if n in history]
    width, height, pad = 420, 260, 40
    image = Image.new("RGB", (width * max(len(panels), 1), height), "white")
    draw = ImageDraw.Draw(image)
    for i, (name, key) in enumerate(panels):
        values = _smooth(history[name][key], max(1, len(history[name][key]) // 50))
        logs = [math.log10(max(v, 1e-8)) for v in values]
        lo, hi = min(logs), max(logs)
        hi = hi if hi > lo else lo + 1
        x0, x1, y0, y1 = i * width + pad, (i + 1) * width - 10, 20, height - pad
        draw.rectangle([x0, y0, x1, y1], outline="black")
        points = [(x0 + (x1 - x0) * j / max(len(logs) - 1, 1), y1 - (y1 - y0) * (v - lo) / (hi - lo))
                  for j, v in enumerate(logs)]
        draw.line(points, fill=(200, 40, 40), width=2)
        draw.text((x0 + 4, 4), f"{name} {key} (log10, {len(values)} steps)", fill="black")
        draw.text((x0 - 36, y0), f"{10 ** hi:.3g}", fill="black")
        draw.text((x0 - 36, y1 - 10), f"{10 ** lo:.3g}", fill="black")
        draw.text((x1 - 60, y1 + 6), f"step {len(values)}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def save_strip(videos: list[torch.Tensor], path: Path, frames: tuple[int, ...] = (0, 4, 8, 12, 16)) -> None:
    """One row per video [3, F, H, W] in [-1, 1], the given frames side by side, 2x nearest upscale, as a PNG."""
    from PIL import Image

    rows = [torch.cat([v[:, f] for f in frames if f < v.shape[1]], dim=2) for v in videos]
    grid = torch.cat(rows, dim=1)  # [3, rows * H, frames * W]
    pixels = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.resize((image.width * 2, image.height * 2), Image.NEAREST).save(path)


@torch.no_grad()
def stage_sample(out: Path, artifacts: Path, seed: int) -> Path:
    """Decode held-out prompts with the shipped files through the pack's loaders and `sample_video` (12 UniPC steps,
    shift 3, CFG 5, negative ""); top rows: the real clips of the same combinations for comparison."""
    from skyreels_core.models.wan_dit_loader import load_dit
    from skyreels_core.pipelines.video import sample_video

    text, vae, dit = load_text_encoder(out / TEXT_FILE), load_video_vae(out / VAE_FILE), load_dit(out / DIT_FILE)
    combos = data.HELD_OUT[:4]
    videos = [data.render_clip(c, seed).video for c in combos[:1]]
    videos.append(vae.decode(vae.encode(videos[0][None]))[0])  # VAE reconstruction
    negative = text.encode([""]).float()
    for combo in combos:
        latent = sample_video(dit, torch.zeros(1, 16, 5, 8, 8), positive=text.encode([combo.caption]).float(),
                              negative=negative, steps=12, cfg=5.0, shift=3.0, seed=seed)
        videos.append(vae.decode(latent)[0])
        log.info("sample %r: %s", combo.caption, data.centroid_velocity(data.measure_object(videos[-1])).tolist())
    path = artifacts / "toy_sample_v2.png"
    save_strip(videos, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "toy_models")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--stages", default="text,vae,dit,sample",
                        help="comma-separated subset of text,vae,vae_video,dit,sample (run in this order; vae_video "
                        "is an optional second VAE phase, not used for the shipped files)")
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run (useless weights)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vae-steps", type=int, default=None, help="override the VAE's optimiser steps")
    parser.add_argument("--dit-steps", type=int, default=None, help="override the DiT's optimiser steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    s = Settings.quick(args.seed) if args.quick else Settings(seed=args.seed)
    s.vae_steps = args.vae_steps or s.vae_steps
    s.dit_steps = args.dit_steps or s.dit_steps
    stages = set(args.stages.split(","))
    history_file = args.artifacts / "toy_train_log.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else {}
    history["settings"] = dataclasses.asdict(s)
    total = time.time()
    if "text" in stages:
        log.info("wrote %s", stage_text(args.out))
    if "vae" in stages:
        log.info("wrote %s", stage_vae(args.out, s, history))
    if "vae_video" in stages:
        log.info("wrote %s", stage_vae_video(args.out, s, history))
    if "dit" in stages:
        encoded = stage_encode(args.out, s, history)
        log.info("wrote %s", stage_dit(args.out, s, history, encoded))
    if "sample" in stages:
        log.info("wrote %s", stage_sample(args.out, args.artifacts, args.seed))
    history["total_seconds"] = time.time() - total
    args.artifacts.mkdir(parents=True, exist_ok=True)
    history_file.write_text(json.dumps(history) + "\n")
    plot_losses(history, args.artifacts / "toy_loss_curves.png")
    log.info("done in %.0f s; loss curves in %s", time.time() - total, args.artifacts / "toy_loss_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
