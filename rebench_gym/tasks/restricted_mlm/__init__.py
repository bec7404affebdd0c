"""Restricted Architecture MLM (RE-Bench ai_rd_restricted_mlm)."""
