"""Scaffolding for Rust Codecontests: an LLM scaffold that writes Rust solutions."""
