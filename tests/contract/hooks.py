"""Schemathesis hooks for videofeed's contract run (tests/contract/schemathesis.sh).

JSON Schema cannot state three of the feed's rules, so docs/openapi.json states
them in words and these hooks keep generated requests on the side of the line
that both the schema and the server agree on. They change only requests the
schema already calls invalid (or, for the duration pair, a combination it
cannot express); every valid request is sent as generated.

1. `q` must hold a letter or digit of any script, after trimming white space.
   The schema's pattern is the ASCII subset ([0-9A-Za-z]), so a `q` that breaks
   it may still hold a non-ASCII letter the server rightly accepts: such a `q`
   keeps only its ASCII characters (none of them a letter or digit). A `q`
   over 120 characters gets letters at both ends, so trimming cannot bring it
   back under the limit.
2. An empty `region`, `limit`, `offset`, `min_duration`, `max_duration` or
   `sort` means "not given" (PHP forms send empty fields): an empty value the
   schema calls invalid becomes a non-empty invalid one.
3. `max_duration` must not be less than `min_duration`: a pair the wrong way
   round is swapped.
4. A parameter sent as a list or an object: repeated (`limit=1&limit=2`, the
   last one wins) or empty, so the server may rightly accept it; it becomes a
   scalar that breaks the rule.
5. A new video's id holding `%` gets `_` instead: the HTTP library leaves a
   `%` followed by two hex digits unencoded in a URL path, so the server would
   rightly decode it, and the stateful phase's DELETE of that video would miss.
6. The write API trims text fields before checking them (" us" is region US),
   and its "not blank" is Rust's white space, which differs from Python's in a
   few control characters: a body field that breaks its schema pattern is
   replaced by a value that breaks it for both (the case stays invalid).
7. `published_at` must be a real calendar date-time: the schema's pattern
   allows 30 February, so a value that matches the pattern but names no real
   instant (or lies outside years 0001-9999 in UTC) is replaced by a real one
   of the same shape (the case stays valid, for the server too).
8. `thumbnail` must be a URL the `url` crate parses, with a host: the schema's
   pattern states the characters, not the host syntax (a `%`, `[`, a port over
   65535, an all-digit name read as a bad IPv4 address, a punycode label), so a
   thumbnail that matches the pattern gets a plain host (`img.example.com`)
   when its own is not letters, digits, dots and hyphens with a letter in the
   last label (the case stays valid, for the server too).
10. `q` may be left out only when the request browses (`sort=recent`,
   `sort=popular` or a `channel`), which JSON Schema cannot state: a case
   without `q` that does not browse gets `sort=popular` (the case stays valid,
   for the server too); a browsing case whose `q` is empty or blank (which the
   server reads as "no query") gets `q=!` (the case stays invalid).
9. The videos of one batch (a JSON array) must have distinct ids, which JSON
   Schema cannot state for one property of the items: a repeated id gets a
   suffix (the case stays valid, for the server too).
"""
import calendar
import datetime
import json
import pathlib
import re

import schemathesis

ASCII_ALNUM = re.compile("[0-9A-Za-z]")
EMPTY_MEANS_ABSENT = ("region", "limit", "offset", "min_duration", "max_duration", "sort")


