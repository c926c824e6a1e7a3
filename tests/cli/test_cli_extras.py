"""``raftwal dump --etcd``, ``raftwal diskcheck`` and ``raftwal bench``, run as a user runs them.

* a real etcd 3.4 member directory, live and then stopped, decodes to the
  puts, deletes, txn and lease the test made, in order;
* every entry of the shipped etcd fixtures decodes (none ``unknown``), and
  hand-built requests of every kind render as documented, secrets redacted;
* diskcheck measures and reports sane, self-consistent numbers;
* ``raftwal bench`` reaches raftwal.cli.bench's parser, and says so clearly when
  the module is missing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from etcd_server import EtcdServer, require_etcd34

from raftwal import ConfChange, ConfChangeSingle, ConfChangeV2, Entry
from raftwal.cli import main as cli
from raftwal.cli.etcd_decode import decode_data, decode_entry, message_class

from etcd_fixtures import ALL, Fixture

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftwal", *args], capture_output=True, text=True, timeout=timeout
    )


def dump_etcd(member: Path) -> list[dict[str, Any]]:
    r = run("dump", str(member), "--etcd", "--json")
    assert r.returncode == 0, r.stderr
    # JSON Lines: one entry a line
    return [json.loads(line) for line in r.stdout.splitlines()]


# --- a live etcd 3.4 ------------------------------------------------------------------------


def _user_requests(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries the test's own requests made (etcd adds its own v2 and no-op entries)."""
    kinds = {"put", "delete_range", "txn", "lease_grant", "lease_revoke"}
    return [e for e in entries if e["kind"] in kinds]


@pytest.mark.interop
def test_dump_etcd_decodes_a_live_and_a_stopped_etcd34_member(tmp_path: Path) -> None:
    bins = require_etcd34()
    data_dir = tmp_path / "etcd"
    member = data_dir / "member"
    with EtcdServer(bins, data_dir, tmp_path / "etcd.log", snapshot_count=10000) as srv:
        for i in range(5):
            srv.put(f"/app/key{i}", f"value-{i}".encode())
        assert srv.delete("/app/key0") == 1
        srv.txn_put({"/app/t1": "tv1", "/app/t2": "tv2"})
        granted = srv.etcdctl("lease", "grant", "60").decode()
        m = re.search(r"lease ([0-9a-f]+) granted", granted)
        assert m, granted
        lease_hex = m.group(1)
        assert srv.etcdctl("put", "/app/leased", "lv", f"--lease={lease_hex}").strip() == b"OK"
        assert int(srv.etcdctl("del", "/app/key3", "/app/key5").strip()) == 2  # key3, key4
        srv.put("/app/last", b"the end")

        live = dump_etcd(member)  # etcd still running: its WAL is open and preallocated
        human = run("dump", str(member), "--etcd")
        assert human.returncode == 0, human.stderr
        srv.stop()
    stopped = dump_etcd(member)

    want = [
        *(("put", f'put key="/app/key{i}" value="value-{i}" lease=0') for i in range(5)),
        ("delete_range", 'delete_range key="/app/key0"'),
        (
            "txn",
            'txn compare=[] success=[put key="/app/t1" value="tv1" lease=0; '
            'put key="/app/t2" value="tv2" lease=0] failure=[]',
        ),
        ("lease_grant", f"lease_grant ttl=60 id={lease_hex}"),
        ("put", f'put key="/app/leased" value="lv" lease={lease_hex}'),
        ("delete_range", 'delete_range key="/app/key3" range_end="/app/key5"'),
        ("put", 'put key="/app/last" value="the end" lease=0'),
    ]
    for entries in (live, stopped):
        got = [(e["kind"], e["summary"]) for e in _user_requests(entries)]
        assert got == want
        indexes = [e["index"] for e in entries]
        assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
        assert not [e for e in entries if e["kind"] == "unknown"]
        # the JSON carries the decoded request too
        leased = next(e for e in entries if e["kind"] == "put" and "leased" in e["summary"])
        assert leased["request"]["put"] == {
            "key": "/app/leased",
            "value": "lv",
            "lease": f"{int(lease_hex, 16):016x}",  # a 64-bit ID: hex
        }
        kinds = {e["kind"] for e in entries}
        assert "conf_change" in kinds and "v2" in kinds  # the member's own bootstrap entries
    # what the live dump saw is what the stopped member holds
    by_index = {e["index"]: e for e in stopped}
    assert all(by_index[e["index"]] == e for e in live)
    # the human form: one line per entry, the puts in order
    lines = [ln for ln in human.stdout.splitlines() if " put key=" in ln]
    assert [ln.split(" put ", 1)[1] for ln in lines][:5] == [
        f'key="/app/key{i}" value="value-{i}" lease=0' for i in range(5)
    ]


