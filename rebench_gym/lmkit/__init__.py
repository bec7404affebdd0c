"""The language-model substrate shared by the LM tasks (FixEmbedding, RestrictedMLM, ScalingLaw,
FinetuneGPT2QA): a deterministic corpus, a word tokenizer, nanoGPT's ``.bin`` format, one small
GPT with tied embeddings and a training loop (the asset cache is :mod:`rebench_gym.cache`)."""
