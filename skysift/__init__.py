"""The `skysift` command: gathers the sub-commands each package defines in its own cli.py."""
