"""Proof that a patched model computes what the original did."""
