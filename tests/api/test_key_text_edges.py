"""Key text at the edges, the CLI and the HTTP API side by side: double keys are never
rounded to another key (2^53 + 1, underflow), decimal key text is plain ASCII, command-line
values that are not UTF-8 and limits below 1 are usage errors (exit 2, never a
traceback), locally and with --url."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.columns import parse_type
from materializer.errors import NotFound
from materializer.keytext import text_converter
from materializer.specs import StreamSpec, TableSpec
from materializer.store import Store
from tests.support.api import SpecWriter, cli_json, columns

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _table(name: str, decl: dict[str, str], key: list[str]) -> TableSpec:
    return TableSpec(name=f"public.{name}", topic=name, columns=columns(decl, key),
                     key_columns=tuple(key), key_format="json", value_format="json")


DBL = _table("t_dbl", {"k": "double", "v": "string"}, ["k"])
DEC = _table("t_dec", {"k": "decimal(10,2)", "v": "string"}, ["k"])
STR = _table("t_str", {"k": "string", "v": "string"}, ["k"])
COMP = _table("t_comp", {"a": "string", "b": "int", "v": "string"}, ["a", "b"])
EVENTS = StreamSpec(name="public.s_str", topic="s_str",
                    columns=columns({"k": "string", "v": "string"}),
                    key_columns=("k",), key_format="json", value_format="json")
CFG = """store:
  path: {data}
tables:
  - {{name: t_dbl, topic: t_dbl, columns: {{k: double, v: string}}, primary_key: [k]}}
  - {{name: t_dec, topic: t_dec, columns: {{k: 'decimal(10,2)', v: string}}, primary_key: [k]}}
  - {{name: t_str, topic: t_str, columns: {{k: string, v: string}}, primary_key: [k]}}
  - {{name: t_comp, topic: t_comp, columns: {{a: string, b: int, v: string}},
      primary_key: [a, b]}}
streams:
  - {{name: s_str, topic: s_str, columns: {{k: string, v: string}}, key: [k]}}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TestClient]]:
    d = Path(tmp_path_factory.mktemp("key-text-edges"))
    data = d / "data"
    SpecWriter(str(data), DBL).write([(2.0**53, {"v": "2^53"}), (0.0, {"v": "zero"}),
                                      (0.1, {"v": "tenth"}), (1000.0, {"v": "thousand"})])
    SpecWriter(str(data), DEC).write([("1.00", {"v": "one"}), ("10.00", {"v": "ten"})])
    SpecWriter(str(data), STR).write([("a", {"v": "A"})])
    SpecWriter(str(data), COMP).write([({"a": "x", "b": 1}, {"v": "x1"})])
    SpecWriter(str(data), EVENTS).write([("a", {"v": str(i)}) for i in range(3)])
    cfg = d / "t.yaml"
    cfg.write_text(CFG.format(data=data))
    with TestClient(create_app(str(data), None)) as client:
        yield str(cfg), client


# --------------------------------------------------------------- the rule itself

EXACT_DOUBLES = [("1.5", 1.5), ("0.1", 0.1), ("-0", -0.0), ("1e3", 1000.0), ("1E3", 1000.0),
                 ("0.10", 0.1), ("5.", 5.0), (".5", 0.5), ("1e300", 1e300),
                 ("9007199254740992", 2.0**53), ("9007199254740992.000", 2.0**53),
                 ("0.30000000000000004", 0.1 + 0.2), ("5e-324", 5e-324),
                 ("0.1000000000000000055511151231257827021181583404541015625", 0.1)]
ROUNDED_DOUBLES = ["9007199254740993", "-9007199254740993", "1e-999", "-1e-400", "1e400",
                   "0.1000000000000000001", "4.9406564584124654e-324", "123456789012345678"]


@pytest.mark.parametrize("type_text", ["double", "float"])
@pytest.mark.parametrize(("text", "want"), EXACT_DOUBLES)
def test_double_text_that_is_a_double_exactly_or_its_shortest_text(
        type_text: str, text: str, want: float) -> None:
    got = text_converter(parse_type(type_text)[0])(text)
    assert got == want and str(got) == str(want)  # -0.0 stays -0.0


