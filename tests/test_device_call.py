"""The plan of device calls (crack_utils.tools.device_call, issue 26): every call within the limit."""
import pytest

from crack_utils.tools import device_call as dc

MIB = dc.MIB


def test_wheels_and_data_that_do_not_fit_one_call_go_back_to_back():
    tracked = int(20.2 * MIB)
    carried = [(".gpu/data.npz.part-aa", 18 * MIB), (".gpu/data.npz.part-ab", int(13.1 * MIB)), (".whl", int(25.3 * MIB))]
    assert tracked + sum(s for _, s in carried) > dc.CALL_LIMIT_BYTES  # one call would not hold it all
    calls = dc.plan_calls(tracked, carried)
    assert len(calls) == 2 and all(c.total(tracked) <= dc.CALL_LIMIT_BYTES for c in calls)
    assert [c.runs_study for c in calls] == [False, True]
    assert sorted(p for c in calls for p in c.carry) == sorted(p for p, _ in carried)
    assert "call 2: carry [.whl]" in dc.describe(calls, tracked)


def test_a_tree_at_the_committed_limit_keeps_the_gpu_run_at_two_calls():
    """The tracked-tree limit of crack_utils.study.committed is chosen so that the measured data parts and
    wheels still travel in two calls; a tree 1 MiB over 28.9 MiB would need a third."""
    from crack_utils.study import committed

    half = dc.DATA_PARTS_BYTES // 2
    carried = [(".gpu/data.npz.part-aa", half), (".gpu/data.npz.part-ab", dc.DATA_PARTS_BYTES - half),
               (".whl", dc.WHEELS_BYTES)]
    calls = dc.plan_calls(committed.MAX_TRACKED_BYTES, carried)
    assert len(calls) == 2 and all(c.total(committed.MAX_TRACKED_BYTES) <= dc.CALL_LIMIT_BYTES for c in calls)
    assert len(dc.plan_calls(dc.CALL_LIMIT_BYTES - dc.DATA_PARTS_BYTES + MIB, carried)) == 3


def test_everything_in_one_call_when_it_fits():
    calls = dc.plan_calls(5 * MIB, [(".gpu", 20 * MIB), (".whl", 25 * MIB)])
    assert len(calls) == 1 and calls[0].runs_study and calls[0].carry == [".gpu", ".whl"]


def test_a_piece_that_cannot_fit_is_refused_with_the_sizes():
    with pytest.raises(dc.PlanError, match=r"\.whl is 45\.0 MiB; beside the tracked tree \(20\.0 MiB\) one call holds 40\.0 MiB"):
        dc.plan_calls(20 * MIB, [(".whl", 45 * MIB)])
    with pytest.raises(dc.PlanError, match="tracked tree alone is 67.1 MiB"):
        dc.plan_calls(int(67.1 * MIB), [])


def test_the_carry_list_of_one_call_stays_within_its_path_limit():
    calls = dc.plan_calls(MIB, [(f"p{i}", 1) for i in range(11)])
    assert [len(c.carry) for c in calls] == [8, 3]


def test_data_parts_are_pieces_of_their_own(tmp_path):
    (tmp_path / ".gpu").mkdir()
    for part in ("aa", "ab"):
        (tmp_path / ".gpu" / f"data.npz.part-{part}").write_bytes(b"x" * 10)
    (tmp_path / ".whl").mkdir()
    (tmp_path / ".whl" / "a.whl").write_bytes(b"y" * 7)
    assert dc.pieces([".gpu", ".whl"], tmp_path) == [(".gpu/data.npz.part-aa", 10), (".gpu/data.npz.part-ab", 10), (".whl", 7)]
    with pytest.raises(dc.PlanError, match="does not exist"):
        dc.pieces([".nothing"], tmp_path)


def test_the_plan_of_this_repository_fits(capsys):
    """The tracked tree as committed leaves room for a call; a missing piece is refused (exit 1)."""
    assert dc.main(["--limit-mib", "60", "pyproject.toml"]) == 0
    assert "runs the study" in capsys.readouterr().out
    assert dc.main([".no-such-part"]) == 1
