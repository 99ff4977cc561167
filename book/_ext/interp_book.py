"""Small Sphinx fixes for an offline, console-error-free book whose buttons work.

- sphinx-thebe (loaded by Jupyter Book 1.x) registers its configuration script twice,
  which makes browsers report "Identifier 'THEBE_JS_URL' has already been declared".
  Each page's scripts are de-duplicated here, keeping the first occurrence.
- The launch buttons (Colab, Binder) of sphinx-book-theme point at the chapter's source,
  ``book/<chapter>.md``, which Colab cannot open. They are pointed at the generated
  notebook ``notebooks/<chapter>.ipynb`` instead (``make notebooks``).
- A ``{colab}`chapter``` role links to a chapter's notebook on Colab, built from the
  repository URL and branch of ``_config.yml`` (their one home).
"""

from __future__ import annotations

import re

from docutils import nodes

_SOURCE = re.compile(r"book/([\w-]+)\.(?:md|ipynb)")


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        # an inline script is registered once with filename None and once with ""
        key = (
            getattr(js, "filename", str(js)) or "",
            str(sorted(getattr(js, "attributes", {}).items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def _notebook_launch_urls(app, pagename, templatename, context, doctree):
    """Point every launch button at ``notebooks/<chapter>.ipynb``."""

    def fix(button):
        if isinstance(button, dict):
            url = button.get("url")
            if isinstance(url, str) and ("colab" in url or "binder" in url.lower()):
                button["url"] = _SOURCE.sub(r"notebooks/\1.ipynb", url)
            for value in button.values():
                if isinstance(value, list):
                    for item in value:
                        fix(item)
        elif isinstance(button, list):
            for item in button:
                fix(item)

    fix(context.get("header_buttons", []))


def colab_url(config, chapter: str) -> str:
    """The Colab address of ``notebooks/<chapter>.ipynb`` in the book's repository."""
    repo = config.html_theme_options.get("repository_url", "").rstrip("/")
    branch = config.html_theme_options.get("repository_branch", "main") or "main"
    path = repo.split("github.com/", 1)[-1]
    return (
        f"https://colab.research.google.com/github/{path}/blob/{branch}/notebooks/{chapter}.ipynb"
    )


def _colab_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    config = inliner.document.settings.env.config
    chapter = text.strip()
    node = nodes.reference(rawtext, "Colab", refuri=colab_url(config, chapter))
    return [node], []


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _notebook_launch_urls, priority=900)
    app.add_role("colab", _colab_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
