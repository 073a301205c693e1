"""The Go text/template subset used by --format."""

from __future__ import annotations

from typing import Any

import pytest

from hafen.cli.template import TemplateError, go_str, preprocess, render, render_rows

DATA: dict[str, Any] = {
    "Id": "abc",
    "Name": "/web",
    "State": {"Running": True, "ExitCode": 0, "Pid": 42, "Health": None},
    "Config": {
        "Env": ["A=1", "B=2"],
        "Labels": {"b": "2", "a": "1"},
        "Cmd": ["sh", "-c", "echo <hi> & bye"],
        "Image": "busybox:latest",
    },
    "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}},
    "Ratio": 0.5,
    "Big": 1e6,
    "Empty": [],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Id}}", "abc"),
        ("{{.State.Running}}", "true"),
        ("{{.State.Pid}}", "42"),
        ("{{.State.Health}}", "<nil>"),
        ("{{.Missing}}", "<no value>"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ("{{.Ratio}} {{.Big}}", "0.5 1000000"),
        ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
        ("{{.Config.Cmd | json}}", '["sh","-c","echo <hi> & bye"]'),
        ("{{json .State.Health}}", "null"),
        ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
        ("{{range $i, $e := .Config.Env}}{{$i}}={{$e}} {{end}}", "0=A=1 1=B=2 "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}};{{end}}", "a:1;b:2;"),
        ("{{range .Empty}}x{{else}}none{{end}}", "none"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ("{{if not .State.Running}}down{{else if .Id}}id{{else}}x{{end}}", "id"),
        ("{{if eq .State.ExitCode 0}}ok{{end}}", "ok"),
        ("{{if and .State.Running (gt .State.Pid 1)}}yes{{end}}", "yes"),
        ("{{with .Config}}{{.Image}}{{end}}", "busybox:latest"),
        ('{{index .Config.Labels "a"}}', "1"),
        ('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}', "8080"),
        ('{{join .Config.Env ","}}', "A=1,B=2"),
        ('{{split .Config.Image ":"}}', "[busybox latest]"),
        ('{{upper .Name}} {{lower "ABC"}} {{title "hello world"}}', "/WEB abc Hello World"),
        ("{{len .Config.Env}}", "2"),
        ("{{println .Id}}", "abc\n"),
        ('{{printf "%s has %d" .Id 3}}', "abc has 3"),
        ("{{pad .Id 1 2}}|{{truncate .Config.Image 4}}", " abc  |busy"),
        ("{{$x := .State}}{{$x.Pid}}", "42"),
        ("{{/* a comment */}}ok", "ok"),
        ("a  {{- .Id -}}  b", "aabcb"),
        ("{{`raw \\n`}}", "raw \\n"),
        ("{{range .Config.Env}}{{$.Id}}{{end}}", "abcabc"),
    ],
)
def test_renders_like_go_text_template(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    "template",
    ["{{if .Id}}x", "{{end}}", "{{nosuch .Id}}", "{{.Id", "{{else}}", "{{range}}{{end}}"],
)
def test_rejects_broken_templates(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, DATA)


def test_go_str_formats_nested_values() -> None:
    assert go_str({"a": [1, True, None], "b": {}}) == "map[a:[1 true <nil>] b:map[]]"
    assert go_str(2.0) == "2"
    assert go_str(False) == "false"


def test_preprocess_table_json_and_escapes() -> None:
    assert preprocess("table {{.ID}}\\t{{.Names}}") == (True, "{{.ID}}\t{{.Names}}")
    assert preprocess("json") == (False, "{{json .}}")
    assert preprocess("{{.ID}}") == (False, "{{.ID}}")


class _Row:
    def __init__(self, ident: str, labels: dict[str, str]) -> None:
        self.ID = ident
        self._labels = labels

    def Label(self, name: str) -> str:
        return self._labels.get(name, "")

    def __template_json__(self) -> dict[str, str]:
        return {"ID": self.ID}


def test_render_rows_table_has_header_and_aligned_columns() -> None:
    rows = [_Row("a1", {"k": "v"}), _Row("b22222", {})]
    out = render_rows(
        'table {{.ID}}\t{{.Label "k"}}', rows, {"ID": "CONTAINER ID", "Label": "LABEL"}
    )
    assert out == "CONTAINER ID   LABEL\na1             v\nb22222         \n"


def test_render_rows_plain_template_and_json_directive() -> None:
    rows = [_Row("a1", {}), _Row("b2", {})]
    assert render_rows("{{.ID}}", rows) == "a1\nb2\n"
    assert render_rows("json", rows) == '{"ID":"a1"}\n{"ID":"b2"}\n'
    assert render_rows("{{.ID}}", []) == ""


def test_unknown_field_on_a_row_object_is_an_error() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        render_rows("{{.Nope}}", [_Row("a", {})])
