"""FinetuneGPT2QA (RE-Bench ai_rd_nanogpt_chat_rl): see :mod:`.task`."""
