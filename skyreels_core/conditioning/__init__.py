"""skyreels_core.conditioning"""
