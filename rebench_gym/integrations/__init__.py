"""Adapters that let training libraries reach RE-Bench episodes through their own interfaces.

Each submodule imports its library on import (``rebench_gym.integrations.trl`` needs
``pip install 'rebench-gym[trl]'``); this package itself imports nothing optional.
"""
