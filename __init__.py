"""ComfyUI-SkyReels: SkyReels video models as ComfyUI nodes, on the pure-PyTorch skyreels_core library.

ComfyUI loads this package from custom_nodes/. The mappings below are literal on purpose: ComfyUI-Manager's
missing-node scanner reads them from source. The classes are V3 `io.ComfyNode`s; ComfyUI accepts them in
NODE_CLASS_MAPPINGS (which it prefers over `comfy_entrypoint`, kept for V3-only hosts and tools).
Importing this package touches no GPU and imports no optional dependency. Imported outside ComfyUI (pytest
collects this folder as a package because it has an __init__.py) it registers nothing instead of failing.
"""

WEB_DIRECTORY = "./web"

try:
    from comfy_api.latest import ComfyExtension, io
except ModuleNotFoundError as exc:  # not inside ComfyUI, e.g. pytest collecting the repository root folder
    if exc.name not in ("comfy_api", "comfy_api.latest"):
        raise
    import logging

    logging.getLogger("SkyReels").warning(
        "ComfyUI-SkyReels: comfy_api.latest not found (needs ComfyUI >= 0.3.75); no SkyReels nodes registered."
    )
    NODE_CLASS_MAPPINGS = {}
    NODE_DISPLAY_NAME_MAPPINGS = {}
else:
    from .nodes.decode import SkyReelsVAEDecode
    from .nodes.diffusion_forcing import SkyReelsDFSampler
    from .nodes.encode import SkyReelsCLIPVisionEncode, SkyReelsTextEncode
    from .nodes.latent import SkyReelsEmptyVideoLatent, SkyReelsImageToVideo
    from .nodes.loaders import (
        SkyReelsCLIPVisionLoader,
        SkyReelsModelLoader,
        SkyReelsTextEncoderLoader,
        SkyReelsVAELoader,
    )
    from .nodes.sampler import SkyReelsSampler
    from .nodes.v4 import (
        SkyReelsV4Decode,
        SkyReelsV4EmptyAVLatent,
        SkyReelsV4ModelLoader,
        SkyReelsV4References,
        SkyReelsV4Sampler,
        SkyReelsV4TaskCondition,
        SkyReelsV4TextEncode,
        SkyReelsV4TextEncoderLoader,
    )
    from .nodes.v4_audio import SkyReelsV4AudioCodecLoader, SkyReelsV4AudioDecode, SkyReelsV4AudioEncode

    NODE_CLASS_MAPPINGS = {
        "SkyReelsModelLoader": SkyReelsModelLoader,
        "SkyReelsVAELoader": SkyReelsVAELoader,
        "SkyReelsTextEncoderLoader": SkyReelsTextEncoderLoader,
        "SkyReelsCLIPVisionLoader": SkyReelsCLIPVisionLoader,
        "SkyReelsTextEncode": SkyReelsTextEncode,
        "SkyReelsCLIPVisionEncode": SkyReelsCLIPVisionEncode,
        "SkyReelsEmptyVideoLatent": SkyReelsEmptyVideoLatent,
        "SkyReelsImageToVideo": SkyReelsImageToVideo,
        "SkyReelsSampler": SkyReelsSampler,
        "SkyReelsVAEDecode": SkyReelsVAEDecode,
        "SkyReelsDFSampler": SkyReelsDFSampler,
        "SkyReelsV4ModelLoader": SkyReelsV4ModelLoader,
        "SkyReelsV4AudioCodecLoader": SkyReelsV4AudioCodecLoader,
        "SkyReelsV4TextEncoderLoader": SkyReelsV4TextEncoderLoader,
        "SkyReelsV4TextEncode": SkyReelsV4TextEncode,
        "SkyReelsV4EmptyAVLatent": SkyReelsV4EmptyAVLatent,
        "SkyReelsV4TaskCondition": SkyReelsV4TaskCondition,
        "SkyReelsV4References": SkyReelsV4References,
        "SkyReelsV4Sampler": SkyReelsV4Sampler,
        "SkyReelsV4Decode": SkyReelsV4Decode,
        "SkyReelsV4AudioEncode": SkyReelsV4AudioEncode,
        "SkyReelsV4AudioDecode": SkyReelsV4AudioDecode,
    }

    NODE_DISPLAY_NAME_MAPPINGS = {
        "SkyReelsModelLoader": "SkyReels Model Loader",
        "SkyReelsVAELoader": "SkyReels VAE Loader",
        "SkyReelsTextEncoderLoader": "SkyReels Text Encoder Loader (umT5)",
        "SkyReelsCLIPVisionLoader": "SkyReels CLIP Vision Loader",
        "SkyReelsTextEncode": "SkyReels Text Encode",
        "SkyReelsCLIPVisionEncode": "SkyReels CLIP Vision Encode",
        "SkyReelsEmptyVideoLatent": "SkyReels Empty Video Latent",
        "SkyReelsImageToVideo": "SkyReels Image To Video",
        "SkyReelsSampler": "SkyReels Sampler",
        "SkyReelsVAEDecode": "SkyReels VAE Decode",
        "SkyReelsDFSampler": "SkyReels DF Sampler (long video)",
        "SkyReelsV4ModelLoader": "SkyReels V4 Model Loader",
        "SkyReelsV4AudioCodecLoader": "SkyReels V4 Audio Codec Loader",
        "SkyReelsV4TextEncoderLoader": "SkyReels V4 Text Encoder Loader (MLLM)",
        "SkyReelsV4TextEncode": "SkyReels V4 Text Encode",
        "SkyReelsV4EmptyAVLatent": "SkyReels V4 Empty AV Latent",
        "SkyReelsV4TaskCondition": "SkyReels V4 Task Condition",
        "SkyReelsV4References": "SkyReels V4 References",
        "SkyReelsV4Sampler": "SkyReels V4 Sampler",
        "SkyReelsV4Decode": "SkyReels V4 Decode",
        "SkyReelsV4AudioEncode": "SkyReels V4 Audio Encode",
        "SkyReelsV4AudioDecode": "SkyReels V4 Audio Decode",
    }

    class SkyReelsExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return list(NODE_CLASS_MAPPINGS.values())

    async def comfy_entrypoint() -> SkyReelsExtension:
        return SkyReelsExtension()


__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "comfy_entrypoint"]
