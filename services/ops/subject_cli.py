"""``linkwell subject``: a person's rights, carried out by every service on its own data
through the pipeline (``services.ops.subject``)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from contracts.events import SubjectAction
from contracts.nhs import NhsNumber
from services.ops import subject as rights
from services.runtime.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="A person's rights (UK GDPR Art. 15-18), carried out by every service on its own "
    "data: export, rectify, restrict, lift, erase.",
)
_NHS: TypeAdapter[str] = TypeAdapter(NhsNumber)

Within = Annotated[
    float,
    typer.Option(min=1, max=240, help="Seconds to wait for every service to answer."),
]
Out = Annotated[Path, typer.Option(help="Where to write the document (created 0600).")]
Referral = Annotated[list[str], typer.Option("--referral", help="A referral id (repeatable).")]
Nhs = Annotated[str | None, typer.Option("--nhs-number", help="With --dob: find by identity.")]
Dob = Annotated[str | None, typer.Option("--dob", help="Date of birth, YYYY-MM-DD.")]


def _nhs(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return _NHS.validate_python(value)
    except ValidationError:
        raise typer.BadParameter("not a valid NHS number (ten digits, modulus 11)") from None


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("a date is YYYY-MM-DD") from None


def _ids(values: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(v) for v in values]
    except ValueError:
        raise typer.BadParameter("a referral id is a UUID") from None


async def _referrals(
    settings: Settings, referrals: list[str], nhs: str | None, dob: str | None, within: float
) -> list[uuid.UUID]:
    """The person's referrals: those named, or those intake finds for the NHS number and
    date of birth together (never the NHS number alone)."""
    ids = _ids(referrals)
    if nhs is None and dob is None:
        if not ids:
            raise typer.BadParameter("name the person: --referral, or --nhs-number with --dob")
        return ids
    if nhs is None or dob is None:
        raise typer.BadParameter("--nhs-number and --dob go together")
    req = rights.request(SubjectAction.FIND, within, nhs_number=_nhs(nhs), date_of_birth=_date(dob))
    found = await rights.ask(settings, req, within)
    if "intake" not in found.answers:
        typer.echo("intake did not answer: the person's referrals are not known", err=True)
        raise typer.Exit(2)
    return sorted({*ids, *found.referral_ids()}, key=str)


def _finish(got: rights.Collected, out: Path | None) -> None:
    text = rights.document(got)
    if out is not None:
        rights.write_private(out, text)
        typer.echo(f"written to {out} (readable by you alone)")
    else:
        typer.echo(text)
    if got.missing:
        typer.echo(f"not answered: {', '.join(got.missing)}", err=True)
        raise typer.Exit(1)
    if got.refused:
        typer.echo("refused: see the document", err=True)
        raise typer.Exit(1)


def _run(
    action: SubjectAction,
    referrals: list[str],
    nhs: str | None,
    dob: str | None,
    within: float,
    out: Path | None,
    **changes: object,
) -> None:
    settings = Settings()

    async def go() -> rights.Collected | None:
        ids = await _referrals(settings, referrals, nhs, dob, within)
        if not ids:
            return None
        req = rights.request(action, within, referral_ids=ids, **changes)  # type: ignore[arg-type]
        return await rights.ask(settings, req, within)

    got = asyncio.run(go())
    if got is None:
        typer.echo("no referral found for that NHS number and date of birth")
        raise typer.Exit(0)
    _finish(got, out)


@app.command(short_help="Everything every service holds about a person, as one document.")
def export(
    out: Out,
    referral: Referral = [],  # noqa: B006 (typer's way of a repeatable option)
    nhs_number: Nhs = None,
    dob: Dob = None,
    within: Within = 30.0,
) -> None:
    """A subject access export (UK GDPR Art. 15): each service answers with what it holds
    about the person, in one Markdown document written to OUT, readable by you alone."""
    _run(SubjectAction.ACCESS, referral, nhs_number, dob, within, out)


@app.command(short_help="Correct a wrong NHS number or date of birth everywhere.")
def rectify(
    referral: Referral,
    nhs_number: Annotated[str | None, typer.Option(help="The right NHS number.")] = None,
    date_of_birth: Annotated[str | None, typer.Option(help="The right date of birth.")] = None,
    within: Within = 30.0,
    out: Annotated[Path | None, typer.Option(help="Write the answers here (0600).")] = None,
) -> None:
    """Rectification (Art. 16): every service corrects its own data; outcomes tells the
    GP practice that entries went under a wrong NHS number."""
    if nhs_number is None and date_of_birth is None:
        raise typer.BadParameter("give --nhs-number or --date-of-birth (or both)")
    _run(
        SubjectAction.RECTIFY,
        referral,
        None,
        None,
        within,
        out,
        new_nhs_number=_nhs(nhs_number),
        new_date_of_birth=_date(date_of_birth),
    )


def _simple(action: SubjectAction, doc: str):  # type: ignore[no-untyped-def]
    def command(
        referral: Referral = [],  # noqa: B006
        nhs_number: Nhs = None,
        dob: Dob = None,
        within: Within = 30.0,
        out: Annotated[Path | None, typer.Option(help="Write the answers here (0600).")] = None,
    ) -> None:
        _run(action, referral, nhs_number, dob, within, out)

    command.__doc__ = doc
    return command


app.command("restrict", short_help="Stop all processing but storage (Art. 18).")(
    _simple(
        SubjectAction.RESTRICT,
        "Restriction (Art. 18): the data is stored, and nothing more is sent about the "
        "person (no messages, no GP writebacks) until the restriction is lifted.",
    )
)
app.command("lift", short_help="Lift a restriction.")(
    _simple(SubjectAction.LIFT, "Lift a restriction made with `linkwell subject restrict`.")
)
app.command("erase", short_help="Erase what the law allows; say what is kept and why.")(
    _simple(
        SubjectAction.ERASE,
        "Erasure (Art. 17): each service erases what it may and answers what it must keep, "
        "naming the ground (Art. 17(3)).",
    )
)