# --- the shipped fixtures (etcd 3.4.23 and 3.5.1) -------------------------------------


@pytest.mark.parametrize("fixture", ALL, ids=[f.name for f in ALL])
def test_every_fixture_entry_decodes(fixture: Fixture, tmp_path: Path) -> None:
    member = fixture.unpack(tmp_path)
    entries = dump_etcd(member)
    exp = fixture.expected()["entries_from_index_1"]
    assert [e["index"] for e in entries] == [x["index"] for x in exp]
    assert not [e for e in entries if e["kind"] == "unknown"]
    confs = [x["index"] for x in exp if x["type"] == "EntryConfChange"]
    assert [e["index"] for e in entries if e["kind"] == "conf_change"] == confs
    assert {e["kind"] for e in entries} >= {"put", "v2", "noop", "conf_change"}
    r = run("dump", str(member), "--etcd", "--start", "5", "--end", "9")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5


def test_dump_and_inspect_read_a_wal_whose_first_segments_were_purged(tmp_path: Path) -> None:
    import raftwal
    from raftwal import ConfState, HardState

    d = tmp_path / "d"
    with raftwal.open(d, segment_size=16 * 1024, max_wals=1, catch_up_entries=0) as s:
        for i in range(1, 501):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=b"z" * 100)])
        s.create_snapshot(450, ConfState(voters=[1]), b"state")
    assert not (d / "wal" / "0000000000000000-0000000000000000.wal").exists()
    r = run("dump", str(d), "--json")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["index"] for line in r.stdout.splitlines()] == list(range(451, 501))
    assert "compacted" in r.stderr
    r = run("dump", str(d), "--etcd", "--start", "499")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    r = run("inspect", str(d), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["first_index"], info["last_index"]) == (451, 500)


def test_shipped_etcd_descriptors_are_current() -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("grpcio-tools is not installed (pip install 'raftwal[dev]')")
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_etcd_descriptors.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


# --- every kind of request, built by hand ------------------------------------------------


def _irr(**fields: Any) -> bytes:
    msg = message_class("InternalRaftRequest")(**fields)
    data: bytes = msg.SerializeToString()
    return data


def _summary(data: bytes, type: int = 0) -> str:
    return decode_data(type, data)[1]


def test_requests_render_as_documented() -> None:
    m = message_class
    compare = [
        m("Compare")(key=b"k", target=3, result=0, value=b"v"),
        m("Compare")(key=b"n", target=2, result=1, mod_revision=5),
        m("Compare")(key=b"a", range_end=b"b", target=0, result=3, version=0),
    ]
    txn = m("TxnRequest")(
        compare=compare,
        success=[m("RequestOp")(request_put=m("PutRequest")(key=b"x", value=b"1", prev_kv=True))],
        failure=[m("RequestOp")(request_delete_range=m("DeleteRangeRequest")(key=b"x"))],
    )
    assert _summary(_irr(txn=txn)) == (
        'txn compare=[value("k") = "v", mod("n") > 5, version("a".."b") != 0] '
        'success=[put key="x" value="1" lease=0 prev_kv=true] failure=[delete_range key="x"]'
    )
    assert _summary(_irr(put=m("PutRequest")(key=b"\xff\x00", value=b"v" * 200))) == (
        'put key=0xff00 value="' + "v" * 64 + '"...(200 bytes) lease=0'
    )
    assert _summary(_irr(compaction=m("CompactionRequest")(revision=42, physical=True))) == (
        "compaction revision=42 physical=true"
    )
    assert (
        _summary(_irr(lease_revoke=m("LeaseRevokeRequest")(id=255)))
        == "lease_revoke id=00000000000000ff"
    )
    cp = m("LeaseCheckpoint")(id=16, remaining_ttl=30)
    assert _summary(_irr(lease_checkpoint=m("LeaseCheckpointRequest")(checkpoints=[cp]))) == (
        "lease_checkpoint [id=0000000000000010 remaining_ttl=30]"
    )
    assert _summary(_irr(alarm=m("AlarmRequest")(action=1, member_id=10, alarm=1))) == (
        "alarm action=ACTIVATE member=a alarm=NOSPACE"
    )
    assert _summary(_irr(auth_enable=m("AuthEnableRequest")())) == "auth_enable"
    grant = m("AuthRoleGrantPermissionRequest")(
        name="r", perm=m("Permission")(perm_type=2, key=b"/a", range_end=b"/b")
    )
    assert _summary(_irr(auth_role_grant_permission=grant)) == (
        'auth_role_grant_permission name="r" perm=READWRITE key="/a" range_end="/b"'
    )
    attr = m("ClusterMemberAttrSetRequest")(
        member_id=171, member_attributes=m("MemberAttributes")(name="n", client_urls=["http://x"])
    )
    assert _summary(_irr(cluster_member_attr_set=attr)) == (
        'cluster_member_attr_set member=ab name="n" client_urls=["http://x"]'
    )
    assert _summary(_irr(cluster_version_set=m("ClusterVersionSetRequest")(ver="3.5.0"))) == (
        'cluster_version_set ver="3.5.0"'
    )


