"""Several replies waiting for one saturated destination, sent as one message.

Each reply keeps its text, in order, between divider lines; its `<@id>` mention markers stay in its part,
so every platform's renderer mentions everyone of every part (DingTalk's `at.atUserIds`, WeCom's
`<@userid>`), and the display names are united. The merged message takes the first part's title; a later
part whose title differs from the part before it shows that title in bold on its first line (where a
renderer would have put it — WeCom renders titles into the text; DingTalk's title is only the
notification's, so a merged DingTalk message would otherwise lose the later titles).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.delivery import OutgoingMessage

DIVIDER = "\n\n---\n\n"
# Bytes kept free for the title in front of the text, like enqueue_message's reserve.
TITLE_RESERVE = 16


def merged(parts: Sequence[OutgoingMessage]) -> OutgoingMessage:
    """One message carrying `parts` in order."""
    if len(parts) == 1:
        return parts[0]
    names: dict[str, str] = {}
    for part in parts:
        names.update(part.names)
    return OutgoingMessage(text=DIVIDER.join(_texts(parts)), title=parts[0].title, names=names)


def fitting(parts: Sequence[OutgoingMessage], max_bytes: int) -> int:
    """How many of `parts`, from the first, fit into one merged message of at most `max_bytes` (at least 1:
    every part fits alone, it was split under the limit when it was queued). A picture is a message of its own:
    it is never merged, and a merge stops before one."""
    if parts[0].image is not None:
        return 1
    title = parts[0].title
    size = len(title.encode("utf-8")) + TITLE_RESERVE if title else 0
    divider = len(DIVIDER.encode("utf-8"))
    for count, text in enumerate(_texts(parts)):
        if parts[count].image is not None:
            return count
        size += len(text.encode("utf-8")) + (divider if count else 0)
        if size > max_bytes:
            return max(count, 1)
    return len(parts)


def _texts(parts: Sequence[OutgoingMessage]) -> list[str]:
    texts: list[str] = []
    previous_title = parts[0].title if parts else None
    for index, part in enumerate(parts):
        show_title = index > 0 and part.title is not None and part.title != previous_title
        texts.append(f"**{part.title}**\n{part.text}" if show_title else part.text)
        previous_title = part.title
    return texts
