"""``python -m mattermost_notify``: the ``mattermost-notify`` command."""

from .cli import run

if __name__ == "__main__":
    run()
