"""Run a cell body the way ``%%time`` does, and collect the images it displays.

Not with ``shell.run_cell``: that runs a nested cell whose failure is shown but not
raised, so the outer cell reports success, Run All goes on and nbclient/papermill never
see the error (and the cell events fire twice). Here the body is compiled and executed
in the user namespace, and its exception propagates unchanged to IPython, which shows
it once and marks the cell as failed.

Like ``%%time``, a top-level ``await`` in the body is not supported.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["FigureCollector", "run_cell_body"]


def run_cell_body(shell: Any, cell: str, number: int | None = None) -> Any:
    """Execute ``cell`` in the user namespace; return the value of a trailing expression.

    ``number`` is the cell's execution count, shown in tracebacks (``Cell In[n]``).
    """
    __tracebackhide__ = True  # IPython hides this frame in the user's traceback
    source = shell.transform_cell(cell)  # %magics and !cmd in the body still work
    # registers the source with linecache: the traceback shows the user's lines
    filename = shell.compile.cache(
        source, shell.execution_count if number is None else number, raw_code=cell
    )
    tree = shell.compile.ast_parse(source, filename=filename)
    tree = shell.transform_ast(tree)
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_with_semicolon(cell):
        last = ast.Expression(tree.body.pop().value)
    with shell.builtin_trap:
        exec(shell.compile(tree, filename, "exec"), shell.user_global_ns, shell.user_ns)  # noqa: S102
        if last is not None:
            return eval(shell.compile(last, filename, "eval"), shell.user_global_ns, shell.user_ns)  # noqa: S307
    return None


def _ends_with_semicolon(cell: str) -> bool:
    """``x;`` as the last line silences the value, as in a normal cell."""
    lines = [line for line in cell.rstrip().splitlines() if line.strip()]
    if not lines:
        return False
    return lines[-1].split("#", 1)[0].rstrip().endswith(";")


class FigureCollector:
    """PNG images displayed by a cell: ``display(Image(...))`` and new matplotlib figures.

    matplotlib's inline backend shows figures only after the cell (post_execute), so the
    figures created during the cell are rendered here from ``pyplot`` directly.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.images: list[bytes] = []
        self._figs_before: set[int] = set()

    @contextlib.contextmanager
    def collect(self) -> Iterator[FigureCollector]:
        self._figs_before = set(_fignums())
        pub = getattr(self.shell, "display_pub", None)
        original = getattr(pub, "publish", None)
        if pub is None or original is None:
            yield self
            return

        def publish(data: Any, *args: Any, **kwargs: Any) -> Any:
            with contextlib.suppress(Exception):
                self._record(data)
            return original(data, *args, **kwargs)

        pub.publish = publish
        try:
            yield self
        finally:
            if pub.__dict__.get("publish") is publish:
                del pub.publish  # back to the class's method

    def _record(self, data: Any) -> None:
        png = data.get("image/png") if isinstance(data, dict) else None
        if isinstance(png, bytes):
            self.images.append(png)
        elif isinstance(png, str):
            self.images.append(base64.b64decode(png))

    def matplotlib_figures(self) -> list[bytes]:
        """PNG bytes of the pyplot figures created during the cell (never raises)."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return []
        out: list[bytes] = []
        import io

        for num in _fignums():
            if num in self._figs_before:
                continue
            with contextlib.suppress(Exception):
                buf = io.BytesIO()
                plt.figure(num).savefig(buf, format="png")
                out.append(buf.getvalue())
        return out


def _fignums() -> list[int]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    try:
        return list(plt.get_fignums())
    except Exception:
        return []
