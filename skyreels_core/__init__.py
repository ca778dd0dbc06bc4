"""skyreels_core: pure-PyTorch implementation of the SkyReels video family (V2, V3, V4).

Never imports ComfyUI. Import direction: pipelines -> models / sampling / encoders -> nn.
"""

__version__ = "0.1.0"
