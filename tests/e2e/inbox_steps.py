"""Browser steps for the inbox, for the morning-at-the-desk script to call.

The inbox is ``/staff/inbox`` (``?location=<slug>`` for one location, ``?location=unmatched``
for replies about no visit). Each reply is an ``li.inbox-item`` with an "Answer" link to
``/staff/appointments/<id>#reply`` and a "Mark handled" button. The reply form there posts
to ``/staff/appointments/<id>/reply`` with ``body`` (textarea ``#reply-body``),
``mark_handled`` (checkbox ``#reply-mark-handled``, checked) and ``warned_for`` (hidden; set
by the server when it warns about health details, so that "Send anyway" sends).
"""

from __future__ import annotations

import re
from typing import Any


def answer_first_unread_reply(page: Any, base_url: str, body: str, *, from_nav: bool = True) -> int:
    """Open the inbox, read the newest unread reply about a visit, answer it; returns the
    clicks used.

    ``from_nav``: reach the inbox through the navigation's "Inbox" link (one click) rather
    than by address. Confirms the health-details warning if the server raises one
    (one more click). Ends on the appointment page with the reply queued.
    """
    clicks = 0
    if from_nav:
        page.get_by_role("navigation", name="Staff").get_by_role(
            "link", name=re.compile(r"^Inbox")
        ).click()
        clicks += 1
    else:
        page.goto(base_url + "/staff/inbox")
    page.wait_for_url(re.compile(r"/staff/inbox"))
    answerable = page.locator("li.inbox-item.is-unread").filter(
        has=page.get_by_role("link", name="Answer")
    )  # replies about no visit have no thread to answer from
    answerable.first.get_by_role("link", name="Answer").click()
    clicks += 1
    page.wait_for_url(re.compile(r"/staff/appointments/\d+"))
    page.locator("#reply-body").fill(body)
    page.get_by_role("button", name="Send reply").click()
    clicks += 1
    page.wait_for_load_state()
    if page.locator("#reply-warnings").count():
        page.get_by_role("button", name="Send anyway").click()
        clicks += 1
        page.wait_for_load_state()
    return clicks
