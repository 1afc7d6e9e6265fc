"""Point the launch buttons (Colab, Binder) at the notebooks' sources.

The book renders the executed copies that papermill writes to ``book/pipeline/`` and
``book/theory/`` (not in git), so sphinx-book-theme's launch links would name files that the
repository does not hold. This rewrites them to ``notebooks/`` and ``notebooks/theory/``, the
paired notebooks whose first cell installs the project in Colab.
"""

SOURCES = (("book/pipeline/", "notebooks/"), ("book/theory/", "notebooks/theory/"))


def source_path(url: str) -> str:
    url = url.replace("/./", "/")  # path_to_book "." (the book at the repository's root)
    for built, source in SOURCES:
        url = url.replace(built, source)
    return url


def _rewrite(app, pagename, templatename, context, doctree):
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = source_path(button["url"])


def setup(app):
    app.connect("html-page-context", _rewrite, priority=502)  # after the theme's (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
