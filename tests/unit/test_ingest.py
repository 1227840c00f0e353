from mediasift.cli.uploads import plan_uploads


def test_a_file_gets_prefix_plus_name_and_a_directory_keeps_relative_paths(tmp_path):
    (tmp_path / "clips" / "day 1").mkdir(parents=True)
    (tmp_path / "clips" / "day 1" / "ünï.mp4").write_bytes(b"x")
    (tmp_path / "clips" / "a.pdf").write_bytes(b"x")
    (tmp_path / "single.jpg").write_bytes(b"x")
    plan = plan_uploads([tmp_path / "clips", tmp_path / "single.jpg"], "in/")
    assert [u.key for u in plan] == ["in/a.pdf", "in/day 1/ünï.mp4", "in/single.jpg"]
