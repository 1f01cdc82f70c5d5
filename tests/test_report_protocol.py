"""The protocol line: from the trainings' metadata, or from the config when that was not kept."""
import json

from crack_utils.tools import migrate
from crack_utils.paths import repo_root

REPO = repo_root()


def _study(tmp_path, with_trainings: bool):
    out = tmp_path / "study"
    out.mkdir()
    config = {"losses": ["dice"], "seeds": [0, 1], "image_size": 128,
              "training": {"epochs": 5, "samples_per_epoch": 1500, "batch_size": 25, "lr": 5e-4},
              "model": {"encoder": "resnet18"}}
    (out / "study_config.json").write_text(json.dumps(config))
    (out / "table1.md").write_text("| Metric | x |\n|---|---|\n")
    (out / "report.html").write_text("<h1>Crack-loss study: study</h1><h2>Table 1</h2>")
    if with_trainings:
        for seed in (0, 1):
            folder = out / "03_train" / f"dice-seed{seed}"
            folder.mkdir(parents=True)
            summary = {"loss": "dice", "seed": seed, "epochs": 5, "device": "cpu", "precision": "fp32",
                       "best_val_dice": 0.5, "best_epoch": 5, "train_images": 5699, "images_per_epoch": 1500,
                       "passes": 1.3, "image_size": 128, "batch_size": 25, "lr": 5e-4, "lr_schedule": "constant",
                       "plateau": False}
            (folder / "training_summary.json").write_text(json.dumps(summary))
            params = {"SAMPLES_PER_EPOCH": 1500, "BATCH_SIZE": 25, "LR": 5e-4, "ENCODER": "resnet18",
                      "DEVICE": "auto", "AMP": "auto"}
            (folder / "run_metadata.json").write_text(json.dumps({"parameters": params}))
    return out


def test_protocol_from_the_trainings_metadata_is_added_once(tmp_path):
    out = _study(tmp_path, with_trainings=True)
    text = migrate.add_protocol(out)
    assert text == ("Protocol: U-Net (resnet18), 5,699 training images at 128 px; 5 epochs × 1,500 images = 1.3 "
                    "passes over the training split (the paper: 50 epochs); batch 25, Adam lr 0.0005; seed(s) 0, 1; "
                    "device cpu, fp32.")
    migrate.add_protocol(out)  # idempotent
    assert (out / "table1.md").read_text().count("Protocol") == 1 and (out / "protocol.md").read_text() == text + "\n"
    page = (out / "report.html").read_text()
    assert page.count("Protocol") == 1 and page.index("Protocol") < page.index("Table 1")


def test_protocol_from_the_config_when_training_metadata_was_not_kept(tmp_path):
    out = _study(tmp_path, with_trainings=False)
    text = migrate.add_protocol(out)
    assert text.startswith("Protocol (from the study config") and "5 epochs × 1,500 images (the paper: 50 epochs)" in text
    migrate.add_protocol(out)
    assert (out / "table1.md").read_text().count("Protocol") == 1


def test_committed_studies_state_their_protocol():
    for study in sorted(p.name for p in (REPO / "results").glob("lodo_*")):
        table = (REPO / "results" / study / "table1.md").read_text()
        assert table.startswith("Protocol"), study
