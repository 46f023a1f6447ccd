"""packhouse.cli.coercion gives every value what Typer's own (pydantic) coercion gives it:
the same result and type, or the same refusal word for word. Each case runs one small Typer
command twice, with and without it."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import pytest
import typer
import typer.core
from typer.testing import CliRunner

from packhouse.cli import coercion


class Colour(enum.Enum):
    red = "red"
    green = "Green"


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def show(
        items: Annotated[list[Path] | None, typer.Argument()] = None,
        text: Annotated[str | None, typer.Option("--text")] = None,
        number: Annotated[int | None, typer.Option("--number")] = None,
        ranged: Annotated[int, typer.Option("--ranged", min=1, max=9)] = 5,
        path: Annotated[Path | None, typer.Option("--path")] = None,
        existing: Annotated[Path | None, typer.Option("--existing", exists=True)] = None,
        a_dir: Annotated[Path | None, typer.Option("--dir", file_okay=False)] = None,
        colour: Annotated[Colour, typer.Option("--colour", case_sensitive=False)] = Colour.red,
        many: Annotated[list[str] | None, typer.Option("--many")] = None,
        flag: Annotated[bool, typer.Option("--flag/--no-flag")] = False,
        env: Annotated[Path | None, typer.Option("--env", envvar="COERCION_TEST_PATH")] = None,
    ) -> None:
        values = (items, text, number, ranged, path, existing, a_dir, colour, many, flag, env)
        typer.echo(repr(values))

    @app.callback()
    def _root() -> None:
        pass

    return app


def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["show", *argv], env=env)
    return result.exit_code, result.output


CASES = [
    [],
    ["a", "b/c", "./d", "e//f", "g/", "", "~"],
    ["--text", "plain"],
    ["--text", ""],
    ["--text", " spaced ü "],
    *(["--number", n] for n in ("7", "-3", "+1", " 7", "1_000", "007", "1.0", "1e3", "x", "")),
    *(["--ranged", n] for n in ("1", "0", "10", "x")),
    *(["--path", p] for p in ("/tmp", "rel", "./rel", "a//b", "c/", "", ".", "~/x")),
    ["--existing", "MISSING"],
    ["--existing", "./nothing//here/"],
    ["--dir", "./a-file"],
    ["--existing", "FILE"],
    ["--existing", "FILE/"],
    ["--dir", "FILE"],
    ["--dir", "DIR"],
    *(["--colour", c] for c in ("red", "RED", "green", "Green", "blue", "")),
    ["--many", "x", "--many", "", "--many", "y"],
    ["--flag"],
    ["--no-flag"],
    ["--number"],
    ["--help"],
]


@pytest.mark.parametrize("argv", CASES, ids=lambda argv: " ".join(argv) or "none")
@pytest.mark.parametrize("env_path", ["", "/srv/data", "./data"])
def test_same_results_and_refusals_as_typers_own(
    argv: list[str], env_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    names = {"FILE": str(tmp_path / "a-file"), "DIR": str(tmp_path / "a-dir")}
    names["MISSING"] = str(tmp_path / "missing")
    argv = [names.get(a, a.replace("FILE", names["FILE"])) for a in argv]
    env = {"COERCION_TEST_PATH": env_path} if env_path else {}
    monkeypatch.chdir(tmp_path)

    typers = _run(argv, env)
    original = typer.core.build_runtime_param  # type: ignore[attr-defined]
    monkeypatch.setattr(coercion._Typers, "build", None)
    coercion.install()
    try:
        assert typer.core.build_runtime_param is not original  # type: ignore[attr-defined]
        ours = _run(argv, env)
    finally:
        typer.core.build_runtime_param = original  # type: ignore[attr-defined]
    assert ours == typers
