"""One rule for key text (`materializer.values.key_from_text`): the CLI and the HTTP API
accept the same texts for key values and answer them the same way."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.columns import parse_type
from materializer.errors import UsageError
from materializer.keytext import key_from_text, text_converter
from materializer.specs import TableSpec
from tests.support.api import SpecWriter, cli_json, columns

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# one single-column-key table per keyable type, with a few stored keys each
KEYS: dict[str, list[Any]] = {
    "int": [7, -3, 0], "long": [2**40, -1], "float": [1.5, -0.0], "double": [2.25, 1e300],
    "boolean": [True], "string": ["null", "a/b", "ü %", "", "7"],
    "bytes": ["AAE=", "bnVsbA=="], "date": ["2024-02-29"], "time": ["12:30:00"],
    "timestamp": ["2024-01-01T00:00:00Z"], "uuid": ["12345678-1234-5678-1234-567812345678"],
    "decimal(10,2)": ["1.50"],
}
TEXTS: dict[str, list[str]] = {
    "int": ["7", "-3", "0", "8", "+7", " 7", "7.0", "1e3", "seven", "null", "", "٣",
            "99999999999", "1_000"],
    "long": ["1099511627776", "-1", "99999999999999999999", "nan", "null"],
    "float": ["1.5", "-0.0", "0", "1e400", "nan", "inf", "0x10", "1,5", "null"],
    "double": ["2.25", "1e300", ".5", "5.", "+1.5", "abc", "null"],
    "boolean": ["true", "false", "True", "1", "yes", "null", ""],
    "string": ["null", "NULL", "a/b", "ü %", "", "7", "none"],
    "bytes": ["AAE=", "bnVsbA==", "null", "not base64!", ""],
    "date": ["2024-02-29", "2024-02-30", "yesterday", "null"],
    "time": ["12:30:00", "25:00", "null"],
    "timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", "soon", "null"],
    "uuid": ["12345678-1234-5678-1234-567812345678", "12345678123456781234567812345678",
             "null", "x"],
    "decimal(10,2)": ["1.50", "1.5", "1.499", "abc", "null", "1e20"],
}


def _table(type_text: str) -> str:
    return "public.k_" + type_text.split("(")[0]


def _spec(type_text: str) -> TableSpec:
    cols = columns({"k": type_text, "v": "string"}, ["k"])
    return TableSpec(name=_table(type_text), topic=_table(type_text), columns=cols,
                     key_columns=("k",), key_format="json", value_format="json")


# ---------------------------------------------------------------------------- the rule


def test_null_is_text_not_a_null_key() -> None:
    string, integer = parse_type("string")[0], parse_type("int")[0]
    assert key_from_text(["k"], [string], ["null"]) == ("null",)
    assert key_from_text(["a", "b"], [string, integer], ["null", "-4"]) == ("null", -4)
    with pytest.raises(UsageError, match=r"key column 'b': expected an integer, got 'null'"):
        key_from_text(["a", "b"], [string, integer], ["x", "null"])


def test_prefixes_and_lengths() -> None:
    types = [parse_type("int")[0], parse_type("boolean")[0]]
    assert key_from_text(["a", "b"], types, []) == ()
    assert key_from_text(["a", "b"], types, ["1"]) == (1,)
    assert key_from_text(["a", "b"], types, ["1", "false"]) == (1, False)
    with pytest.raises(UsageError, match=r"has 2 value\(s\), got 3"):
        key_from_text(["a", "b"], types, ["1", "true", "x"])


def test_long_bad_text_is_shortened_in_the_message() -> None:
    with pytest.raises(UsageError) as err:
        key_from_text(["a"], [parse_type("int")[0]], ["x" * 10_000])
    assert len(str(err.value)) < 120


@pytest.mark.parametrize(("type_text", "text", "want"), [
    ("int", "-12", -12), ("long", "12345678901", 12345678901), ("double", "1e3", 1000.0),
    ("float", ".5", 0.5), ("boolean", "false", False), ("string", "null", "null"),
    ("uuid", "null", "null"), ("bytes", "AAE=", "AAE="), ("date", "2024-01-01", "2024-01-01"),
])
def test_text_converter(type_text: str, text: str, want: Any) -> None:
    assert text_converter(parse_type(type_text)[0])(text) == want


@pytest.mark.parametrize(("type_text", "text"), [
    ("int", "+1"), ("int", " 1"), ("int", "1.0"), ("int", "٣"), ("long", "1_000"),
    ("double", "nan"), ("double", "inf"), ("float", "0x1p3"), ("boolean", "True"),
    ("boolean", "1"), ("int", "null"), ("boolean", "null"), ("double", "null"),
])
def test_text_converter_refuses(type_text: str, text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        text_converter(parse_type(type_text)[0])(text)


# ------------------------------------------------------------- CLI and HTTP side by side


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TestClient]]:
    d = tmp_path_factory.mktemp("keytext")
    data = d / "data"
    tables = []
    for type_text, keys in KEYS.items():
        SpecWriter(str(data), _spec(type_text)).write(
            [({"k": k}, {"v": f"row {i}"}) for i, k in enumerate(keys)])
        tables.append(f"  - name: {_table(type_text)}\n    topic: {_table(type_text)}\n"
                      f"    columns: {{k: '{type_text}', v: string}}\n    primary_key: [k]\n")
    cfg = d / "t.yaml"
    cfg.write_text(f"store:\n  path: {data}\ntables:\n" + "".join(tables))
    with TestClient(create_app(str(data), None)) as client:
        yield str(cfg), client


@pytest.mark.parametrize(("type_text", "text"),
                         [(t, x) for t, texts in TEXTS.items() for x in texts])
def test_cli_get_and_http_row_agree(setup: tuple[str, TestClient],
                                    capsys: pytest.CaptureFixture[str],
                                    type_text: str, text: str) -> None:
    cfg, client = setup
    table = _table(type_text)
    code, rows, err = cli_json(capsys, "get", cfg, table, text)
    r = client.get(f"/tables/{table}/rows/{quote(text, safe='')}")
    assert {200: 0, 404: 1, 400: 2}[r.status_code] == code, (r.text, err)
    if code == 0:
        assert rows == [r.json()]
    elif code == 2:
        assert err == f"materializer: {r.json()['detail']}"


@pytest.mark.parametrize(("type_text", "text"),
                         [(t, x) for t, texts in TEXTS.items() for x in texts[:4]])
def test_cli_scan_prefix_and_http_prefix_agree(setup: tuple[str, TestClient],
                                               capsys: pytest.CaptureFixture[str],
                                               type_text: str, text: str) -> None:
    cfg, client = setup
    table = _table(type_text)
    code, rows, err = cli_json(capsys, "scan", cfg, table, "--prefix", text)
    r = client.get(f"/tables/{table}/rows", params={"prefix": text})
    assert {200: 0, 400: 2}[r.status_code] == code, (r.text, err)
    if code == 0:
        assert rows == r.json()["rows"]
    else:  # the store's `scan` (CLI) prefixes what its `scan_raw` (HTTP) says
        assert err.startswith("materializer: ") and err.endswith(r.json()["detail"])


def test_cli_get_reaches_the_string_key_null(setup: tuple[str, TestClient],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = setup
    assert cli_json(capsys, "get", cfg, "public.k_string", "null") == (
        0, [{"k": "null", "v": "row 0"}], "")
    code, rows, err = cli_json(capsys, "get", cfg, "public.k_int", "null")
    assert (code, rows) == (2, []) and "key column 'k'" in err and "'null'" in err
