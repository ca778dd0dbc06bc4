"""Shared neural-network primitives: attention dispatch, RoPE, adaLN modulation, norms."""
