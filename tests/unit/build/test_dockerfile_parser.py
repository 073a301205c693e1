"""The Dockerfile parser: directives, comments, continuations, heredocs, forms, errors."""

from __future__ import annotations

import pytest

from hafen.build.dockerfile import DockerfileSyntaxError, parse


def test_directives_only_at_the_top_and_escape_backtick() -> None:
    df = parse("# escape=`\n# syntax=docker/dockerfile:1\nFROM x\nRUN a `\n  b\n")
    assert df.escape == "`" and df.directives["syntax"] == "docker/dockerfile:1"
    assert df.nodes[1].args == ["a   b"]
    later = parse("# comment\n# escape=`\nFROM x\nRUN a `\n")
    assert later.escape == "\\" and "escape" not in later.directives
    assert later.nodes[1].args == ["a `"]


def test_directive_whitespace_and_case_are_ignored() -> None:
    assert parse("#\tEsCaPe = `\nFROM x\n").escape == "`"


def test_duplicate_or_invalid_escape_directive_is_an_error() -> None:
    with pytest.raises(DockerfileSyntaxError, match="only one escape"):
        parse("# escape=`\n# escape=\\\nFROM x\n")
    with pytest.raises(DockerfileSyntaxError, match="invalid escape token"):
        parse("# escape=x\nFROM x\n")


def test_comments_removed_even_inside_continuations_and_hash_in_args_kept() -> None:
    df = parse(
        "FROM x\n  # indented comment\nRUN echo hello \\\n# comment\n\nworld\nRUN echo '#1'\n"
    )
    assert [n.args for n in df.nodes[1:]] == [["echo hello world"], ["echo '#1'"]]
    assert (df.nodes[1].start_line, df.nodes[1].end_line) == (3, 6)


def test_continuation_allows_trailing_whitespace_and_leading_whitespace_is_kept() -> None:
    df = parse('FROM x\nRUN echo "\\  \n     hello\\\n     world"\n')
    assert df.nodes[1].args == ['echo "     hello     world"']


def test_instructions_are_case_insensitive_and_unknown_ones_name_file_and_line() -> None:
    assert parse("from x\nrun y\n").nodes[1].keyword == "run"
    with pytest.raises(
        DockerfileSyntaxError, match=r"^Dockerfile\.dev:3: unknown instruction: RUNN"
    ):
        parse("FROM x\n\nRUNN y\n", filename="Dockerfile.dev")


def test_exec_form_json_and_invalid_json_is_shell_form() -> None:
    df = parse('FROM x\nCMD ["a", "b c"]\nCMD [a, b]\nENTRYPOINT ["a", 1]\nRUN ["c:\\windows"]\n')
    assert (df.nodes[1].args, df.nodes[1].json_form) == (["a", "b c"], True)
    assert (df.nodes[2].args, df.nodes[2].json_form) == (["[a, b]"], False)
    assert df.nodes[3].json_form is False  # not all strings
    assert df.nodes[4].json_form is False  # invalid escape in JSON


def test_flags_are_split_from_arguments() -> None:
    node = parse("FROM x\nCOPY --from=build --chown=1:2 --chmod=755 a b /dst/\n").nodes[1]
    assert node.flags == ["--from=build", "--chown=1:2", "--chmod=755"]
    assert node.args == ["a", "b", "/dst/"]
    run = parse('FROM x\nRUN --mount=type=cache,target=/c --network=none echo "--x"\n').nodes[1]
    assert run.flags == ["--mount=type=cache,target=/c", "--network=none"]
    assert run.args == ['echo "--x"']


def test_copy_json_form_keeps_spaces_in_names() -> None:
    node = parse('FROM x\nCOPY ["a b", "/c d/"]\n').nodes[1]
    assert node.args == ["a b", "/c d/"] and node.json_form


def test_env_and_label_pairs_and_legacy_form() -> None:
    df = parse(
        'FROM x\nENV A=1 B="x y" C=a\\ b\nENV legacy hello  world\nLABEL "k.1"=v k2="two words"\n'
    )
    assert df.nodes[1].args == ["A=1", 'B="x y"', "C=a\\ b"]
    assert df.nodes[2].args == ["legacy=hello  world"]
    assert df.nodes[3].args == ['"k.1"=v', 'k2="two words"']
    with pytest.raises(DockerfileSyntaxError, match="can't find ="):
        parse("FROM x\nENV A=1 B\n")
    with pytest.raises(DockerfileSyntaxError, match="must have two arguments"):
        parse("FROM x\nENV A\n")


