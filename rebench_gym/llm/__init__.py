"""LLM plumbing shared by the LLM agents and the tasks that call models.

:mod:`rebench_gym.llm.scripted_server` is a local OpenAI-compatible server with scripted replies
(for tests and offline demos).
"""
