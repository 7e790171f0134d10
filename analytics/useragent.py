"""The one classification of a user-agent string: device class, browser, OS, bot.

The demo generator stores what this module says, and client analytics applies its
device_type/browser/os filters (and fills rows the gateway left empty) with what this
module says, so the two can never disagree.

Why ua-parser with its Rust accelerator, and not a library that reports the device class
itself. Measured on this project's 2-core machine, per *distinct* agent, uncached
(client analytics may parse up to 10,000 distinct agents in one request):

- ``ua-parser`` 1.0 + ``ua-parser-rs`` (both from the ua-parser organisation, Apache-2.0;
  the regexes are uap-core's, released monthly as ``ua-parser-builtins``): about 20 µs an
  agent, 0.2 s for 10,000. ua-parser picks the Rust resolver by itself when it is
  installed and returns the same families as its pure-Python resolver, which costs about
  600 µs an agent (6 s for 10,000), so ``ua-parser-rs`` is pinned in requirements.
- ``user-agents-ng`` 3.0 (MIT, the maintained successor of ``user-agents``, whose last
  release is from 2020): answers is_mobile/is_tablet/is_pc/is_bot, but through
  ua-parser's legacy API, which bypasses the accelerator (about 590 µs an agent), and its
  classes are hand rules over ua-parser's output, like the few below.
- ``device-detector`` 6.5 (port of Matomo's database): reports the device type itself,
  but costs about 9 ms an agent (90 s for 10,000), is 20 MB, its wheel declares no
  licence (Matomo's regexes are LGPL-3.0), and it calls ``axios/1.7.7`` and ``Wget`` a
  smartphone.

ua-parser reads the browser, the OS and the device family/brand/model (uap-core already
marks crawlers as the device family "Spider" and many tablets by family or the brand
"Generic_Android_Tablet"); ``_device_type`` turns those into one of ``DEVICE_TYPES`` with
the rules listed there. Unknown parts are ``""``, the value ``gateway_analytics`` stores
for "unknown" (rendered as null by the API), never ua-parser's placeholder "Other".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple

from ua_parser import BestAvailableResolver, Parser, Result, load_builtins

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")
# Enough for every distinct agent one client-analytics request may parse (10,000).
CACHE_SIZE = 16_384

_UNKNOWN = "Other"  # ua-parser's family when no rule matched
_TABLET_DEVICE = re.compile(r"\b(?:ipad|kindle|tablet|playbook|nexus (?:7|9|10))\b", re.I)
_TV_DEVICE = re.compile(r"\b(?:tv|smart-tv|inettv)\b", re.I)
_MOBILE_DEVICE_FAMILIES = frozenset(
    {"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"}
)
_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "Symbian OS",
     "Sailfish", "HarmonyOS", "Tizen"}
)  # fmt: skip
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Kubuntu", "Chrome OS", "Fedora",
     "Debian", "Red Hat", "CentOS", "SUSE", "Arch Linux", "Mint", "Gentoo", "FreeBSD",
     "OpenBSD", "NetBSD", "Solaris"}
)  # fmt: skip
# Android browsers say "Mobile" on phones and leave it out on tablets (Chrome's and
# Firefox's documented convention); only browsers follow it, not app HTTP clients.
_ANDROID_BROWSER = re.compile(r"\b(?:Safari|Firefox)/")
_MOBILE_TOKEN = re.compile(r"\bMobile\b")


class UserAgentInfo(NamedTuple):
    """What a user agent says, as stored in ``gateway_analytics`` (``""`` = unknown)."""

    device_type: str  # one of DEVICE_TYPES; "" only for an empty user agent
    browser: str
    browser_version: str
    os: str
    os_version: str
    is_bot: bool


@dataclass(frozen=True)
class AgentInfo:
    """The API's view of a user agent: ``None`` where the agent says nothing."""

    device_type: str | None
    browser: str | None
    os: str | None


@cache
def _parser() -> Parser:
    """Built on first use (about 0.15 s), not at import; no cache of its own, since
    ``classify_user_agent`` caches the finished answer."""
    return Parser(BestAvailableResolver(load_builtins()))


def _family(family: str | None) -> str:
    return "" if family in (None, _UNKNOWN) else str(family)


def _version(*parts: str | None) -> str:
    """Version parts as one dotted string, stopping at the first missing part."""
    present: list[str] = []
    for part in parts:
        if part is None:
            break
        present.append(part)
    return ".".join(present)


def _device_type(user_agent: str, result: Result) -> str:
    """The device class, by the first rule that holds:

    1. bot: ua-parser's device family "Spider" (crawlers, monitors, some HTTP libraries);
    2. other: a TV (device family/brand names a TV);
    3. tablet: device family/brand/model names an iPad, Kindle, tablet, PlayBook or Nexus
       7/9/10, or an Android browser that leaves out the "Mobile" token;
    4. mobile: an iPhone/iPod/generic phone, a mobile OS, or a "Mobile" browser family;
    5. desktop: a desktop OS;
    6. other: everything else (curl, SDKs, python-requests, unknown agents).
    """
    device, os, agent = result.device, result.os, result.user_agent
    if device is not None and device.family == "Spider":
        return "bot"
    names = " ".join(filter(None, (device.family, device.brand, device.model))) if device else ""
    os_family = os.family if os else ""
    if _TV_DEVICE.search(names):
        return "other"
    if _TABLET_DEVICE.search(names) or (
        os_family == "Android"
        and _ANDROID_BROWSER.search(user_agent)
        and not _MOBILE_TOKEN.search(user_agent)
    ):
        return "tablet"
    if (
        (device is not None and device.family in _MOBILE_DEVICE_FAMILIES)
        or os_family in _MOBILE_OS
        or (agent is not None and "Mobile" in agent.family)
    ):
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "other"


@lru_cache(maxsize=CACHE_SIZE)
def classify_user_agent(user_agent: str) -> UserAgentInfo:
    """device_type, browser (+version), OS (+version) and is_bot of a user agent; the
    one classification the demo generator and client analytics share."""
    if not user_agent:
        return UserAgentInfo("", "", "", "", "", is_bot=False)
    result = _parser().parse(user_agent)
    agent, os = result.user_agent, result.os
    device_type = _device_type(user_agent, result)
    return UserAgentInfo(
        device_type=device_type,
        browser=_family(agent.family) if agent else "",
        browser_version=_version(agent.major, agent.minor, agent.patch) if agent else "",
        os=_family(os.family) if os else "",
        os_version=_version(os.major, os.minor, os.patch) if os else "",
        is_bot=device_type == "bot",
    )


def parse_agent(user_agent: str) -> AgentInfo:
    """device_type, browser and OS family for the API; None where the agent says nothing
    (empty, or a family ua-parser does not know)."""
    info = classify_user_agent(user_agent)
    return AgentInfo(info.device_type or None, info.browser or None, info.os or None)


def agent_value(info: AgentInfo, column: str) -> str | None:
    """``info``'s value for a client-analytics filter column (device_type, browser, os)."""
    return getattr(info, column)
