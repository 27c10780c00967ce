"""`afftok deliveries pause|resume|status`: the kill switch, in Postgres, from the CLI;
the database defaults to the local stack's up.json."""

from __future__ import annotations

import json

import msgspec

from afftok import cli
from afftok.deliveries_command import database_url, run


async def _switch(pool) -> tuple[bool, str]:
    row = await pool.fetchrow("select paused, changed_by from delivery_switch")
    return row["paused"], row["changed_by"]


async def test_pause_resume_and_status(pool, database_url):
    paused = await run(database_url, "pause", "cli:ops")
    assert paused["paused"] is True and await _switch(pool) == (True, "cli:ops")
    again = await run(database_url, "pause", "cli:other")  # already paused: nothing changes
    assert again["changed_by"] == "cli:ops"
    org = await pool.fetchval("insert into organizations (name) values ('o') returning id")
    await pool.execute("insert into outbox_events (org_id, event_type, payload) values ($1, 'cap.reached', '{}')", org)
    status = await run(database_url, "status", "cli:ops")
    assert (status["outbox"], status["pending"], status["dead"]) == (1, 0, 0)
    resumed = await run(database_url, "resume", "cli:ops")
    assert resumed["paused"] is False and (await _switch(pool))[0] is False


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
