"""Fix Embedding: recover a language model whose token embedding was scrambled."""