def test_arg_names_and_defaults() -> None:
    assert parse('ARG A B=2 C="x y"\nFROM x\n').nodes[0].args == ["A", "B=2", 'C="x y"']


def test_heredocs_for_run_and_copy() -> None:
    df = parse(
        "FROM x\nRUN <<EOF\necho a\n# not a comment\nEOF\n"
        "COPY <<-'END' /f\n\tline $X\n\tEND\nRUN cat <<A <<B\n1\nA\n2\nB\nRUN echo after\n"
    )
    run, copy, two, after = df.nodes[1:]
    assert run.heredocs[0].content == "echo a\n# not a comment\n" and run.heredocs[0].expand
    assert copy.heredocs[0].content == "line $X\n" and not copy.heredocs[0].expand
    assert copy.args == ["<<-'END'", "/f"]
    assert [h.content for h in two.heredocs] == ["1\n", "2\n"]
    assert after.args == ["echo after"]
    with pytest.raises(DockerfileSyntaxError, match="unterminated heredoc"):
        parse("FROM x\nRUN <<EOF\necho\n")


def test_onbuild_holds_a_parsed_instruction_and_refuses_chaining() -> None:
    node = parse("FROM x\nONBUILD COPY --chown=1 . /app\n").nodes[1]
    assert node.sub is not None and node.sub.keyword == "copy" and node.sub.flags == ["--chown=1"]
    with pytest.raises(DockerfileSyntaxError, match="ONBUILD ONBUILD"):
        parse("FROM x\nONBUILD ONBUILD RUN x\n")
    with pytest.raises(DockerfileSyntaxError, match="FROM isn't allowed"):
        parse("FROM x\nONBUILD FROM y\n")


def test_healthcheck_forms() -> None:
    df = parse(
        "FROM x\nHEALTHCHECK NONE\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/\n"
    )
    assert df.nodes[1].args == ["NONE"]
    assert df.nodes[2].args == ["CMD", "curl -f http://x/"] and not df.nodes[2].json_form
    assert df.nodes[2].flags == ["--interval=5s", "--retries=3"]
    with pytest.raises(DockerfileSyntaxError, match="Unknown type"):
        parse("FROM x\nHEALTHCHECK RUN x\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM x\nCOPY a\n", "COPY requires at least two arguments"),
        ("FROM x\nRUN\n", "RUN requires at least one argument"),
        ("FROM x\nWORKDIR\n", "WORKDIR requires exactly one argument"),
        ("FROM\n", "FROM requires at least one argument"),
    ],
)
def test_missing_arguments_are_errors_with_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileSyntaxError, match=message):
        parse(text)


