"""Sphinx configuration of the mattermost-notify documentation."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

from mattermost_notify import __version__  # noqa: E402

project = "mattermost-notify"
author = "mattermost-notify developers"
copyright = "mattermost-notify developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "clihelp",
]

html_theme = "furo"
html_title = f"mattermost-notify {__version__}"
exclude_patterns = ["_build", "_ext"]
templates_path: list[str] = []

# `name` in the pages (the seed page uses single backquotes) is a cross-reference
# to a Python object when one exists, plain code otherwise.
default_role = "py:obj"
primary_domain = "py"
highlight_language = "python3"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = True
