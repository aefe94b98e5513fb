"""`clipprefix caption` end to end on real files with the tiny preset."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from clipprefix import synthetic
from clipprefix.apps import cli
from clipprefix.apps.display import compare_decoding
from clipprefix.apps.inputs import collect_inputs
from clipprefix.apps.options import load_captioner


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("apps")
    rng = np.random.default_rng(0)
    imgs = root / "imgs"
    for i, still in enumerate(synthetic.STILLS[::20][:5]):
        synthetic.write_image(imgs / f"im{i}.jpg", synthetic.draw_still(still, rng))
    vids = root / "vids"
    synthetic.make_video(vids / "a.mp4", n_scenes=2, scene_seconds=1.0, fps=10)
    synthetic.make_video(vids / "b.mp4", seed=1, n_scenes=3, scene_seconds=1.0, fps=10)
    return root


def run(capsys, *argv):
    rc = cli.main(["caption", *map(str, argv), "--model", "tiny", "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_images_print_path_tab_caption_in_input_order(media, capsys):
    before = listing(media)
    paths = sorted((media / "imgs").glob("*.jpg"))[::-1]
    rc, out, err = run(capsys, *paths)
    lines = out.splitlines()
    assert rc == 0 and err == ""
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in paths]
    expected = load_captioner("tiny").caption_images(paths)
    assert [line.split("\t", 1)[1] for line in lines] == [c.text for c in expected]
    assert listing(media) == before                      # nothing written beside the inputs


def test_dtype_option_runs_the_whole_captioner_in_it(media, capsys):
    import torch

    paths = sorted((media / "imgs").glob("*.jpg"))
    rc, out, err = run(capsys, *paths, "--dtype", "bf16")
    assert rc == 0 and err == "" and len(out.splitlines()) == len(paths)
    bf = load_captioner("tiny", dtype="bf16")
    assert bf.dtype == torch.bfloat16 and bf.encoder.dtype == torch.bfloat16
    assert [line.split("\t", 1)[1] for line in out.splitlines()] == [c.text for c in bf.caption_images(paths)]
    with pytest.raises(SystemExit) as e:
        run(capsys, *paths, "--dtype", "int4")
    assert e.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err


def test_json_lines_carry_alternatives_and_settings(media, capsys):
    rc, out, _ = run(capsys, media / "imgs" / "im0.jpg", "--json", "--strategy", "beam", "--num-beams", "4",
                     "--num-return-sequences", "3", "--max-new-tokens", "5")
    rec = json.loads(out)
    assert rc == 0 and rec["path"].endswith("im0.jpg")
    assert len(rec["alternatives"]) == 2 and all({"text", "score"} <= set(a) for a in rec["alternatives"])
    assert rec["score"] >= max(a["score"] for a in rec["alternatives"])
    assert rec["generation"]["strategy"] == "beam" and rec["generation"]["num_beams"] == 4
    assert rec["generation"]["max_new_tokens"] == 5


def test_folders_globs_and_a_bad_file_among_good_ones_in_small_batches(media, tmp_path, capsys):
    work = tmp_path / "mixed"
    shutil.copytree(media / "imgs", work)
    (work / "im2.jpg").write_bytes(b"not a jpeg")
    rc, out, err = run(capsys, work, "--batch-size", "2")
    rc1, out1, _ = run(capsys, f"{work}/im[0134].jpg", "--batch-size", "1")
    assert rc == 1 and rc1 == 0                        # 1: some inputs failed, the others were captioned
    assert err.count("error:") == 1 and "im2.jpg" in err and "Traceback" not in err
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(work / f"im{i}.jpg") for i in (0, 1, 3, 4)]
    assert out == out1                                  # batching and the bad file change nothing else


def test_render_writes_each_image_with_its_caption(media, tmp_path, capsys):
    rc, out, _ = run(capsys, media / "imgs", "--render", tmp_path / "r")
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert rc == 0 and names == [f"im{i}.jpg" for i in range(5)]
    with Image.open(tmp_path / "r" / "im0.jpg") as im:
        assert im.width == 384 and im.height > 384


def test_videos_write_srt_vtt_json_into_a_folder_next_to_each(media, tmp_path, capsys):
    work = tmp_path / "v"
    shutil.copytree(media / "vids", work)
    rc, out, err = run(capsys, work, "--segments", "4")
    assert rc == 0, err
    assert listing(work) == ["a.mp4", "a_captions", "a_captions/a.json", "a_captions/a.srt", "a_captions/a.vtt",
                             "b.mp4", "b_captions", "b_captions/b.json", "b_captions/b.srt", "b_captions/b.vtt"]
    data = json.loads((work / "b_captions" / "b.json").read_text())
    assert data["segmentation"] == "uniform:4" and data["segments"][-1]["end"] == 3.0
    assert sum(len(s["parts"]) for s in data["segments"]) == 4
    assert out.splitlines()[0].startswith(f"{work / 'a.mp4'}\t{work / 'a_captions' / 'a.srt'}")


def test_videos_with_one_out_folder_and_extras(media, tmp_path, capsys):
    rc, out, err = run(capsys, media / "vids" / "a.mp4", media / "vids" / "b.mp4", "--out", tmp_path / "o",
                       "--scenes", "--keyframes", "--preview", "--formats", "srt", "--json")
    recs = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [r["segments"] for r in recs] == [2, 3]
    assert listing(tmp_path / "o")[:3] == ["a.srt", "a_keyframes", "a_keyframes/0001_00-00-00.000.jpg"]
    assert (tmp_path / "o" / "b_preview.mp4").is_file() and not (tmp_path / "o" / "a.vtt").exists()


def test_a_bad_video_is_reported_and_skipped(media, tmp_path, capsys):
    work = tmp_path / "v"
    shutil.copytree(media / "vids", work)
    (work / "broken.mp4").write_bytes((work / "a.mp4").read_bytes()[:2000])
    rc, out, err = run(capsys, work, "--out", tmp_path / "o")
    assert rc == 1 and "broken.mp4" in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.json", "a.srt", "a.vtt",
                                                                  "b.json", "b.srt", "b.vtt"]


def test_collect_inputs_skips_our_own_outputs_and_dedups(media):
    found = collect_inputs([str(media / "imgs"), str(media / "imgs" / "im0.jpg"), str(media / "vids")])
    assert [p.name for p in found.images] == [f"im{i}.jpg" for i in range(5)]
    assert [p.name for p in found.videos] == ["a.mp4", "b.mp4"] and found.errors == []


def test_compare_decoding_side_by_side(media):
    cap = load_captioner("tiny")
    paths = sorted((media / "imgs").glob("*.jpg"))[:3]
    table = compare_decoding(cap, paths)
    assert list(table.captions) == ["greedy", "beam (5)", "sample (T=0.7, p=0.9)"]
    assert [c.text for c in table.captions["greedy"]] == [c.text for c in cap.caption_images(paths)]
    assert all(len(v) == 3 for v in table.captions.values())
    assert table._repr_html_().count("<img") == 3
