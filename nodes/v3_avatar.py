"""SkyReels-V3 talking avatar nodes: the speech encoder loader (chinese-wav2vec2-base) and the avatar sampler, over
skyreels_core.pipelines.avatar (research/skyreels_v3.md §3.4, §8, §9).

The A2V DiT is a Wan2.1-I2V model with a speech adapter: it loads with SkyReels Model Loader (the release folder
"SkyReels-V3-A2V-19B/" or any shard of it); the portrait's CLIP tokens come from SkyReels CLIP Vision Loader, the
prompts from SkyReels Text Encode. The node checks every input (audio length, model kind, size) before it encodes
the speech or loads a network, then runs the key-frame pass and the sliding windows with one progress bar
("window k/n · step ..."), a latent preview and a Cancel check every step.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..skyreels_core.encoders import wav2vec2
from ..skyreels_core.errors import SkyReelsInputError
from ..skyreels_core.pipelines import avatar
from . import comfy_bridge as bridge
from .types import SkyReelsAudioEncoder, SkyReelsCLIPVision, SkyReelsModel, SkyReelsTextEmbeds, SkyReelsVAE

CATEGORY = "SkyReels/V3"
AUDIO_FOLDER = "audio_encoders"
SILENCE = 1e-4  # peak amplitude below -80 dBFS: nothing for the lips to follow


def list_audio_encoders() -> list[str]:
    """Files in models/audio_encoders, then the Hugging Face folders there (config.json inside)."""
    return [*bridge.list_models(AUDIO_FOLDER), *bridge.list_model_dirs(AUDIO_FOLDER)]


class SkyReelsV3AudioEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV3AudioEncoderLoader",
            display_name="SkyReels V3 Audio Encoder Loader",
            category=CATEGORY,
            description="Loads the speech encoder of SkyReels-V3 talking avatar: chinese-wav2vec2-base (the "
            "chinese-wav2vec2-base/ folder of Skywork/SkyReels-V3-A2V-19B, or a single .safetensors with the same "
            "keys) from models/audio_encoders.",
            inputs=[
                io.Combo.Input("audio_encoder_name", options=list_audio_encoders(),
                               tooltip="The wav2vec2 folder (config.json + pytorch_model.bin or model.safetensors) "
                               "or file in ComfyUI/models/audio_encoders (and extra_model_paths.yaml)."),
            ],
            outputs=[SkyReelsAudioEncoder.Output(display_name="audio_encoder")],
        )

    @classmethod
    def execute(cls, audio_encoder_name: str) -> io.NodeOutput:
        bridge.check_choice("audio_encoder_name", audio_encoder_name, list_audio_encoders())
        if audio_encoder_name in bridge.list_model_dirs(AUDIO_FOLDER):
            path = bridge.model_dir_path(AUDIO_FOLDER, audio_encoder_name, "audio_encoder_name")
        else:
            path = bridge.model_path(AUDIO_FOLDER, audio_encoder_name, "audio_encoder_name")
        # float32, as the reference runs it: the features feed a 46080-wide projection, cheap next to the DiT
        encoder = wav2vec2.load_wav2vec2(path, dtype=torch.float32, device="cpu")
        return io.NodeOutput(bridge.manage(encoder, "text_encoder", audio_encoder_name))


def _speech(audio) -> tuple[torch.Tensor, int]:
    """ComfyUI AUDIO {"waveform": [B, C, S], "sample_rate"} -> ([C, S] of the first item, rate), with its length
    checked against the encoder's limits before anything is encoded."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise SkyReelsInputError("audio must be a ComfyUI AUDIO (Load Audio, or Get Video Components' audio).")
    waveform, rate = audio["waveform"], int(audio["sample_rate"])
    if not isinstance(waveform, torch.Tensor) or waveform.ndim != 3 or waveform.shape[-1] == 0 or rate <= 0:
        raise SkyReelsInputError("audio has no samples; load a speech or singing track (wav, mp3, flac...).")
    seconds = waveform.shape[-1] / rate
    if not wav2vec2.MIN_SECONDS <= seconds <= wav2vec2.MAX_SECONDS:
        raise SkyReelsInputError(
            f"audio is {seconds:.2f} s; the talking avatar takes {wav2vec2.MIN_SECONDS} to {wav2vec2.MAX_SECONDS:g} s "
            "of speech (the video follows its length at 25 fps). Trim or split the track.")
    if float(waveform[0].abs().max()) < SILENCE:
        raise SkyReelsInputError(
            f"audio is silent ({seconds:.2f} s below -80 dBFS): the avatar's lips follow the voice, so give a track "
            "with speech or singing in it.")
    return waveform[0], rate


