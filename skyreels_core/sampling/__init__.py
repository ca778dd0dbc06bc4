"""skyreels_core.sampling"""