# A corpus of ordinary Dockerfiles in the shapes package documentation uses.
CORPUS = {
    "python": """
# syntax=docker/dockerfile:1
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip \\
    pip install -r requirements.txt
COPY . .
EXPOSE 8000
USER nobody
CMD ["gunicorn", "app:app", "--bind", "0.0.0.0:8000"]
""",
    "go-multistage": """
ARG GO_VERSION=1.22
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM scratch
COPY --from=build /out/app /app
ENTRYPOINT ["/app"]
""",
    "nginx": """
FROM debian:bookworm-slim
LABEL maintainer="NGINX Docker Maintainers <docker-maint@nginx.com>"
ENV NGINX_VERSION   1.25.4
RUN set -x \\
    && groupadd --system --gid 101 nginx \\
    && apt-get update \\
    && apt-get install --no-install-recommends --no-install-suggests -y nginx \\
    && rm -rf /var/lib/apt/lists/*
COPY docker-entrypoint.sh /
EXPOSE 80
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
""",
    "node": """
FROM node:20-alpine
WORKDIR /usr/src/app
COPY package*.json ./
RUN npm ci --omit=dev
COPY --chown=node:node . .
HEALTHCHECK --interval=30s --timeout=3s CMD wget -qO- http://localhost:3000/health || exit 1
VOLUME ["/data"]
SHELL ["/bin/sh", "-o", "pipefail", "-c"]
ONBUILD COPY . /usr/src/app
CMD node server.js
""",
    "rust-cache-mounts": """
# syntax=docker/dockerfile:1.7
ARG RUST_VERSION=1.77
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim AS build
WORKDIR /app
RUN --mount=type=bind,source=src,target=src \\
    --mount=type=bind,source=Cargo.toml,target=Cargo.toml \\
    --mount=type=cache,target=/app/target/ \\
    --mount=type=cache,target=/usr/local/cargo/registry/ \\
    cargo build --locked --release && cp ./target/release/server /bin/server
FROM debian:bookworm-slim AS final
ARG UID=10001
RUN adduser --disabled-password --gecos "" --uid "${UID}" appuser
USER appuser
COPY --from=build /bin/server /bin/
EXPOSE 8000
CMD ["/bin/server"]
""",
    "postgres-style": """
FROM debian:bookworm-slim
ENV PG_MAJOR 16
ENV PATH $PATH:/usr/lib/postgresql/$PG_MAJOR/bin
ADD --chmod=755 https://example.com/gosu /usr/local/bin/gosu
RUN <<EOF
set -eux
mkdir -p /var/run/postgresql
EOF
VOLUME /var/lib/postgresql/data
COPY docker-entrypoint.sh docker-ensure-initdb.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
CMD [postgres]
""",
    "windows-escape": r"""# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
RUN Invoke-WebRequest -Uri https://example.com/app.zip -OutFile app.zip ; `
    Expand-Archive app.zip -DestinationPath C:\app
WORKDIR C:\app
CMD ["C:\\app\\app.exe"]
""",
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_real_world_dockerfiles_parse(name: str) -> None:
    """Every instruction of each file: its line, keyword, flags, arguments and form."""
    df = parse(CORPUS[name])
    got = [(n.start_line, n.keyword, n.flags, n.args, n.json_form) for n in df.nodes]
    assert got == CORPUS_PARSED[name]


# Reviewed by hand against the Dockerfile reference: continuation joins keep the
# whitespace around the escape, legacy ``ENV k v`` becomes ``k=v``, invalid JSON is shell
# form, parser directives only count on the very first lines.
CORPUS_PARSED: dict[str, list[tuple[int, str, list[str], list[str], bool]]] = {
    "go-multistage": [
        (2, "arg", [], ["GO_VERSION=1.22"], False),
        (3, "from", [], ["golang:${GO_VERSION}", "AS", "build"], False),
        (4, "workdir", [], ["/src"], False),
        (5, "copy", [], ["go.mod", "go.sum", "./"], False),
        (6, "run", [], ["go mod download"], False),
        (7, "copy", [], [".", "."], False),
        (8, "run", [], ["CGO_ENABLED=0 go build -o /out/app ./cmd/app"], False),
        (10, "from", [], ["scratch"], False),
        (11, "copy", ["--from=build"], ["/out/app", "/app"], False),
        (12, "entrypoint", [], ["/app"], True),
    ],
    "nginx": [
        (2, "from", [], ["debian:bookworm-slim"], False),
        (3, "label", [], ['maintainer="NGINX Docker Maintainers <docker-maint@nginx.com>"'], False),
        (4, "env", [], ["NGINX_VERSION=1.25.4"], False),
        (
            5,
            "run",
            [],
            [
                "set -x     && groupadd --system --gid 101 nginx     && apt-get update     && apt-get install --no-install-recommends --no-install-suggests -y nginx     && rm -rf /var/lib/apt/lists/*"
            ],
            False,
        ),
        (10, "copy", [], ["docker-entrypoint.sh", "/"], False),
        (11, "expose", [], ["80"], False),
        (12, "stopsignal", [], ["SIGQUIT"], False),
        (13, "entrypoint", [], ["/docker-entrypoint.sh"], True),
        (14, "cmd", [], ["nginx", "-g", "daemon off;"], True),
    ],
    "node": [
        (2, "from", [], ["node:20-alpine"], False),
        (3, "workdir", [], ["/usr/src/app"], False),
        (4, "copy", [], ["package*.json", "./"], False),
        (5, "run", [], ["npm ci --omit=dev"], False),
        (6, "copy", ["--chown=node:node"], [".", "."], False),
        (
            7,
            "healthcheck",
            ["--interval=30s", "--timeout=3s"],
            ["CMD", "wget -qO- http://localhost:3000/health || exit 1"],
            False,
        ),
        (8, "volume", [], ["/data"], True),
        (9, "shell", [], ["/bin/sh", "-o", "pipefail", "-c"], True),
        (10, "onbuild", [], ["COPY . /usr/src/app"], False),
        (11, "cmd", [], ["node server.js"], False),
    ],
    "postgres-style": [
        (2, "from", [], ["debian:bookworm-slim"], False),
        (3, "env", [], ["PG_MAJOR=16"], False),
        (4, "env", [], ["PATH=$PATH:/usr/lib/postgresql/$PG_MAJOR/bin"], False),
        (5, "add", ["--chmod=755"], ["https://example.com/gosu", "/usr/local/bin/gosu"], False),
        (6, "run", [], ["<<EOF"], False),
        (10, "volume", [], ["/var/lib/postgresql/data"], False),
        (
            11,
            "copy",
            [],
            ["docker-entrypoint.sh", "docker-ensure-initdb.sh", "/usr/local/bin/"],
            False,
        ),
        (12, "entrypoint", [], ["docker-entrypoint.sh"], True),
        (13, "stopsignal", [], ["SIGINT"], False),
        (14, "cmd", [], ["[postgres]"], False),
    ],
    "python": [
        (3, "from", [], ["python:3.12-slim", "AS", "base"], False),
        (4, "env", [], ["PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"], False),
        (6, "workdir", [], ["/app"], False),
        (7, "copy", [], ["requirements.txt", "."], False),
        (
            8,
            "run",
            ["--mount=type=cache,target=/root/.cache/pip"],
            ["pip install -r requirements.txt"],
            False,
        ),
        (10, "copy", [], [".", "."], False),
        (11, "expose", [], ["8000"], False),
        (12, "user", [], ["nobody"], False),
        (13, "cmd", [], ["gunicorn", "app:app", "--bind", "0.0.0.0:8000"], True),
    ],
    "rust-cache-mounts": [
        (3, "arg", [], ["RUST_VERSION=1.77"], False),
        (
            4,
            "from",
            ["--platform=$BUILDPLATFORM"],
            ["rust:${RUST_VERSION}-slim", "AS", "build"],
            False,
        ),
        (5, "workdir", [], ["/app"], False),
        (
            6,
            "run",
            [
                "--mount=type=bind,source=src,target=src",
                "--mount=type=bind,source=Cargo.toml,target=Cargo.toml",
                "--mount=type=cache,target=/app/target/",
                "--mount=type=cache,target=/usr/local/cargo/registry/",
            ],
            ["cargo build --locked --release && cp ./target/release/server /bin/server"],
            False,
        ),
        (11, "from", [], ["debian:bookworm-slim", "AS", "final"], False),
        (12, "arg", [], ["UID=10001"], False),
        (13, "run", [], ['adduser --disabled-password --gecos "" --uid "${UID}" appuser'], False),
        (14, "user", [], ["appuser"], False),
        (15, "copy", ["--from=build"], ["/bin/server", "/bin/"], False),
        (16, "expose", [], ["8000"], False),
        (17, "cmd", [], ["/bin/server"], True),
    ],
    "windows-escape": [
        (2, "from", [], ["mcr.microsoft.com/windows/servercore:ltsc2022"], False),
        (3, "shell", [], ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"], True),
        (
            4,
            "run",
            [],
            [
                "Invoke-WebRequest -Uri https://example.com/app.zip -OutFile app.zip ;     Expand-Archive app.zip -DestinationPath C:\\app"
            ],
            False,
        ),
        (6, "workdir", [], ["C:\\app"], False),
        (7, "cmd", [], ["C:\\app\\app.exe"], True),
    ],
}


def test_corpus_heredoc_and_escape_directive() -> None:
    postgres = parse(CORPUS["postgres-style"])
    [heredoc] = postgres.nodes[4].heredocs
    assert (heredoc.name, heredoc.content) == ("EOF", "set -eux\nmkdir -p /var/run/postgresql\n")
    assert parse(CORPUS["windows-escape"]).escape == "`"
