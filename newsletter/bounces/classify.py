"""What kind of failure a report describes, from everything it says (STANDARDS.md).

Real reports often carry a generic `Status: 5.0.0` and say the reason only in the remote
server's words, so the sources are read from the most specific to the least:

1. an enhanced code (RFC 3463) about the address, the mailbox or policy (x.1.x, x.2.x, x.7.x),
   in Status, else in the Diagnostic-Code (a generic 5.0.0 Status says nothing);
2. phrases in the Diagnostic-Code, then in the report's human-readable text: over quota
   (soft), unknown user (hard), policy or spam block, a sender refused by the recipient,
   relaying denied or a message too big (policy), in English, French, Spanish and German,
   as those servers word them;
3. an enhanced code about the address, mailbox or policy in the human-readable text
   (qmail's "(#4.4.1)", an X.400 gateway's "5.7.1 Unable to relay");
4. the class of the code: a 4.x.x / 4yz is soft, a 5.x.x / 5yz hard.

Kinds: hard (suppress), soft (count), policy (record only: a block proves nothing about the
address). x.2.2 "mailbox full" is soft even as 5.2.2; x.2.3 and x.3.4 (message too big) are
about the message, not the address, so they are recorded like a policy block.
"""

from __future__ import annotations

import re

# An enhanced code not inside an IP address or a version number.
ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_REPLY = re.compile(r"(?<![\d.])([245])\d\d(?=[ \-]|$)")

_QUOTA = re.compile("|".join([
    r"mail ?box (?:is |was )?full", r"full mail ?box", r"over ?quota",
    r"over (?:the |its |their |his |her )?(?:allowed |storage |disk )*quota",
    r"quota (?:was |has been )?exceeded",
    r"exceed(?:s|ed)? (?:\w+ )?(?:the |their |his |her |its |storage |disk )*quota",
    r"quota (?:limit|full)", r"disk quota", r"storage (?:quota|allocation|limit)",
    r"insufficient (?:disk |storage )?space", r"not enough (?:disk |storage )?space",
    r"mail ?box (?:size |storage )?(?:limit|quota)", r"mail ?box (?:is )?over",
    r"out of (?:disk |storage )?space", r"too many messages in (?:this|the) mail ?box",
    r"quota violation", r"exceeding (?:the |its |their |his |her )?(?:storage |disk )?quota",
    r"mail ?folder (?:is )?(?:full|over)",
    # French
    r"bo[iî]te (?:aux lettres|mail|de r[ée]ception)?[^.;]{0,40}pleine",
    r"quota (?:est )?d[ée]pass[ée]", r"d[ée]passement (?:de |du )?quota",
    r"espace (?:disque |de stockage )?insuffisant",
    # Spanish
    r"buz[oó]n[^.;]{0,40}lleno", r"cuota (?:est[aá] )?excedida",
    r"(?:ha )?exced(?:e|ido) (?:la |su )?cuota", r"sin espacio",
    # German
    r"postfach[^.;]{0,40}(?:voll|[üu]berf[üu]llt)\b", r"mailbox (?:ist )?voll",
    r"(?:quota|kontingent|speicherplatz) (?:ist )?(?:[üu]berschritten|ersch[öo]pft|voll)",
    r"speicher(?:platz|kapazit[äa]t) (?:des postfachs )?(?:ist )?(?:ersch[öo]pft|voll)",
]), re.IGNORECASE)

_UNKNOWN_USER = re.compile("|".join([
    r"user unknown", r"unknown (?:user|recipient|mailbox|address)", r"no such (?:user|"
    r"mailbox|recipient|address)", r"(?:does not|doesn'?t|did not) exist", r"invalid (?:recipient|"
    r"mailbox|address)", r"recipient (?:address )?(?:rejected|unknown|not found)",
    r"mailbox (?:not found|unavailable|disabled|does not exist)", r"no mailbox here",
    r"account (?:is |has been )?(?:disabled|deactivated|closed|suspended|inactive)",
    r"(?:address|user|account) (?:is )?no longer (?:active|valid|in use)",
    r"doesn'?t have an? [\w.\-]+ account", r"not a valid (?:user|mailbox|recipient)",
    r"address (?:not found|rejected)", r"user not known", r"invalid final delivery userid",
    r"recipient name is not recognized",
    r"not listed in (?:the )?(?:domino directory|public name (?:&|and) address book)",
    # French
    r"utilisateur inconnu", r"destinataire inconnu", r"adresse (?:inconnue|invalide|introuvable)",
    r"n'existe pas", r"compte (?:d[ée]sactiv[ée]|inexistant)",
    # Spanish
    r"usuario (?:desconocido|inexistente|no existe)", r"destinatario (?:desconocido|no existe)",
    r"direcci[oó]n (?:no v[aá]lida|inexistente|desconocida)", r"no existe",
    # German
    r"(?:benutzer|empf[äa]nger|adresse|postfach) (?:ist )?(?:unbekannt|existiert nicht)",
    r"unbekannte(?:r)? (?:benutzer|empf[äa]nger|adresse)", r"existiert nicht",
    r"ung[üu]ltige (?:adresse|empf[äa]ngeradresse)",
]), re.IGNORECASE)

