"""The Dockerfiles test_build.py builds on moord and on dockerd."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Case:
    name: str
    dockerfile: str
    files: dict[str, str | bytes | tuple[str]] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)
    listing: bool = True
    dockerfile_name: str = ""
    error: str = ""  # the expected last stderr line, when dockerd's differs on purpose
    leaves_cache: bool = False


def _tar(entries: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 1_600_000_000, 0o640
            tar.addfile(info, io.BytesIO(content))
    return data.getvalue()


B = "FROM busybox\n"
CASES = [
    Case("run-basic", B + "RUN echo hello > /hello && mkdir -p /a/b\n"),
    Case("run-exec-form", B + 'RUN ["sh", "-c", "echo exec > /e"]\n'),
    Case("run-delete-later", B + "RUN mkdir /d && echo x > /d/f && echo y > /keep\n"
         "RUN rm -rf /d /etc/group\n"),
    Case("run-replace-dir", B + "RUN mkdir -p /r/a && touch /r/a/one\n"
         "RUN rm -rf /r && mkdir -p /r/b && touch /r/b/two\n"),
    Case("run-chmod-chown", B + "RUN touch /f && chmod 4755 /f && chown 12:34 /f\n"),
    Case("run-symlink-hardlink", B + "RUN echo t > /t && ln -s /t /s && ln /t /h\n"),
    Case("env-forms", B + 'ENV A=1 B="two words" C=${A}x\nENV D legacy value here\n'
         "ENV E=$B\n"),
    Case("env-substitution", B + "ENV BASE=/opt\nENV P=${BASE:-none} Q=${NOPE:-dflt} "
         "R=${BASE:+alt} S=${NOPE:+alt} T=\\$BASE U='$BASE'\n"),
    Case("label-expose-volume", B + 'LABEL a=b "c d"="e f"\nLABEL legacy value\n'
         "EXPOSE 80 443/tcp 53/udp\nVOLUME /data\nVOLUME [\"/v1\", \"/v2\"]\n"),
    Case("cmd-shell", B + "CMD echo hi\n", run=[]),
    Case("cmd-exec", B + 'CMD ["echo", "exec"]\n', run=[]),
    Case("entrypoint-resets-cmd", B + 'CMD ["x"]\nENTRYPOINT ["echo"]\n'),
    Case("entrypoint-then-cmd", B + 'ENTRYPOINT ["echo", "e"]\nCMD ["c"]\n', run=[]),
    Case("workdir-create", B + "WORKDIR /a/b\nWORKDIR c\nRUN pwd > /pwd\n"),
    Case("workdir-env", B + "ENV D=/data\nWORKDIR $D/sub\n"),
    Case("user-by-name", B + "USER nobody\nRUN id > /tmp/id\n"),
    Case("user-workdir-owner", B + "USER nobody\nWORKDIR /home/nobody/app\n"),
    Case("shell", B + 'SHELL ["/bin/sh", "-xc"]\nRUN echo shell > /s\nCMD echo c\n'),
    Case("stopsignal", B + "STOPSIGNAL SIGKILL\n"),
    Case("healthcheck", B + "HEALTHCHECK --interval=5s --timeout=3s --retries=2 "
         "CMD true\n"),
    Case("healthcheck-none", B + "HEALTHCHECK NONE\n"),
    Case("onbuild-record", B + "ONBUILD RUN echo triggered > /t\nONBUILD ENV X=1\n"),
    Case("copy-file", B + "COPY a.txt /a.txt\nCOPY a.txt /dir/\nCOPY a.txt rel\n",
         files={"a.txt": "A"}),
    Case("copy-dir", B + "COPY src /dst\nCOPY src/ /dst2/\n",
         files={"src/x": "x", "src/sub/y": "y", "src/.hidden": "h"},
         modes={"src/x": 0o700}),
    Case("copy-glob", B + "COPY *.txt /g/\nCOPY s?c/*.md /m/\n",
         files={"a.txt": "a", "b.txt": "b", "c.bin": "c", "src/r.md": "r"}),
    Case("copy-chown", B + "COPY --chown=nobody:nogroup a /a\nCOPY --chown=7:8 d /d\n",
         files={"a": "a", "d/e": "e"}),
    Case("copy-workdir-relative", B + "WORKDIR /w\nCOPY a .\nCOPY a sub/\n",
         files={"a": "a"}),
    Case("copy-symlink", B + "COPY link /link\nCOPY dir /dir\n",
         files={"target": "t", "link": ("target",), "dir/l": ("../target",)}),
    Case("copy-modes", B + "COPY x /x\nCOPY y /y\n", files={"x": "x", "y": "y"},
         modes={"x": 0o755, "y": 0o600}),
    Case("add-tar", B + "ADD a.tar /t/\nADD a.tar /raw.tar.d/\n",
         files={"a.tar": _tar({"in/one": b"1", "two": b"2"})}),
    Case("add-file", B + "ADD plain /p\n", files={"plain": "p"}),
    Case("arg-default", B + "ARG V=def\nRUN echo $V > /v\nENV E=$V\n"),
    Case("arg-given", B + "ARG V=def\nRUN echo $V > /v\nENV E=$V\n",
         args=["--build-arg", "V=given"]),
    Case("arg-env-override", B + "ARG V=arg\nENV V=env\nRUN echo $V > /v\n",
         args=["--build-arg", "V=cli"]),
    Case("arg-before-from", "ARG BASE=busybox\nARG TAG=latest\nFROM $BASE:$TAG\n"
         "ARG TAG\nRUN echo $TAG > /tag\n"),
    Case("arg-scope-stages", "ARG X=meta\nFROM busybox AS one\nARG X\nRUN echo $X > /one\n"
         "FROM busybox\nRUN echo \"[$X]\" > /two\nCOPY --from=one /one /one\n"),
    Case("multistage-copy-from", "FROM busybox AS build\nRUN mkdir /out && echo art > "
         "/out/a && chmod 600 /out/a\nFROM busybox\nCOPY --from=build /out /app\n"
         "COPY --from=0 /out/a /b\n"),
    Case("multistage-from-stage", "FROM busybox AS base\nENV FROM_BASE=1\nRUN touch /base\n"
         "FROM base\nRUN touch /child\n"),
    Case("target", "FROM busybox AS first\nRUN touch /first\nFROM busybox AS second\n"
         "RUN touch /second\n", args=["--target", "first"]),
    Case("scratch", "FROM busybox AS b\nRUN echo s > /s\nFROM scratch\nCOPY --from=b /s /s\n"
         "CMD [\"/s\"]\n", listing=False),
    Case("continuations-comments", B + "RUN echo one \\\n# a comment inside\n  two \\\n"
         "\n  three > /c\n# trailing comment\nENV A=1 \\\n    B=2\n"),
    Case("escape-directive", "# escape=`\nFROM busybox\nRUN echo a `\n  b > /e\n"
         "ENV W=C:\\path\n"),
    Case("labels-option", B + "LABEL inner=1\n", args=["--label", "outer=2"]),
    Case("dockerfile-flag", B + "RUN touch /custom\n", dockerfile_name="build.Dockerfile"),
    Case("maintainer", B + "MAINTAINER someone <s@example.invalid>\n"),
    Case("expose-range", B + "EXPOSE 8000-8002/tcp\n"),
]

ERRORS = [
    Case("unknown-instruction", B + "FOO bar\n"),
    Case("missing-stage-copy", B + "COPY --from=127.0.0.1:1/nope:1 /x /x\n"),
    Case("missing-base", "FROM 127.0.0.1:1/nosuch:1\n"),
    Case("bad-stage-name", "FROM busybox AS 1x\n"),
    Case("unknown-flag", B + "COPY --link a /a\n", files={"a": "a"}),
    Case("flag-without-value", B + "COPY --chown a /a\n", files={"a": "a"}),
    Case("run-security", B + "RUN --security=insecure true\n"),
    Case("unterminated-heredoc", B + "RUN <<EOF\necho\n",
         error="Error response from daemon: dockerfile parse error line 2: unterminated "
               "heredoc EOF"),
    Case("copy-outside-link", B + "COPY link/x /x\n", files={"link": ("..",)}),
    Case("copy-outside", B + "COPY ../x /x\n"),
    Case("copy-missing", B + "COPY nothere /x\n"),
    Case("run-fails", B + "RUN touch /x && exit 3\n"),
    Case("empty", ""),
    Case("no-from", "RUN true\n"),
    Case("bad-target", B, args=["--target", "nope"]),
    Case("shell-not-json", B + "SHELL sh -c\n"),
    Case("onbuild-onbuild", B + "ONBUILD ONBUILD RUN true\n"),
    Case("bad-chmod", B + "COPY --chmod=u+x a /a\n", files={"a": "a"},
         error="invalid chmod parameter: 'u+x': only octal modes are supported"),
]

CASES += [
    Case("unneeded-stage", "FROM busybox AS unused\nRUN touch /unused\n"
         "FROM busybox AS used\nRUN touch /used\nFROM busybox\nCOPY --from=used /used /u\n",
         listing=True),
]
