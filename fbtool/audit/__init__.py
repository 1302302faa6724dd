"""Audit shipped artifacts: find models in folders and archives, check them against a policy."""