_POLICY = re.compile("|".join([
    r"spam", r"unsolicited", r"junk", r"bulk mail", r"blacklist", r"black list", r"blocklist",
    r"block list", r"denylist", r"blocked", r"listed (?:at|on|in|by)", r"reputation",
    r"rbl", r"dnsbl", r"spamhaus", r"spamcop", r"barracuda", r"policy", r"dmarc", r"\bspf\b",
    r"dkim", r"not authori[sz]ed", r"rejected (?:for|due to|because of|as) (?:content|policy|"
    r"security)", r"content (?:was )?rejected", r"virus", r"malware", r"phishing",
    r"rate limit", r"too many (?:messages|connections|recipients)",
    r"not accepting (?:mail|messages|e-?mail) from",
    r"unable to relay", r"relay(?:ing)? (?:access )?(?:denied|not permitted)",
    r"maximum (?:incoming )?message size", r"message (?:size )?(?:is )?too (?:large|big)",
    r"message size exceeds",
    # French
    r"ind[ée]sirable", r"pourriel", r"bloqu[ée]", r"liste noire", r"politique",
    # Spanish
    r"no deseado", r"bloquead[oa]", r"lista negra", r"pol[ií]tica",
    # German
    r"unerw[üu]nscht", r"blockiert", r"sperrliste", r"schwarze(?:n)? liste", r"richtlinie",
    r"als spam",
]), re.IGNORECASE)

_NOT_FAILURES = ("delivered", "relayed", "expanded")


def code_kind(klass: str, subject: str, detail: str) -> str:
    """hard, soft or policy for one enhanced code."""
    if subject == "2" and detail == "2":
        return "soft"
    if klass == "4":
        return "soft"
    if subject == "7" or (subject, detail) in (("2", "3"), ("3", "4")):
        return "policy"
    return "hard" if klass == "5" else "unknown"


def _specific(text: str) -> tuple[str, str] | None:
    """(kind, code) for an enhanced code about the address, mailbox or policy."""
    match = ENHANCED.search(text or "")
    if match is None:
        return None
    klass, subject, detail = match.groups()
    if subject in ("1", "2", "7") or (klass == "4" and subject != "0"):
        return code_kind(klass, subject, detail), match.group(0)
    return None


def phrase_kind(text: str) -> str:
    """soft, hard or policy when the words say so, else ''."""
    if not text:
        return ""
    if _QUOTA.search(text):
        return "soft"
    if _UNKNOWN_USER.search(text):
        return "hard"
    if _POLICY.search(text):
        return "policy"
    return ""


def classify(status: str = "", diagnostic: str = "", text: str = "",
             action: str = "failed") -> tuple[str, str]:
    """(kind, why) from a report's Status, Diagnostic-Code, human text and DSN Action.

    `action` is "" for a report that is not a DSN: then nothing found means "unknown".

    `why` names the deciding source: "diagnostic 5.7.1", "status 5.1.1", "diagnostic words",
    "text words", "status class", "reply class" or "action".
    """
    action = action.lower()
    if action in _NOT_FAILURES:
        return "unknown", "action"
    if action == "delayed":
        return "soft", "action"
    for source, value in (("status", status), ("diagnostic", diagnostic)):
        found = _specific(value)
        if found is not None:
            return found[0], f"{source} {found[1]}"
    for source, value in (("diagnostic", diagnostic), ("text", text)):
        kind = phrase_kind(value)
        if kind:
            return kind, f"{source} words"
    found = _specific(text)  # "(#4.4.1)" or "5.7.1 Unable to relay" in the report's words
    if found is not None:
        return found[0], f"text {found[1]}"
    for source, value in (("status", status), ("diagnostic", diagnostic)):
        match = ENHANCED.search(value or "")
        if match is not None:
            return code_kind(*match.groups()), "status class" if source == "status" else \
                "reply class"
    reply = _REPLY.search(diagnostic or "")
    if reply is not None:
        return ("soft" if reply.group(1) == "4" else "hard"), "reply class"
    return ("hard" if action == "failed" else "unknown"), "action"