@pytest.mark.parametrize("type_text", ["double", "float"])
@pytest.mark.parametrize("text", ROUNDED_DOUBLES)
def test_double_text_that_would_be_rounded_is_refused(type_text: str, text: str) -> None:
    with pytest.raises(ValueError, match="not exactly a double|beyond the range"):
        text_converter(parse_type(type_text)[0])(text)


@pytest.mark.parametrize("text", [" 1", "1.00 ", "\uff11", "1_0", "\u0661", "NaN", "1,5", ""])
def test_decimal_key_text_must_be_plain(text: str) -> None:
    with pytest.raises(ValueError, match="expected a decimal number"):
        text_converter(parse_type("decimal(10,2)")[0])(text)


@pytest.mark.parametrize("text", ["1", "1.00", "-1.5", "+.5", "1e1", "1E-2", "1."])
def test_plain_decimal_key_text_is_kept_for_the_column(text: str) -> None:
    assert text_converter(parse_type("decimal(10,2)")[0])(text) == text


def test_a_base64_decimal_key_keeps_base64_text() -> None:
    b64 = dataclasses.replace(parse_type("decimal(10,2)")[0], encoding="base64")
    assert text_converter(b64)("AeI=") == "AeI="


# ------------------------------------------------------- CLI and HTTP agree

GETS = [("t_dbl", "9007199254740993", 2), ("t_dbl", "1e-999", 2), ("t_dbl", "1e400", 2),
        ("t_dbl", "9007199254740992", 0), ("t_dbl", "0", 0), ("t_dbl", "0.1", 0),
        ("t_dbl", "1e3", 0), ("t_dbl", "0.2", 1),
        ("t_dec", "1", 0), ("t_dec", "1.00", 0), ("t_dec", "1e1", 0), ("t_dec", " 1", 2),
        ("t_dec", "1.00 ", 2), ("t_dec", "\uff11", 2), ("t_dec", "1_0", 2)]


@pytest.mark.parametrize(("table", "text", "want"), GETS)
def test_cli_get_and_http_agree(setup: tuple[str, TestClient],
                                capsys: pytest.CaptureFixture[str],
                                table: str, text: str, want: int) -> None:
    cfg, client = setup
    code, rows, err = cli_json(capsys, "get", cfg, table, text)
    r = client.get(f"/tables/{table}/rows/{quote(text, safe='')}")
    assert {200: 0, 404: 1, 400: 2}[r.status_code] == code == want, (r.text, err)
    if code == 0:
        assert rows == [r.json()]
    elif code == 2:
        assert err == f"materializer: {r.json()['detail']}"


def test_the_row_of_2_pow_53_answers_its_own_key_only(setup: tuple[str, TestClient]) -> None:
    _, client = setup
    assert client.get("/tables/t_dbl/rows/9007199254740992").json()["v"] == "2^53"
    r = client.get("/tables/t_dbl/rows/9007199254740993")
    assert r.status_code == 400 and "9007199254740992.0" in r.json()["detail"]
    r = client.post("/tables/t_dbl/lookup", json={"keys": [[9007199254740993]]})
    assert r.status_code == 400  # as the JSON integer


# ------------------------------------------- not UTF-8, limits: usage errors

BAD = "\udcff"  # what Python makes of the argv byte 0xff


@pytest.mark.parametrize("url", [[], ["--url", "http://127.0.0.1:9"]])
@pytest.mark.parametrize("argv", [
    ["get", "t_str", BAD], ["get", "t_comp", BAD, "1"], ["get", "s_str", BAD],
    ["get", "t_str", "a\ud800"], ["scan", "t_str", "--prefix", BAD],
    ["scan", "t_comp", "--prefix", "x", BAD]])
def test_cli_key_text_that_is_not_utf8_is_a_usage_error(
        setup: tuple[str, TestClient], capsys: pytest.CaptureFixture[str],
        argv: list[str], url: list[str]) -> None:
    cfg, _ = setup
    code, rows, err = cli_json(capsys, argv[0], cfg, *argv[1:], *url)
    assert (code, rows) == (2, []), err
    assert "is not UTF-8 text" in err and "Traceback" not in err


