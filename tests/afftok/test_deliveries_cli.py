"""`afftok deliveries pause|resume|status`: the kill switch, in Postgres, from the CLI;
the database defaults to the local stack's up.json. Bad input is one line and a non-zero
exit, never a traceback."""

from __future__ import annotations

import json
import socket

import msgspec
import pytest

from afftok import cli
from afftok.deliveries_command import database_url, run


async def _switch(pool) -> tuple[bool, str]:
    row = await pool.fetchrow("select paused, changed_by from delivery_switch")
    return row["paused"], row["changed_by"]


async def test_pause_resume_and_status(pool, database_url):
    paused = await run(database_url, "pause", "cli:ops")
    assert paused.paused is True and await _switch(pool) == (True, "cli:ops")
    again = await run(database_url, "pause", "cli:other")  # already paused: nothing changes
    assert again.changed_by == "cli:ops" and await _switch(pool) == (True, "cli:ops")
    org = await pool.fetchval("insert into organizations (name) values ('o') returning id")
    await pool.execute("insert into outbox_events (org_id, event_type, payload) values ($1, 'cap.reached', '{}')", org)
    status = await run(database_url, "status", "cli:ops")
    assert (status.outbox, status.pending, status.dead) == (1, 0, 0)
    resumed = await run(database_url, "resume", "cli:ops")
    assert resumed.paused is False and (await _switch(pool))[0] is False


def test_the_database_comes_from_the_flag_the_environment_or_up_json(settings, tmp_path):
    args = cli.build_parser().parse_args(["deliveries", "status"])
    assert database_url(args, settings) == settings.database_url
    local = msgspec.structs.replace(settings, database_url="", data_dir=tmp_path)
    (tmp_path / "up.json").write_text(json.dumps({"database_url": "postgresql://up-json/db"}))
    assert database_url(args, local) == "postgresql://up-json/db"
    flagged = cli.build_parser().parse_args(["deliveries", "pause", "--database-url", "postgresql://flag/db"])
    assert database_url(flagged, local) == "postgresql://flag/db"


def test_the_command_prints_the_state(database_url, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert cli.main(["deliveries", "pause"]) == 0
    assert "deliveries paused" in capsys.readouterr().out
    assert cli.main(["deliveries", "resume"]) == 0
    out = capsys.readouterr().out
    assert "deliveries delivering" in out and "outbox 0, pending 0, dead 0" in out


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("url, message", [
    (f"postgresql://ops:hunter2@127.0.0.1:{_closed_port()}/afftok", "cannot connect to the database"),
    ("postgresql://ops:hunter2@127.0.0.1:notaport/afftok", "cannot connect to the database"),
    ("mysql://ops:hunter2@127.0.0.1/afftok", "cannot connect to the database"),
])
def test_an_unreachable_database_is_one_line_and_exit_1(url, message, capsys, monkeypatch):
    monkeypatch.delenv("AFFTOK_DEBUG", raising=False)
    assert cli.main(["deliveries", "pause", "--database-url", url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"afftok deliveries: {message}") and "hunter2" not in line


def test_no_database_at_all_says_how_to_give_one(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("AFFTOK_DEBUG", raising=False)
    monkeypatch.setenv("AFFTOK_DATA_DIR", str(tmp_path))  # no up.json there
    assert cli.main(["deliveries", "status"]) == 1
    assert capsys.readouterr().err.strip() == (
        "afftok deliveries: no database: pass --database-url, set DATABASE_URL, or run `afftok up` first")


def test_a_database_without_the_migrations_says_to_migrate(postgres_admin_url, capsys, monkeypatch):
    monkeypatch.delenv("AFFTOK_DEBUG", raising=False)
    assert cli.main(["deliveries", "status", "--database-url", postgres_admin_url]) == 1
    assert "run `afftok migrate` first" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["deliveries"], ["deliveries", "stop"], ["deliveries", "pause", "--force"]])
def test_bad_arguments_exit_2_with_the_usage(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: afftok") and "error: " in err and "Traceback" not in err
