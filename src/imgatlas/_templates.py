"""The one Jinja set-up the report and the web app share: autoescaped, strict about
undefined names, and the same number formatting on both."""

from __future__ import annotations

import json
from typing import Any


def template_env(package: str) -> Any:
    """A Jinja environment over ``package``'s ``templates/`` folder (``"imgatlas.serve"``);
    a template missing from the installed package is named as such, not a Jinja error."""
    import jinja2

    from imgatlas._package_data import incomplete_install, package_path

    folder = package.removeprefix("imgatlas.").replace(".", "/") + "/templates"

    class ShippedTemplates(jinja2.FileSystemLoader):
        def get_source(self, environment: Any, template: str) -> Any:
            try:
                return super().get_source(environment, template)
            except jinja2.TemplateNotFound:
                raise incomplete_install([f"{folder}/{template}"]) from None

    env = jinja2.Environment(
        loader=ShippedTemplates(package_path(folder)), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    env.filters["tojson_safe"] = json_for_script
    return env


def format_number(v: Any, digits: int = 3) -> str:
    """Thousands separators for ints, ``digits`` decimals for floats, a dash for nothing."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def json_for_script(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``
    survive, so no file name can close the script element."""
    from markupsafe import Markup

    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return Markup(s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
                  .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
