"""Docker's word processing (moby/buildkit frontend/dockerfile/shell lex.go): quotes,
escapes and ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``, ``${VAR:+a}``,
``${VAR+a}`` in the instructions that expand variables."""

from __future__ import annotations

from collections.abc import Mapping

from moorage.errors import InvalidParameter


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def words(self) -> list[str]:
        """The text split on unquoted blanks, each word processed."""
        words: list[str] = []
        word: list[str] = []
        seen = False
        while self.pos < len(self.text):
            ch = self.next()
            if ch in " \t\n" :
                if seen:
                    words.append("".join(word))
                    word, seen = [], False
                continue
            seen = True
            word.append(self._char(ch))
        if seen:
            words.append("".join(word))
        return words

    def word(self) -> str:
        out = []
        while self.pos < len(self.text):
            out.append(self._char(self.next()))
        return "".join(out)

    def _char(self, ch: str) -> str:
        if ch == "'":
            return self._single()
        if ch == '"':
            return self._double()
        if ch == "$":
            return self._dollar()
        if ch == self.escape:
            nxt = self.next()
            return nxt
        return ch

    def _single(self) -> str:
        out = []
        while True:
            ch = self.next()
            if ch == "":
                raise InvalidParameter("unexpected end of statement while looking for "
                                       "matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double(self) -> str:
        out = []
        while True:
            ch = self.next()
            if ch == "":
                raise InvalidParameter("unexpected end of statement while looking for "
                                       "matching double-quote")
            if ch == '"':
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
            elif ch == self.escape and self.peek() in ('"', "$", self.escape):
                out.append(self.next())
            else:
                out.append(ch)

    def _name(self) -> str:
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.pos += 1
        return self.text[start:self.pos]

    def _dollar(self) -> str:
        if self.peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self.next()
        name = self._name()
        if not name:
            raise InvalidParameter("bad substitution")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in "-+" or ch == "":
            raise InvalidParameter(f"unsupported modifier ({ch}) in substitution")
        word = self._until_brace()
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set else word  # type: ignore[return-value]
        return word if is_set else ""

    def _until_brace(self) -> str:
        out = []
        while True:
            ch = self.next()
            if ch == "":
                raise InvalidParameter("syntax error: missing '}'")
            if ch == "}":
                return "".join(out)
            out.append(self._char(ch) if ch in "$'\"" or ch == self.escape else ch)


def process_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    return _Lexer(text, env, escape).word()


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    return _Lexer(text, env, escape).words()
