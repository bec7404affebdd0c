"""Optimize LLM Foundry: make a finetuning script fast while keeping its trained weights."""
