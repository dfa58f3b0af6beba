"""``tradepipe notify``: the notification targets, and a test message to each."""

from __future__ import annotations

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import console, print_json, table
from tradepipe.errors import ConfigError
from tradepipe.plugins.notify.notifier import apprise_send, shown_url


@click.group()
def notify() -> None:
    """Notifications through Apprise ([notify.targets.*])."""


@notify.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def targets(app: AppContext, as_json: bool) -> None:
    """The targets, their URLs masked, and the events each takes."""
    found = [
        {"name": name, "url": shown_url(t.apprise), "events": t.events}
        for name, t in sorted(app.settings.notify.targets.items())
    ]
    if as_json:
        print_json(found)
        return
    console().print(
        table(
            "Notification targets",
            ["name", "url", "events"],
            [(t["name"], t["url"], ", ".join(t["events"])) for t in found],
        )
    )


@notify.command("test")
@click.option("--target", "only", metavar="NAME", help="Only this target.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def test(app: AppContext, only: str | None, as_json: bool) -> None:
    """Send a test message to every target (or one); exit 1 if one failed."""
    settings = app.settings.notify
    chosen = {
        name: t for name, t in sorted(settings.targets.items()) if only is None or name == only
    }
    if not chosen:
        known = ", ".join(sorted(settings.targets)) or "none"
        raise ConfigError(
            f"no notification target {only!r} (targets: {known})"
            if only
            else 'no notification targets: add [notify.targets.NAME] apprise = "…"',
            key="notify.targets",
        )
    results = []
    for name, target in chosen.items():
        try:
            ok = apprise_send(
                target.apprise,
                "tradepipe: Test",
                f"A test from tradepipe (environment {app.settings.env}): this target works.",
                settings.timeout_seconds,
            )
        except Exception:  # an unusable URL is a failed target, said so below
            ok = False
        results.append({"name": name, "url": shown_url(target.apprise), "sent": ok})
    if as_json:
        print_json(results)
    else:
        for r in results:
            state = "sent" if r["sent"] else "FAILED"
            console().print(f"{r['name']} ({r['url']}): {state}")
    if not all(r["sent"] for r in results):
        raise SystemExit(1)
