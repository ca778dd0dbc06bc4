"""ComfyUI-SkyReels: SkyReels video models as ComfyUI nodes, on the pure-PyTorch skyreels_core library.

ComfyUI loads this package from custom_nodes/. The mapping below is literal on purpose: ComfyUI-Manager's
missing-node scanner reads it from source. The classes are V3 `io.ComfyNode`s; ComfyUI accepts them in
NODE_CLASS_MAPPINGS (which it prefers over `comfy_entrypoint`, kept for V3-only hosts and tools) and reads
their display names from the schemas (`display_name`), so there is no NODE_DISPLAY_NAME_MAPPINGS.
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
    from .nodes.post import SkyReelsInterpolateFrames, SkyReelsRIFELoader, SkyReelsUpscaleVideo
    from .nodes.sampler import SkyReelsSampler
    from .nodes.v3 import (
        SkyReelsV3ExtendVideo,
        SkyReelsV3ReferenceToVideo,
        SkyReelsV3ShotPrompt,
        SkyReelsV3ShotSwitch,
    )
    from .nodes.v3_avatar import SkyReelsV3AudioEncoderLoader, SkyReelsV3TalkingAvatar
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
    from .nodes.v4_refine import SkyReelsV4Keyframes, SkyReelsV4Refine, SkyReelsV4RefinerLoader

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
        "SkyReelsV3ReferenceToVideo": SkyReelsV3ReferenceToVideo,
        "SkyReelsV3ExtendVideo": SkyReelsV3ExtendVideo,
        "SkyReelsV3ShotPrompt": SkyReelsV3ShotPrompt,
        "SkyReelsV3ShotSwitch": SkyReelsV3ShotSwitch,
        "SkyReelsV3AudioEncoderLoader": SkyReelsV3AudioEncoderLoader,
        "SkyReelsV3TalkingAvatar": SkyReelsV3TalkingAvatar,
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
        "SkyReelsV4Keyframes": SkyReelsV4Keyframes,
        "SkyReelsV4RefinerLoader": SkyReelsV4RefinerLoader,
        "SkyReelsV4Refine": SkyReelsV4Refine,
        "SkyReelsRIFELoader": SkyReelsRIFELoader,
        "SkyReelsInterpolateFrames": SkyReelsInterpolateFrames,
        "SkyReelsUpscaleVideo": SkyReelsUpscaleVideo,
    }

    class SkyReelsExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return list(NODE_CLASS_MAPPINGS.values())

    async def comfy_entrypoint() -> SkyReelsExtension:
        return SkyReelsExtension()


__all__ = ["NODE_CLASS_MAPPINGS", "WEB_DIRECTORY", "comfy_entrypoint"]
