"""skyreels_core.encoders"""