def test_secrets_are_redacted_everywhere() -> None:
    m = message_class
    for fields in (
        {"auth_user_add": m("AuthUserAddRequest")(name="bob", password="hunter2")},
        {
            "auth_user_change_password": m("AuthUserChangePasswordRequest")(
                name="bob", password="hunter2"
            )
        },
        {"authenticate": m("InternalAuthenticateRequest")(name="bob", simple_token="hunter2")},
    ):
        _, summary, request = decode_data(0, _irr(**fields))
        assert "hunter2" not in summary and "hunter2" not in json.dumps(request)
        assert "<redacted>" in summary and 'name="bob"' in summary


def test_v2_requests_conf_changes_noops_and_garbage() -> None:
    v2 = message_class("Request")
    put = v2(id=7, method=b"PUT", path=b"/0/version", val=b"3.4.0").SerializeToString()
    assert decode_data(0, put)[:2] == ("v2", 'v2 method=PUT path="/0/version" val="3.4.0"')
    sync = v2(id=8, method=b"SYNC", time=1_700_000_000_000_000_000).SerializeToString()
    assert _summary(sync) == "v2 method=SYNC time=2023-11-14T22:13:20Z"
    qget = v2(method=b"QGET", path=b"/x", val=b"hidden").SerializeToString()
    assert _summary(qget) == 'v2 method=QGET path="/x"'
    # "POST" is valid protobuf as a nested message but etcd's unmarshaller refuses it
    post = v2(id=9, method=b"POST", path=b"/p", val=b"1").SerializeToString()
    assert decode_data(0, post)[0] == "v2"

    cc = ConfChange(id=3, type=3, node_id=0xAB, context=b'{"name":"m","peerURLs":["http://p"]}')
    assert decode_entry(Entry(term=2, index=9, type=1, data=cc.SerializeToString())).summary == (
        'conf_change AddLearnerNode node=ab name="m" peer_urls=["http://p"]'
    )
    cc2 = ConfChangeV2(transition=1, changes=[ConfChangeSingle(type=0, node_id=1)])
    assert _summary(cc2.SerializeToString(), type=2) == (
        "conf_change_v2 transition=JointImplicit changes=[AddNode node=1]"
    )
    assert decode_entry(Entry(term=2, index=10, type=0, data=b"")).kind == "noop"
    assert decode_entry(Entry(term=2, index=11, type=0)).kind == "noop"
    kind, _, request = decode_data(0, b"\xff\xff\xff")
    assert kind == "unknown" and request == {"hex": "ffffff"}


# --- diskcheck -------------------------------------------------------------------------


