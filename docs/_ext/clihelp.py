"""``.. cli-help:: send``: the ``--help`` text of a ``mattermost-notify`` subcommand.

The CLI page shows the parser's own help, so it cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class CliHelp(SphinxDirective):
    optional_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        from mattermost_notify.cli import build_parser

        command = self.arguments[0] if self.arguments else ""
        argv = [command] if command else []
        parser = build_parser(argv)
        if command:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[command]
        os.environ.setdefault("COLUMNS", "88")
        text = parser.format_help()
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True, "version": "1"}
