"""Live controls (ipywidgets) only where a live front end can talk to them.

``ipywidgets.interact`` can deadlock a headless kernel (papermill issue 723, nbclient issue 312,
nbconvert issue 2029): the book hung once for hours at theory chapter T4. So every widget of
the book goes through :func:`show_controls`, which builds it only when
:func:`frontend_is_live` says a person is looking (Jupyter, JupyterLab, VS Code, Colab); a
headless run (papermill, nbclient, nbconvert, nbval, ``kr_utils.book``) shows the static figure
instead, and never imports ipywidgets. The progress bars of the long loops (:func:`progress`)
follow the same decision: none in a headless kernel, so the static book holds no bar.

The decision, in order:

1. ``KR_WIDGETS=1`` or ``KR_WIDGETS=0`` forces it;
2. ``KR_HEADLESS=1`` (set by ``kr_utils.book`` and the test command) means headless;
3. outside an IPython kernel (a plain script, a terminal IPython) there is no widget front end;
4. a kernel started by a headless executor (its parent process is papermill, nbclient,
   nbconvert, jupyter-execute, jupyter-book, pytest/nbval or ``kr_utils.book``) is headless;
5. otherwise the kernel is live.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

WIDGETS_ENV = "KR_WIDGETS"
HEADLESS_ENV = "KR_HEADLESS"
# what a headless executor's command line contains (the kernel's parent process)
HEADLESS_PARENTS = ("papermill", "nbclient", "nbconvert", "jupyter-execute", "jupyter-book", "jupyter_book",
                    "pytest", "nbval", "kr_utils.book")
# IPython shells that have a widget front end: Jupyter's kernel, and Colab's own shell class
KERNEL_SHELLS = ("ZMQInteractiveShell", "Shell")


def parent_cmdline(pid: int | None = None) -> str:
    """The command line of the process that started this one ('' where it cannot be read)."""
    try:
        ppid = os.getppid() if pid is None else pid
        return Path(f"/proc/{ppid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _shell():
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def frontend_is_live(env=None, shell=..., parent: str | None = None) -> bool:
    """Whether widgets built now can reach a person (see the module's docstring for the rules).

    ``env``, ``shell`` and ``parent`` default to this process' environment, IPython shell and
    parent command line; tests pass their own."""
    env = os.environ if env is None else env
    forced = env.get(WIDGETS_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if env.get(HEADLESS_ENV, "").strip() not in ("", "0"):
        return False
    shell = _shell() if shell is ... else shell
    if shell is None or type(shell).__name__ not in KERNEL_SHELLS:
        return False
    parent = parent_cmdline() if parent is None else parent
    return not any(name in parent for name in HEADLESS_PARENTS)


def headless_kernel() -> bool:
    """An IPython kernel that no person is watching (papermill, nbval, the book's runner)."""
    shell = _shell()
    return shell is not None and type(shell).__name__ in KERNEL_SHELLS and not frontend_is_live()


def progress(iterable=None, **kwargs):
    """``tqdm.auto.tqdm`` for the long loops: a widget bar in a live notebook, a text bar in a
    terminal, and none in a headless kernel, where a bar would only clutter the static book (the
    book's runner shows its own progress per chapter). None in a worker process of
    :mod:`kr_utils.workers` either (``KR_WORKER``): its parent shows the run when it ends."""
    from tqdm.auto import tqdm

    if headless_kernel() or os.environ.get("KR_WORKER") == "1":
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


def figure_png(fig):
    """A matplotlib figure as a PNG ``IPython.display.Image``, and the figure closed: whatever
    the backend (under ``MPLBACKEND=Agg`` a displayed or glued Figure would carry only its text
    form), and without the notebook printing it inline a second time."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buf.getvalue(), format="png")


def _as_image(obj):
    from matplotlib.figure import Figure

    return figure_png(obj) if isinstance(obj, Figure) else obj


def show_controls(build, static=None, live: bool | None = None):
    """Show ``build()`` (a function returning an ipywidgets widget) where the front end is live;
    elsewhere show ``static`` (a matplotlib figure, or anything ``display`` takes; None shows
    nothing) and never call ``build``. Returns the widget, or None when headless."""
    from IPython.display import display

    live = frontend_is_live() if live is None else live
    if not live:
        if static is not None:
            display(_as_image(static))
        return None
    if "google.colab" in sys.modules:  # Colab draws ipywidgets 8 through its custom widget manager
        try:
            from google.colab import output
            output.enable_custom_widget_manager()
        except (ImportError, AttributeError):
            pass
    widget = build()
    display(widget)
    return widget


GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, variable, display: bool = True) -> None:
    """myst-nb's ``glue`` (a value handed to the book's prose by name) where myst-nb is installed;
    elsewhere (a Colab runtime with only the package's dependencies) the same output, written
    here: the value's display data under the ``application/papermill.record/`` prefix with its
    name in ``metadata.scrapbook``, which is all that myst-nb's glue writes."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        myst_glue = None
    if myst_glue is not None:
        return myst_glue(name, variable, display)
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    bundle, metadata = format_display_data(variable)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = dict(name=name, mime_prefix=prefix)
    ipy_display({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)


def glue_texts(texts: dict) -> None:
    """:func:`glue` each ``{name: value}`` of ``texts`` for the prose only (not displayed): the
    sentences a library function words from a chapter's results."""
    for name, value in texts.items():
        glue(name, value, display=False)