class SkyReelsV3TalkingAvatar(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV3TalkingAvatar",
            display_name="SkyReels V3 Talking Avatar",
            category=CATEGORY,
            description="SkyReels-V3 talking avatar: a portrait and a voice track (speech or singing, 0.4-200 s) "
            "-> a lip-synced video as long as the audio, at 25 fps. Minute-level: a key-frame clip first, then "
            "overlapping 81-frame windows that each continue the last 5 frames toward a key frame. Outputs the "
            "frames and fps 25: connect both, and the same audio, to Create Video.",
            inputs=[
                SkyReelsModel.Input("model", tooltip="From SkyReels Model Loader: SkyReels-V3-A2V-19B (the release "
                                    "folder, or any shard). Other models are refused: it needs the speech adapter."),
                SkyReelsTextEmbeds.Input("text_embeds", tooltip="The prompt, from SkyReels Text Encode: it drives "
                                         "the key-frame clip (the look and the action). The negative prompt is "
                                         "used only when guidance is not 1."),
                SkyReelsVAE.Input("vae", tooltip="From SkyReels VAE Loader: the Wan2.1 VAE (wan_2.1_vae.safetensors "
                                  "or Wan2.1_VAE.pth from the A2V repo)."),
                SkyReelsCLIPVision.Input("clip_vision", tooltip="From SkyReels CLIP Vision Loader: ViT-H/14 "
                                         "(clip_vision_h.safetensors or the repo's open-clip .pth)."),
                SkyReelsAudioEncoder.Input("audio_encoder", tooltip="From SkyReels V3 Audio Encoder Loader."),
                io.Image.Input("portrait", tooltip="The person (the first image of a batch); centre-cropped to the "
                               "size bucket nearest its aspect ratio."),
                io.Audio.Input("audio", tooltip="The voice track (Load Audio). Its length sets the video's: "
                               "25 frames per second, 200 s at most."),
                io.Combo.Input("resolution", options=list(avatar.AVATAR_BUCKETS), default="720P",
                               tooltip="Size class: the reference's bucket nearest the portrait's aspect (720P: "
                               "1280x720 for 16:9, 960x960 square; 480P: 832x480 for 16:9). 540P is not offered: "
                               "the reference refuses it. Ignored when width and height are set."),
                io.Int.Input("width", default=0, min=0, max=4096, step=16,
                             tooltip="0: from the resolution bucket. Otherwise the width in pixels (set height too)."),
                io.Int.Input("height", default=0, min=0, max=4096, step=16,
                             tooltip="0: from the resolution bucket. Otherwise the height in pixels (set width too)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed (each window draws from its own seed + window number)."),
                io.Int.Input("steps", default=avatar.STEPS, min=1, max=100,
                             tooltip="Steps per window. 4 is the reference (the A2V weights are step-distilled)."),
                io.Float.Input("shift", default=avatar.SHIFT, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Flow timestep shift. 11 is the reference (4 steps: t = 1000, 957, 847, 11)."),
                io.Float.Input("guidance", default=1.0, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Text guidance. 1.0 is the reference: one model call per step. Otherwise "
                               "the negative prompt is used and each step costs more calls."),
                io.Float.Input("audio_guidance", default=1.0, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Speech guidance (against silent features). 1.0 is the reference; higher "
                               "follows the speech more closely at the cost of more model calls."),
                SkyReelsTextEmbeds.Input("connection_embeds", optional=True,
                                         tooltip="Optional: the prompt of the sliding windows, from a second "
                                         f"SkyReels Text Encode with \"{avatar.CONNECTION_PROMPT}\" (the "
                                         "reference). Not connected: the main prompt is used for every window."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="The video frames -> Create Video."),
                     io.Float.Output(display_name="fps", tooltip="25: the avatar's frame rate (the speech features "
                                     "run at 25 per second). Connect to Create Video's fps.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, text_embeds, vae, clip_vision, audio_encoder, portrait, audio, resolution: str,
                width: int, height: int, seed: int, steps: int, shift: float, guidance: float, audio_guidance: float,
                connection_embeds=None) -> io.NodeOutput:
        bridge.check_choice("resolution", resolution, list(avatar.AVATAR_BUCKETS))
        size = {"width": width or None, "height": height or None}
        waveform, rate = _speech(audio)
        negative = text_embeds.negative
        # everything but the speech features is checked before the speech is encoded (talking_avatar checks them)
        frames = -(-waveform.shape[-1] * avatar.FPS // rate)
        avatar.check_avatar_settings(model.module, portrait, frames, negative=negative, resolution=resolution,
                                     steps=steps, shift=shift, text_cfg=guidance, audio_cfg=audio_guidance, **size)

        bridge.load_for_use(audio_encoder)
        with torch.no_grad():
            features = audio_encoder.runner.encode_speech(waveform, rate, fps=avatar.FPS).float().cpu()
        plan = avatar.plan_talking_avatar(features.shape[0])
        device = bridge.load_for_use(model, vae, clip_vision)

        def encode_image(image: torch.Tensor) -> torch.Tensor:
            return clip_vision.runner.encode_image(image).to(device)

        positive = text_embeds.positive.to(device)
        connection = positive if connection_embeds is None else connection_embeds.positive.to(device)
        progress = bridge.PassProgress(steps, 1 + plan.windows, cls.hidden.unique_id, device,
                                       lambda k, n: "key frames" if k == 0 else f"window {k}/{n - 1}")
        out = avatar.talking_avatar(
            model.module, vae.runner, encode_image, portrait, features, positive, connection,
            negative=None if negative is None else negative.to(device), resolution=resolution, seed=seed,
            steps=steps, shift=shift, text_cfg=guidance, audio_cfg=audio_guidance, callback=progress,
            vae_callback=lambda done, total: bridge.check_cancel(), **size)
        return io.NodeOutput(out, float(avatar.FPS))
