"""Workflows: the steps the ``tfseq`` command runs, as library functions.

Each takes Python arguments and files, does one whole step and returns what it wrote; the command
line maps its flags to these arguments and their results to an exit status, and holds no logic of
its own. Layers, bottom to top: data and models; training and export; tuning; workflows; the CLI.
"""
