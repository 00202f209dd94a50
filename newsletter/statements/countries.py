"""The country list of the sign-on form: ISO 3166-1 alpha-2 codes, names from CLDR (Babel)."""

from __future__ import annotations

from functools import lru_cache

from babel import Locale

# CLDR territories that are not countries (unknown, groupings, pseudo-regions).
NOT_COUNTRIES = {"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"}


@lru_cache(maxsize=8)
def countries(language: str) -> tuple[tuple[str, str], ...]:
    """(code, name) of every country, named and sorted in `language`."""
    names = Locale.parse(language).territories
    found = [(code, name) for code, name in names.items()
             if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES]
    return tuple(sorted(found, key=lambda item: item[1].casefold()))


def country_name(code: str, language: str) -> str:
    """A country's name in a language; the code itself when CLDR has none."""
    return dict(countries(language)).get(code, code)


def is_country(code: str) -> bool:
    """True for an ISO 3166-1 alpha-2 code of a country (upper case)."""
    return code in dict(countries("en"))
