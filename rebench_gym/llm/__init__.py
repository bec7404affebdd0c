"""LLM plumbing shared by the LLM agents and the tasks that call models.

:mod:`rebench_gym.llm.scripted_server` is a local OpenAI-compatible server with scripted replies
(for tests and offline demos). :mod:`rebench_gym.llm.client` is the chat client of the LLM agents
(retries that pause the time budget, usage reported to the token budget, request logs), and
:mod:`rebench_gym.llm.tool_calls` the tag protocol their models write tool calls in.
"""
