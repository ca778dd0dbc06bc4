"""skyreels_core.models"""
