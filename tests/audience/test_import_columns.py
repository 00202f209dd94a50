"""Import of files headed in French or Spanish, --column, the plan shown before writing."""

from __future__ import annotations

import pytest

from newsletter.audience.importer import ImportFileError, import_csv
from newsletter.audience.listedits import add_list
from newsletter.audience.subscribers import iter_subscribers
from tests.audience.conftest import write
from tests.conftest import Cli, akey

FRENCH = (
    "Email;Nom;Langue;Ville\r\n"
    "amina@example.org;Amina Diallo;fr;Dakar\r\n"
    "carlos@example.org;Carlos Méndez;es;Bogotá\r\n"
    "sarah@example.org;Sarah Okafor;en;Lagos\r\n"
    "li@example.org;Li Wei;Français;\r\n"
    "rosa@example.org;Rosa;Español;\r\n"
    "john@example.org;John;Inglés;\r\n"
)




def people(services) -> dict[str, tuple[str, str | None, dict]]:
    return {r.email: (r.name, r.language, r.attributes)
            for r in iter_subscribers(services.engine, list_slug="news")}


def test_a_file_headed_email_nom_langue_keeps_names_and_languages(services, news, tmp_path):
    report = import_csv(services.engine, path=write(tmp_path, FRENCH), list_slug="news",
                        address_key=akey(services))
    assert report.accepted == 6 and not report.rejected
    got = people(services)
    assert got["amina@example.org"] == ("Amina Diallo", "fr", {"Ville": "Dakar"})
    assert got["carlos@example.org"][:2] == ("Carlos Méndez", "es")
    assert {e: v[1] for e, v in got.items()} == {
        "amina@example.org": "fr", "carlos@example.org": "es", "sarah@example.org": "en",
        "li@example.org": "fr", "rosa@example.org": "es", "john@example.org": "en"}
    assert report.languages == {"en": 2, "es": 2, "fr": 2}
    assert report.plan is not None
    assert report.plan.columns == {"email": "Email", "name": "Nom", "language": "Langue",
                                   "attributes": ["Ville"]}


@pytest.mark.parametrize("header", [
    "Courriel,Nom complet,Langue préférée",
    "Correo electrónico,Nombre,Idioma",
    "  E-MAIL: ,Name,LANGUAGE",
    "Adresse e-mail,nom,langue",
    "correo,nombre,lengua",
])
def test_french_and_spanish_header_variants_are_recognised(services, news, tmp_path, header):
    text = f"{header}\namina@example.org,Amina Diallo,fr\ncarlos@example.org,Carlos,es\n"
    import_csv(services.engine, path=write(tmp_path, text), list_slug="news",
               address_key=akey(services))
    assert people(services) == {"amina@example.org": ("Amina Diallo", "fr", {}),
                                "carlos@example.org": ("Carlos", "es", {})}


@pytest.mark.parametrize(("header", "row", "columns_name"), [
    ("Courriel;Prénom;Nom;Langue", "amina@example.org;Amina;Diallo;fr", "Prénom + Nom"),
    ("Correo;Nombre;Apellidos;Idioma", "amina@example.org;Amina;Diallo;fr", "Nombre + Apellidos"),
    ("Email;Last name;First name;Language", "amina@example.org;Diallo;Amina;fr",
     "First name + Last name"),
])
def test_a_name_split_in_two_columns_is_joined_first_name_first(services, news, tmp_path,
                                                                header, row, columns_name):
    report = import_csv(services.engine, path=write(tmp_path, f"{header}\n{row}\n"),
                        list_slug="news", address_key=akey(services))
    assert people(services) == {"amina@example.org": ("Amina Diallo", "fr", {})}
    assert report.plan is not None and report.plan.columns["name"] == columns_name


def test_column_option_names_any_other_header(services, news, tmp_path):
    text = "Contacto;Persona;Habla\namina@example.org;Amina;fr\n"
    path = write(tmp_path, text)
    with pytest.raises(ImportFileError, match="no email column"):
        import_csv(services.engine, path=path, list_slug="news", address_key=akey(services))
    import_csv(services.engine, path=path, list_slug="news", address_key=akey(services),
               columns={"email": "Contacto", "name": "persona", "language": "Habla"})
    assert people(services) == {"amina@example.org": ("Amina", "fr", {})}


