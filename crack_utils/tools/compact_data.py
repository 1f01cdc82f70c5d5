"""A compact encoding of a study's prepared arrays, to carry the real data to a machine without
``../shared`` (a lent GPU machine takes at most 64 MiB per call; the 128-px arrays of the six datasets are
about 490 MB as ``prepared.npz``).

* Images: JPEG at ``quality`` (OpenCV, 4:2:0 chroma subsampling), one byte string per image — lossy; the
  effect on the scores of trained models is measured by :func:`score_effect` (see results/README.md).
* Masks: bit-packed (``numpy.packbits``) — lossless.

``encode_prepared(data_dir, out)`` writes one ``.npz`` (``jpeg`` bytes concatenated, ``offsets``,
``masks_packed``, ``ids``, ``size``); ``decode_prepared(compact, data_dir)`` writes ``prepared.npz`` back in
the layout :func:`crack_utils.preprocess.save_cache` uses, so the pipeline's later stages read it unchanged.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from crack_utils.preprocess import load_cache, save_cache
from crack_utils.study.layout import PREPARED_ARRAYS as PREPARED



def encode_images(images: np.ndarray, quality: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB (N, S, S, 3) -> (bytes uint8 (total,), offsets int64 (N + 1,)) of JPEGs at ``quality``."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    chunks = []
    for image in images:
        ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        chunks.append(buffer.ravel())
    offsets = np.zeros(len(chunks) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)), offsets


def decode_images(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_images`: uint8 RGB (N, S, S, 3)."""
    images = [cv2.cvtColor(cv2.imdecode(data[a:b], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
              for a, b in zip(offsets[:-1], offsets[1:])]
    return np.stack(images) if images else np.zeros((0, 0, 0, 3), np.uint8)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """uint8 {0, 1} (N, S, S) -> packed bits uint8 (N, ceil(S*S/8)) (lossless)."""
    return np.packbits(np.asarray(masks, bool).reshape(len(masks), -1), axis=1)


def unpack_masks(packed: np.ndarray, size: int) -> np.ndarray:
    """Inverse of :func:`pack_masks`: uint8 {0, 1} (N, size, size)."""
    bits = np.unpackbits(packed, axis=1, count=size * size)
    return bits.reshape(len(packed), size, size).astype(np.uint8)


def encode_prepared(data_dir: str | Path, out: str | Path, quality: int = 90) -> Path:
    """Write the compact encoding of ``data_dir/prepared.npz`` to ``out``; returns ``out``."""
    images, masks, ids = load_cache(Path(data_dir) / PREPARED)
    data, offsets = encode_images(images, quality)
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"the compact file must end in .npz, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, jpeg=data, offsets=offsets, masks_packed=pack_masks(masks), ids=ids,
                        size=np.int64(images.shape[1]), quality=np.int64(quality))
    return out


def read_compact(compact: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images, masks, ids)`` decoded from a file written by :func:`encode_prepared`."""
    with np.load(compact) as z:
        return decode_images(z["jpeg"], z["offsets"]), unpack_masks(z["masks_packed"], int(z["size"])), z["ids"]


def decode_prepared(compact: str | Path, data_dir: str | Path) -> Path:
    """Write ``data_dir/prepared.npz`` from a compact file (atomically); returns its path."""
    images, masks, ids = read_compact(compact)
    return save_cache(Path(data_dir) / PREPARED, images, masks, ids)


def score_effect(checkpoint: str | Path, data_dir: str | Path, quality: int = 90, split: str = "test",
                 encoder: str | None = None, batch_size: int | None = None, **model_options) -> dict:
    """Pooled test scores of one trained model on the prepared images and on the same images through the
    JPEG round trip at ``quality``: ``{"original": {...}, "jpeg": {...}, "mean_abs_grey_change": float}``.
    ``encoder``, ``batch_size``: the study's defaults when None."""
    from crack_utils import manifest as mf, model as models, paper

    encoder = encoder or models.DEFAULT_ENCODER
    batch_size = batch_size or paper.BATCH_SIZE
    from crack_utils.evaluation import predict_probabilities
    from crack_utils.metrics import pooled_scores
    from crack_utils.training import load_checkpoint

    _, images, masks = mf.load_split(Path(data_dir), split)
    roundtrip = decode_images(*encode_images(images, quality))
    net = models.build_model(encoder, None, **model_options)
    load_checkpoint(net, checkpoint)
    out = {}
    for name, batch in (("original", images), ("jpeg", roundtrip)):
        probabilities = predict_probabilities(net, batch, batch_size=batch_size)
        out[name] = pooled_scores(probabilities > 0.5, masks > 0)
    out["mean_abs_grey_change"] = float(np.abs(roundtrip.astype(np.int16) - images).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crack_utils.tools.compact_data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="prepared.npz of a data folder -> compact file")
    enc.add_argument("data_dir")
    enc.add_argument("out")
    enc.add_argument("--quality", type=int, default=90)
    dec = sub.add_parser("decode", help="compact file -> prepared.npz in a data folder")
    dec.add_argument("compact")
    dec.add_argument("data_dir")
    score = sub.add_parser("score", help="pooled test scores of a checkpoint on original vs JPEG-round-tripped images")
    score.add_argument("checkpoint")
    score.add_argument("data_dir")
    score.add_argument("--quality", type=int, default=90)
    args = parser.parse_args(argv)
    try:
        if args.command == "score":
            import json

            print(json.dumps(score_effect(args.checkpoint, args.data_dir, args.quality), indent=1))
        elif args.command == "encode":
            out = encode_prepared(args.data_dir, args.out, args.quality)
            print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB")
        else:
            print(decode_prepared(args.compact, args.data_dir))
    except (FileNotFoundError, ValueError, KeyError, OSError) as err:  # OSError: e.g. a truncated (zip) file
        print(f"compact_data: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