def test_diskcheck_reports_sane_numbers(tmp_path: Path) -> None:
    r = run("diskcheck", str(tmp_path), "--seconds", "0.6", "--json")
    assert r.returncode in (0, 1), r.stderr  # 1: this disk is too slow, still a report
    rep = json.loads(r.stdout)
    assert set(rep["results"]) == {"preallocated", "append", "raftwal"}
    for res in rep["results"].values():
        f = res["fdatasync_ms"]
        assert res["writes"] > 0 and res["writes_per_second"] > 0
        assert 0 <= f["p50"] <= f["p90"] <= f["p99"] <= f["max"]
        assert f["mean"] <= f["max"]
    v = rep["verdict"]
    assert v["p99_fdatasync_ms"] == rep["results"]["preallocated"]["fdatasync_ms"]["p99"]
    assert v["ok"] == (v["p99_fdatasync_ms"] < 10.0) and v["threshold_ms"] == 10.0
    assert r.returncode == (0 if v["ok"] else 1)
    assert rep["block_size"] == 2300 and rep["filesystem"]
    assert list(tmp_path.iterdir()) == []  # the scratch files are gone

    r = run("diskcheck", str(tmp_path), "--seconds", "0.3", "--no-wal")
    assert r.returncode in (0, 1), r.stderr
    assert "preallocated" in r.stdout and "p99 fdatasync" in r.stdout
    assert "raftwal WAL.save" not in r.stdout


# --- bench wiring ----------------------------------------------------------------------


def test_bench_help_comes_from_raftwal_bench() -> None:
    if importlib.util.find_spec("raftwal.cli.bench") is None:
        pytest.skip("raftwal.cli.bench is not part of this build")
    r = run("bench", "--help")
    assert r.returncode == 0, r.stderr
    assert "raftwal bench" in r.stdout and "--quick" in r.stdout
    assert "bench" in run("--help").stdout


def test_bench_without_its_module_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "raftwal.cli.bench", None)  # import now fails
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "raftwal bench" in err and "raftwal.cli.bench" in err


def test_bench_quick_reports_the_targets_rows(tmp_path: Path) -> None:
    """``raftwal bench --quick`` has a row, with its target, for every scenario
    of the speed targets, the new ones included (RSS of the open, save_async
    of 100 entries with 64 in flight, saves of 1000 entries)."""
    if importlib.util.find_spec("raftwal.cli.bench") is None:
        pytest.skip("raftwal.cli.bench is not part of this build")
    argv = ["bench", "--quick", "--json", "--no-sqlite", "--no-lmdb", "--no-chart"]
    r = run(*argv, "--dir", str(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)

    def target(scenario: str, measure: str) -> str:
        """The target of the one row whose scenario starts with ``scenario``
        (is it, with a trailing ``|``) and whose measure starts with ``measure``."""
        exact = scenario.endswith("|")
        (row,) = [
            row
            for row in doc["rows"]
            if (row["scenario"] == scenario[:-1] if exact else row["scenario"].startswith(scenario))
            and row["measure"].startswith(measure)
        ]
        return str(row["target"])

    etcd, disk = "vs etcd Go Save loop", "vs write+fdatasync, zeroed file"
    for how in ("", ", WAL.save_entries (data only)"):
        one, hundred, thousand = (
            f"durable save, {n} x 100 B per save{how}" for n in (1, 100, 1000)
        )
        assert target(one + "|", "saves/s " + etcd) == ">= 1x"
        assert target(one + "|", "saves/s " + disk) == ">= 0.9x"
        assert target(hundred + "|", "entries/s " + disk) == ">= 0.9x"
        assert target(thousand + "|", "entries/s " + etcd) == ">= 1x"
    assert target("save_async, 1 entry per call, 1024 in flight", "") == ">= 10x"
    assert target("save_async, 100 x 100 B per call, 64 in flight", "") == ">= 0.9x"
    assert target("save_entries_async (data only), 100 x 100 B per call", "") == ">= 0.9x"
    assert target("recovery: raftwal.open of 100,000 x 100 B until entries()", "") == "<= 0.2x"
    assert target("peak RSS of that open", "") == "<= 1.5x"
    (rss,) = [row for row in doc["rows"] if row["scenario"].startswith("peak RSS")]
    assert rss["ratio"] is not None and rss["baseline"] == doc["memory"]["wal_bytes"]
    assert "interpreter with raftwal imported" in r.stderr  # the note for scale
    assert list(tmp_path.iterdir()) == []
