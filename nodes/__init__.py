"""ComfyUI adapters (V3 io.ComfyNode) over skyreels_core: one module per stage.

loaders -> encode -> latent -> sampler -> decode; comfy_bridge is the only module that imports ComfyUI's
runtime (lazily); types holds the SKYREELS_* wire types and their dataclass payloads.
"""
