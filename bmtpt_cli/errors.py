"""The one exception type for problems the user can fix.

The core raises `BmtptError` with a one-line message naming the problem and the fix; the command
layer turns it into that line on stderr and exit code 2, without a traceback.
"""


class BmtptError(Exception):
    """A problem with the user's input (a flag, a file, a preset), not a bug in bmtpt."""


def excerpt(value, limit: int = 40, *, quoted: bool = True) -> str:
    """A short, escaped rendering of an untrusted value (a field of a data file, artifact metadata) for a message.

    Strings are quoted with control and other unprintable characters escaped (`repr`), anything longer
    than `limit` characters is cut (`…`), and containers show only their first few items, so an error
    stays one short line and never echoes more than a glimpse of a file's contents. `quoted=False`:
    a short printable string is shown as it is, without quotes.
    """
    import reprlib

    if not quoted and isinstance(value, str) and value.isprintable() and len(value) <= limit:
        return value

    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxstring, shortener.maxother = 2, limit, limit
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = 4
    try:
        text = shortener.repr(value)
    except (ValueError, RecursionError):  # e.g. an int beyond Python's digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit + 8 else text[: limit + 4] + "…"


def one_line(message: str, limit: int = 1000) -> str:
    """`message` as the one line the user sees: unprintable characters (line breaks, terminal escapes) escaped,
    and the middle of an over-long one cut, keeping its start (the problem) and its end (the fix)."""
    if not message.isprintable():
        message = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    if len(message) > limit:
        message = message[: limit * 2 // 3] + " … " + message[-(limit // 3) :]
    return message
