"""A method that always fails in `setup`: the bench must record it and go on."""

from __future__ import annotations

from typing import Any, ClassVar

from rfau_cli.methods.base import Method

MESSAGE = "this method fails on purpose"


class Failing(Method):
    name: ClassVar[str] = "boom"
    summary: ClassVar[str] = "fails in setup (tests only)"
    uses_lora: ClassVar[bool] = False

    def setup(self, ctx: Any) -> None:
        raise RuntimeError(MESSAGE)


METHOD = Failing
