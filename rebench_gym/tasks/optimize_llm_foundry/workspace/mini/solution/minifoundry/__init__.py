"""minifoundry: a miniature of LLM Foundry for finetuning a tiny causal LM on CPU.

``model`` (the network and its checkpoint directory format), ``tokenizer`` (bytes),
``data`` (tokenized shards on disk and batching), ``config`` (YAML with overrides) and
``trainer`` (the training loop with evaluation and checkpoints).
"""