# Body field -> a value both the schema and the server reject; the patterns are the
# document's own (explicit character classes, read the same way by Python and ECMA-262).
_SPEC = json.loads((pathlib.Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
_VIDEO = _SPEC["components"]["schemas"]["Video"]["properties"]
BODY_INVALID = {
    field: (_VIDEO[field]["pattern"], invalid)
    for field, invalid in [
        ("id", "a b"),
        ("title", " "),
        ("channel", " "),
        ("thumbnail", "ftp://example.com/x.jpg"),
        ("region", "USA"),
    ]
}


RFC3339 = re.compile(
    "([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.][0-9]+)?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def _real_datetime(value):
    """Whether `value` is a date-time the server accepts (RFC 3339, real calendar date, in range)."""
    m = RFC3339.fullmatch(value)
    if not m:
        return False
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    if not (1 <= mo <= 12 and 1 <= y and 1 <= d <= calendar.monthrange(y, mo)[1] and h <= 23 and mi <= 59 and s <= 60):
        return False
    oh, om = int(m.group(8) or 0), int(m.group(9) or 0)
    if oh > 23 or om > 59:
        return False
    offset = datetime.timedelta(hours=oh, minutes=om) * (-1 if m.group(7) == "-" else 1)
    try:
        utc = datetime.datetime(y, mo, d, h, mi, min(s, 59)) - offset
    except OverflowError:
        return False
    return 1 <= utc.year <= 9999


PLAIN_HOST = re.compile("[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*")
SCHEME_HOST_REST = re.compile("(https?://)([^/?#]*)(.*)", re.S)


def _plain_host(url):
    """`url` with its host replaced by img.example.com unless it is a plain DNS name."""
    m = SCHEME_HOST_REST.fullmatch(url)
    if not m:
        return url
    scheme, host, rest = m.groups()
    labels = host.split(".")
    plain = (
        PLAIN_HOST.fullmatch(host)
        and re.search("[A-Za-z]", labels[-1])
        and not any(label.lower().startswith("xn--") for label in labels)
    )
    return url if plain else scheme + "img.example.com" + rest


def _int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch("[0-9]+", value):
        return int(value)
    return None


def _fix_video(body):
    """Rules 5-8 for one video object (a whole row, an array's element, a patch)."""
    for field, (pattern, invalid) in BODY_INVALID.items():
        value = body.get(field)
        if isinstance(value, str) and not re.search(pattern, value):
            body[field] = invalid
    if isinstance(body.get("id"), str):
        body["id"] = body["id"].replace("%", "_")
    thumbnail = body.get("thumbnail")
    if isinstance(thumbnail, str) and re.search(_VIDEO["thumbnail"]["pattern"], thumbnail):
        body["thumbnail"] = _plain_host(thumbnail)
    published = body.get("published_at")
    published_schema = _VIDEO["published_at"]["anyOf"][0]
    pattern, longest = published_schema["pattern"], published_schema["maxLength"]
    if (
        isinstance(published, str)
        and len(published) <= longest
        and re.fullmatch(pattern, published)
        and not _real_datetime(published)
    ):
        body["published_at"] = "2024-02-29T23:59:60+01:00"


@schemathesis.hook
def map_case(ctx, case):
    # A case-level hook: schemathesis runs it in every phase (coverage, fuzzing, ...).
    if ctx.operation is None:
        return case
    is_video_body = ctx.operation.path == "/feed/admin/videos" or (
        ctx.operation.path == "/feed/admin/videos/{id}" and ctx.operation.method.upper() == "PATCH"
    )
    if is_video_body and isinstance(case.body, list):
        seen = set()
        for n, item in enumerate(case.body):
            if isinstance(item, dict):
                _fix_video(item)
                if isinstance(item.get("id"), str):
                    if item["id"] in seen:
                        item["id"] = (item["id"] + f"_{n}")[-64:]
                    seen.add(item["id"])
        return case
    if is_video_body and isinstance(case.body, dict):
        _fix_video(case.body)
        return case
    if ctx.operation.path != "/feed":
        return case
    if not case.query:
        case.query = {"sort": "popular"}
    query = case.query
    for name, value in list(query.items()):
        if isinstance(value, (list, dict)):
            query[name] = "!"
    q = query.get("q")
    channel = query.get("channel")
    browsing = (isinstance(channel, str) and channel.strip() != "") or str(query.get("sort", "")).lower() in (
        "recent",
        "popular",
    )
    if q is None and not browsing and str(query.get("sort", "relevance")).lower() == "relevance":
        query["sort"] = "popular"
    if isinstance(q, str):
        if not ASCII_ALNUM.search(q):
            q = "".join(c for c in q if ord(c) < 128)
        if len(q) > 120:
            q = "x" + q[1:-1] + "x"
        if q.strip() == "" and browsing:
            q = "!"
        query["q"] = q
    for name in EMPTY_MEANS_ABSENT:
        if query.get(name) == "":
            query[name] = "!"
    lo, hi = _int(query.get("min_duration")), _int(query.get("max_duration"))
    if lo is not None and hi is not None and lo > hi:
        query["min_duration"], query["max_duration"] = query["max_duration"], query["min_duration"]
    return case