def test_without_a_language_column_existing_subscribers_keep_their_language(
        services, news, tmp_path):
    import_csv(services.engine, path=write(tmp_path, FRENCH), list_slug="news",
               address_key=akey(services))
    names_only = write(tmp_path, "Courriel;Nom\namina@example.org;Amina D.\nnew@example.org;N\n",
                       "names.csv")
    report = import_csv(services.engine, path=names_only, list_slug="news",
                        address_key=akey(services))
    assert report.plan is not None and report.plan.defaulted
    got = people(services)
    assert got["amina@example.org"][:2] == ("Amina D.", "fr")
    assert got["new@example.org"][1] == "en"


@pytest.fixture
def cli_news(run: Cli) -> Cli:
    run("lists", "add", "news", "--name", "News", "--languages", "en,fr,es",
        "--default-language", "en")
    return run


def test_the_mapping_and_languages_are_printed_before_the_summary(cli_news, tmp_path):
    path = str(write(tmp_path, FRENCH))
    for extra in ((), ("--dry-run",)):
        out = cli_news("subscribers", "import", path, "--list", "news", *extra).output
        mapping = out.index("columns: email <- 'Email', name <- 'Nom', language <- 'Langue'")
        assert "kept as attributes: Ville" in out
        assert out.index("languages: en 2, es 2, fr 2") > mapping
        assert out.index("6 rows:") > mapping
    report = cli_news.json("subscribers", "import", path, "--list", "news", "--dry-run")
    assert report["columns"]["language"] == "Langue"
    assert report["languages"] == {"en": 2, "es": 2, "fr": 2}
    assert report["notices"] == []


def test_no_language_column_warns_loudly_and_strict_refuses(cli_news, tmp_path):
    path = str(write(tmp_path, "Courriel;Nom\na@example.org;A\nb@example.org;B\n"))
    strict = cli_news("subscribers", "import", path, "--list", "news", "--strict", ok=False)
    assert strict.exit_code == 1
    assert "no language column" in strict.output and "2 rows" in strict.output
    assert "Traceback" not in strict.output
    assert cli_news.json("subscribers", "list", "--list", "news") == []
    result = cli_news("subscribers", "import", path, "--list", "news")
    assert "WARNING: no language column found: all 2 rows get the list's default language 'en'" \
        in result.output
    assert "language: (none)" in result.output
    assert len(cli_news.json("subscribers", "list", "--list", "news")) == 2
    report = cli_news.json("subscribers", "import", path, "--list", "news", "--dry-run")
    assert "all 2 rows get the list's default language 'en'" in report["notices"][0]


def test_a_bad_column_option_is_one_line(cli_news, tmp_path):
    path = str(write(tmp_path, "Courriel;Nom\na@example.org;A\n"))
    for option, words in (("colour=Nom", "unknown field 'colour'"),
                          ("language=Idioma", "no such column"),
                          ("language", "FIELD=HEADER")):
        result = cli_news("subscribers", "import", path, "--list", "news", "--column", option,
                          ok=False)
        assert result.exit_code == 1 and words in result.output
        assert result.output.count("\n") == 1, result.output


def test_language_names_are_read_in_the_list_languages_too(services, tmp_path):
    add_list(services.engine, slug="news", name="News", languages=["en", "de"],
             default_language="en")
    text = "email,language\nx@example.org,Deutsch\ny@example.org,Anglais\nz@example.org,Alemán\n"
    import_csv(services.engine, path=write(tmp_path, text), list_slug="news",
               address_key=akey(services))
    assert {e: v[1] for e, v in people(services).items()} == {
        "x@example.org": "de", "y@example.org": "en", "z@example.org": "de"}


def test_a_single_language_list_needs_no_language_column(run: Cli, tmp_path):
    run("lists", "add", "news", "--name", "News", "--languages", "fr")
    path = str(write(tmp_path, "Courriel;Nom\na@example.org;A\n"))
    result = run("subscribers", "import", path, "--list", "news", "--strict")
    assert "WARNING" not in result.output and "languages: fr 1" in result.output
