"""Small Sphinx fixes for an offline, console-error-free book.

- sphinx-thebe (loaded by Jupyter Book 1.x) registers its configuration script twice,
  which makes browsers report "Identifier 'THEBE_JS_URL' has already been declared".
  Each page's scripts are de-duplicated here, keeping the first occurrence.
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
