"""SkyReels-V4 audio nodes: the 44.1 kHz audio codec (MMAudio mel VAE + BigVGAN-v2 vocoder) as ComfyUI nodes.

AUDIO in / out is ComfyUI's {"waveform": [B, C, T], "sample_rate": int}. Audio LATENTs hold RAW codec latents
(the VAE posterior mean, no normalisation; the V4 DiT normalises them itself):
- an audio-only LATENT (SkyReels V4 Audio Encode): {"samples": [B, 40, T_a], "type": "audio",
  "audio_num_samples": n}, like core audio latents;
- the joint LATENT of the V4 nodes: {"samples": video [B, 16, F, h, w], "audio_samples": [B, 40, T_a],
  "fps": float, "audio_num_samples": n}.
`audio_num_samples` is the waveform length at 44.1 kHz the decoder trims to (1024 samples per latent frame
otherwise), so a clip round-trips to its own length.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..skyreels_core.conditioning.v4 import check_audio
from ..skyreels_core.conditioning.v4 import encode_audio as core_encode_audio
from ..skyreels_core.errors import SkyReelsInputError
from ..skyreels_core.shapes import AUDIO_LATENT_CHANNELS, AUDIO_LATENT_RATE, AUDIO_SAMPLE_RATE, check_audio_seconds
from . import comfy_bridge as bridge
from .types import SkyReelsAudioCodec

AUDIO_RATE, AUDIO_CHANNELS = AUDIO_SAMPLE_RATE, AUDIO_LATENT_CHANNELS
AUDIO_KEY = "audio_samples"  # the audio part of the joint V4 LATENT
LENGTH_KEY = "audio_num_samples"  # decoded length at 44.1 kHz


def _folder_tip(folder: str) -> str:
    return f"Files in ComfyUI/models/{folder} (and extra_model_paths.yaml)."


def audio_latent_of(latent: dict) -> tuple[torch.Tensor, int | None]:
    """(raw codec latent [B, 40, T_a], decoded length or None) from an audio LATENT or a joint V4 LATENT."""
    if not isinstance(latent, dict):
        raise SkyReelsInputError("Expected a LATENT.")
    z = latent.get(AUDIO_KEY)
    if z is None and latent.get("type") == "audio":
        z = latent.get("samples")
    if z is None:
        raise SkyReelsInputError(
            "This LATENT has no SkyReels-V4 audio: use the latent of SkyReels V4 Sampler / Empty AV Latent or of "
            "SkyReels V4 Audio Encode (core Save/Load Latent keep only the video part).")
    if not isinstance(z, torch.Tensor) or z.ndim != 3 or z.shape[1] != AUDIO_CHANNELS or z.shape[2] < 1:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise SkyReelsInputError(f"The audio latent must be [B, {AUDIO_CHANNELS}, frames] (SkyReels-V4 44.1 kHz "
                                 f"codec); got {shape}. Latents of other audio VAEs do not fit.")
    n = latent.get(LENGTH_KEY)
    return z, None if n is None else int(n)


def decode_audio(codec, z: torch.Tensor, num_samples: int | None) -> torch.Tensor:
    """Raw codec latent [B, 40, T_a] -> waveform [B, 1, num_samples or 1024 T_a] at 44.1 kHz (float32, CPU)."""
    check_audio_seconds(max(z.shape[2] / AUDIO_LATENT_RATE, (num_samples or 0) / AUDIO_RATE), "The audio to decode")
    device = bridge.load_for_use(codec)
    with torch.no_grad():
        return codec.runner.decode(z.float().to(device), num_samples=num_samples).float().cpu()


def encode_audio(codec, audio: dict) -> torch.Tensor:
    """AUDIO -> raw codec latent [B, 40, ceil(T * 44100 / rate / 1024)] (float32, CPU)."""
    check_audio(audio)  # before the codec is loaded
    bridge.load_for_use(codec)
    with torch.no_grad():
        return core_encode_audio(codec.runner, audio)


def audio_value(waveform: torch.Tensor) -> dict:
    """Waveform [B, 1, S] at 44.1 kHz -> ComfyUI AUDIO."""
    return {"waveform": waveform, "sample_rate": AUDIO_RATE}


class SkyReelsV4AudioCodecLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4AudioCodecLoader",
            display_name="SkyReels V4 Audio Codec Loader",
            category="SkyReels/V4",
            description="Loads the SkyReels-V4 audio codec: the MMAudio 44.1 kHz mel VAE (40-channel latents, "
            "43.07 per second) and the BigVGAN-v2 44 kHz vocoder that turns its mels into a waveform. Runs in "
            "float32.",
            inputs=[
                io.Combo.Input("vae_name", options=bridge.list_models("vae"),
                               tooltip="The MMAudio audio VAE (v1-44.pth or a safetensors copy). " + _folder_tip("vae")),
                io.Combo.Input("vocoder_name", options=bridge.list_models("vae"),
                               tooltip="The BigVGAN-v2 generator (bigvgan_generator.pt of "
                               "nvidia/bigvgan_v2_44khz_128band_512x, or a safetensors copy). " + _folder_tip("vae")),
            ],
            outputs=[SkyReelsAudioCodec.Output(display_name="audio_codec")],
        )

    @classmethod
    def execute(cls, vae_name: str, vocoder_name: str) -> io.NodeOutput:
        from ..skyreels_core.models.audio_codec import load_audio_codec

        codec = load_audio_codec(bridge.model_path("vae", vae_name, "vae_name"),
                                 bridge.model_path("vae", vocoder_name, "vocoder_name"),
                                 device="cpu", dtype=torch.float32)
        return io.NodeOutput(bridge.manage(codec, "vae", f"{vae_name} + {vocoder_name}"))


class SkyReelsV4AudioEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4AudioEncode",
            display_name="SkyReels V4 Audio Encode",
            category="SkyReels/V4",
            description="Encodes audio to SkyReels-V4 audio latents [B, 40, T] (mono, resampled to 44.1 kHz, "
            "1024 samples per latent frame). The LATENT has type 'audio' and remembers the clip length.",
            inputs=[
                SkyReelsAudioCodec.Input("audio_codec", tooltip="From SkyReels V4 Audio Codec Loader."),
                io.Audio.Input("audio", tooltip="Any sample rate and channel count; mixed down to mono."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, audio_codec, audio: dict) -> io.NodeOutput:
        z = encode_audio(audio_codec, audio)
        length = round(audio["waveform"].shape[-1] * AUDIO_RATE / int(audio["sample_rate"]))
        return io.NodeOutput({"samples": z, "type": "audio", LENGTH_KEY: length})


class SkyReelsV4AudioDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4AudioDecode",
            display_name="SkyReels V4 Audio Decode",
            category="SkyReels/V4",
            description="Decodes SkyReels-V4 audio latents to a 44.1 kHz mono waveform: an audio LATENT (SkyReels "
            "V4 Audio Encode) or the audio part of a joint latent (SkyReels V4 Sampler).",
            inputs=[
                SkyReelsAudioCodec.Input("audio_codec", tooltip="From SkyReels V4 Audio Codec Loader."),
                io.Latent.Input("latent", tooltip="An audio latent, or a joint video+audio latent (its audio is "
                                "decoded)."),
            ],
            outputs=[io.Audio.Output(display_name="audio")],
        )

    @classmethod
    def execute(cls, audio_codec, latent: dict) -> io.NodeOutput:
        z, length = audio_latent_of(latent)
        return io.NodeOutput(audio_value(decode_audio(audio_codec, z, length)))
