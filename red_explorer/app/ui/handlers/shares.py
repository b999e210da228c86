"""Runs shared by link (Export tab): share the chosen run, list and revoke the links; a page opened from one."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from red_explorer.app.kept_runs import same_base
from red_explorer.app.ui.handlers.common import Choices
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.session import Session
from red_explorer.runs.shares import Share, ShareNotFoundError

LINK_PARAMETER = "run"  # the app's address + ?run=TOKEN opens a shared run
NO_LINKS = "*No share links: pick a run above and press **Share** to make one.*"


def app_url(headers: Mapping[str, str]) -> str:
    """The app's address as the page sees it (the Referer its requests carry, without its query), else
    ``scheme://host/`` from the Host header; '' when neither is known (then a link is relative: ``?run=…``)."""
    page = urlsplit(headers.get("referer") or "")
    if page.scheme in ("http", "https") and page.netloc:
        return urlunsplit((page.scheme, page.netloc, page.path or "/", "", ""))
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    if not host:
        return ""
    scheme = (headers.get("x-forwarded-proto") or "http").split(",")[0].strip()
    return f"{scheme}://{host}/"


def link(base_url: str, token: str) -> str:
    return f"{base_url.replace('`', '%60')}?{LINK_PARAMETER}={token}"


def share(session: Session, label: str | None, base_url: str = ""):
    """A new link to the chosen run: (the link, the owner's links listed, the links to revoke)."""
    if not label:
        raise ValueError("pick the run to share first")
    made = session.workbench.share_run(label)
    return link(base_url, made.token), *links(session, base_url)


def links(session: Session, base_url: str = "") -> tuple[str, Choices]:
    """(Markdown: each active link of the owner with the run it opens, the links as Revoke's choices)."""
    active = session.workbench.share_links()
    if not active:
        return NO_LINKS, Choices([], None)
    lines = ["**Your share links** (whoever opens one sees that run read-only, until you revoke it):"]
    lines += [f"- **{plain(label)}** ({_made(made)}): `{link(base_url, made.token)}`" for made, label in active]
    names = {made.token: f"{label} ({_made(made)}, …{made.token[-6:]})" for made, label in active}
    return "\n".join(lines), Choices(list(names), None, names)


def _made(made: Share) -> str:
    return f"made {made.created[:16].replace('T', ' ')} UTC"


def revoke(session: Session, token: str | None, base_url: str = ""):
    """End the chosen link: (the links listed, the links to revoke, no link shown)."""
    if not token:
        raise ValueError("pick the share link to revoke first")
    session.workbench.revoke_share(token)
    return *links(session, base_url), ""


def open_link(session: Session, token: str | None) -> str:
    """A page opened with ``?run=TOKEN``: the note above the tabs (the run is now listed read-only), or why not."""
    if not token:
        return ""
    try:
        run = session.workbench.open_share(token)
    except ShareNotFoundError as error:
        return f"✕ **The shared run cannot be opened**: {plain(str(error))}."
    if run is None:
        return "This link opens one of your own runs: it is in your run lists as it is."
    base = plain(run.record.base.spec)
    if same_base(run.record, session.workbench.training_key().resolved()):
        where = f"trained on {base}, the model this page uses"
    else:
        where = f"trained on {base}: load that model in the Model tab to use it"
    return (
        f"**{plain(run.label)}** was shared with you: it is listed read-only in Inspect, Compare, Explore and "
        f"Export ({where})."
    )
