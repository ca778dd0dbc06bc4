"""skyreels_core.checkpoints"""