@pytest.mark.parametrize("url", [[], ["--url", "http://127.0.0.1:9"]])
@pytest.mark.parametrize("argv", [
    ["scan", "t_str", "--limit", "0"], ["scan", "t_str", "--limit", "-3"],
    ["scan", "s_str", "--limit", "0"], ["scan", "t_comp", "--prefix", "x", "--limit", "0"],
    ["get", "s_str", "a", "--limit", "0"], ["get", "s_str", "a", "--limit", "-1"]])
def test_cli_limit_below_one_is_a_usage_error(setup: tuple[str, TestClient],
                                              capsys: pytest.CaptureFixture[str],
                                              argv: list[str], url: list[str]) -> None:
    cfg, _ = setup
    if url and argv[:2] == ["scan", "s_str"]:
        url = []  # scan --url reads tables only
    code, rows, err = cli_json(capsys, argv[0], cfg, *argv[1:], *url)
    assert (code, rows) == (2, []), err
    assert "--limit must be 1 or more" in err


def test_cli_limits_of_one_answer(setup: tuple[str, TestClient],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = setup
    assert cli_json(capsys, "scan", cfg, "t_dbl", "--limit", "1")[:2] == (
        0, [{"k": 0.0, "v": "zero"}])
    code, rows, _ = cli_json(capsys, "get", cfg, "s_str", "a", "--limit", "1")
    assert (code, [r["v"] for r in rows]) == (0, ["2"])


def test_a_real_process_given_a_non_utf8_byte_exits_2(setup: tuple[str, TestClient]) -> None:
    cfg, _ = setup
    for argv in ([b"get", cfg.encode(), b"t_str", b"\xff"],
                 [b"get", cfg.encode(), b"t_comp", b"\xff", b"1"],
                 [b"get", cfg.encode(), b"s_str", b"\xff"]):
        p = subprocess.run([sys.executable.encode(), b"-m", b"materializer", *argv],
                           capture_output=True, timeout=60, check=False)
        err = p.stderr.decode("utf-8", "replace")
        assert p.returncode == 2, err
        assert "is not UTF-8 text" in err and "Traceback" not in err


def test_a_repeated_cli_prefix_is_the_composite_prefix(setup: tuple[str, TestClient],
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    cfg, client = setup
    together = cli_json(capsys, "scan", cfg, "t_comp", "--prefix", "x", "1")
    repeated = cli_json(capsys, "scan", cfg, "t_comp", "--prefix", "x", "--prefix", "1")
    assert together[:2] == repeated[:2] == (0, [{"a": "x", "b": 1, "v": "x1"}])
    assert cli_json(capsys, "scan", cfg, "t_comp", "--prefix", "y", "--prefix", "1")[:2] == (0, [])
    http = client.get("/tables/t_comp/rows", params=[("prefix", "x"), ("prefix", "1")])
    assert [r["v"] for r in http.json()["rows"]] == ["x1"]


def test_a_table_name_that_is_not_unicode_text_is_not_found(setup: tuple[str, TestClient]
                                                            ) -> None:
    cfg, _ = setup
    data = Path(cfg).parent / "data"
    with Store(data) as store, pytest.raises(NotFound, match="Unicode"):
        store.table("\ud800")


@pytest.mark.parametrize(("kind", "text"), [("timestamp", "1700000000000"),
                                            ("timestamp", "1700000000"), ("date", "19845"),
                                            ("date", "-5"), ("time", "450000000")])
def test_a_temporal_key_given_as_a_number_says_to_write_iso_text(kind: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"a {kind} key is ISO 8601 text .*not a number"):
        text_converter(parse_type(kind)[0])(text)


@pytest.mark.parametrize(("kind", "text"), [("date", "20240501"), ("time", "123000"),
                                            ("time", "1230"), ("timestamp", "2024-05-01T12:30Z")])
def test_iso_basic_forms_are_still_key_text(kind: str, text: str) -> None:
    assert text_converter(parse_type(kind)[0])(text) == text
