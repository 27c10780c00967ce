import os

from core.models import ClickRecord, click_batch_decoder, click_batch_encoder
from edge.spool import Spool, decode_records, encode_record
from edge.spool_replay import replay_spool
from tests.edge.conftest import stream_records


def batch(*click_ids: str) -> bytes:
    return click_batch_encoder.encode([ClickRecord(c, 1, "o", "of", "a", "l", "redirect") for c in click_ids])


def spool_files(directory):
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def test_records_round_trip_and_a_torn_tail_is_skipped(tmp_path):
    spool = Spool(tmp_path, fsync=True)
    spool.append([batch("a"), batch("b", "c")])
    spool.append([batch("d")])
    spool.close()
    [path] = spool_files(tmp_path)
    data = path.read_bytes()
    assert decode_records(data) == ([batch("a"), batch("b", "c"), batch("d")], False)
    assert decode_records(data[:-3]) == ([batch("a"), batch("b", "c")], True)
    assert decode_records(data[:5]) == ([], True)
    corrupt = bytearray(data)
    corrupt[len(encode_record(batch("a"))) + 9] ^= 0xFF
    assert decode_records(bytes(corrupt)) == ([batch("a")], True)


def test_a_live_writers_file_is_not_claimed_but_a_dead_processes_file_is(tmp_path):
    writer = Spool(tmp_path, fsync=False)
    writer.append([batch("live")])
    dead = tmp_path / "edge-999999-1.spool"
    dead.write_bytes(encode_record(batch("dead")))
    replayer = Spool(tmp_path, fsync=False)
    [claimed] = replayer.claim()
    assert claimed.path.name == f"edge-999999-1.spool.claimed-{os.getpid()}"
    assert replayer.claim() == []  # held by us now
    claimed.delete()
    writer.seal()
    [sealed] = replayer.claim()
    assert [r.click_id for p in sealed.read_batches() for r in click_batch_decoder.decode(p)] == ["live"]
    sealed.release()
    writer.append([batch("next")])  # a new active file after sealing
    assert len(spool_files(tmp_path)) == 2
    writer.close()


async def test_replay_moves_every_batch_once_and_removes_files(tmp_path, redis, keys):
    spool = Spool(tmp_path, fsync=False)
    spool.append([batch("a1", "a2")])
    spool.append([batch("a3")])
    torn = tmp_path / "edge-999999-2.spool"
    torn.write_bytes(encode_record(batch("b1")) + encode_record(batch("b2"))[:-4])
    stream = keys.click_stream(0)
    assert await replay_spool(spool, redis, stream, ping_timeout_s=1.0) == 3
    assert sorted(r.click_id for r in await stream_records(redis, stream)) == ["a1", "a2", "a3", "b1"]
    assert spool_files(tmp_path) == []
    assert await replay_spool(spool, redis, stream, ping_timeout_s=1.0) == 0
    assert await redis.xlen(stream) == 3
