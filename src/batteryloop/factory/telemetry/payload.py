"""The MQTT topic and payload scheme of plant telemetry, and its decoding into columns.

Topics (``root`` defaults to ``batteryloop/plant``; ``line`` is ``[a-z0-9][a-z0-9_-]*``):

- ``<root>/<line>/<tag>``: one sample of one tag, payload
  ``{"ts": 1717200000000, "value": 12.3, "unit": "degC"}``;
- ``<root>/<line>/_batch``: a frame of samples as equal-length columns, payload
  ``{"tag": ["a", ...], "ts": [...], "value": [...], "unit": [...]}`` (one message, many
  samples: what a gateway sends to cut per-message overhead).

``ts`` is epoch milliseconds (an integer, UTC) or an RFC 3339 string with an offset
(``2024-06-01T08:00:00.250+08:00``; a time without an offset is refused, it is ambiguous).
``value`` is a finite number (a numeric string is read as its number). ``unit`` is required and
must be the tag's unit exactly as ``factory/data/tags.toml`` spells it: a reading in another unit
is a unit mismatch, quarantined, never converted. Other keys are ignored. Payloads are UTF-8 JSON.

Decoding works on whole batches: the payloads are joined into one NDJSON text and parsed by polars
in one call; only when a batch fails to parse is it bisected to find the bad messages, so a good
stream never pays per message. Every message comes out either as samples or as a ``malformed``
record that names what is wrong; nothing is dropped.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
import polars as pl

DEFAULT_ROOT = "batteryloop/plant"
FRAME_LEVEL = "_batch"
LINE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
LINE_NAME = re.compile(LINE_PATTERN)
UNKNOWN_LINE = "_unknown"

_SINGLE = {"ts": pl.String, "value": pl.String, "unit": pl.String}
_FRAME = {k: pl.List(pl.String) for k in ("tag", "ts", "value", "unit")}
TS = pl.Datetime("us", "UTC")

# What decode hands on: parsed samples, and records that could not be parsed (reason malformed).
SAMPLE_SCHEMA = {
    "msg": pl.Int64, "line": pl.String, "tag": pl.String, "ts": TS, "value": pl.Float64,
    "unit": pl.String, "ts_text": pl.String, "value_text": pl.String,
}
REJECT_SCHEMA = {
    "msg": pl.Int64, "line": pl.String, "tag": pl.String, "ts_text": pl.String,
    "value_text": pl.String, "unit": pl.String, "detail": pl.String,
}


def sample_topic(line: str, tag: str, root: str = DEFAULT_ROOT) -> str:
    return f"{root}/{line}/{tag}"


def frame_topic(line: str, root: str = DEFAULT_ROOT) -> str:
    return f"{root}/{line}/{FRAME_LEVEL}"


def subscription(root: str = DEFAULT_ROOT, line: str = "+") -> str:
    return f"{root}/{line}/+"


def _epoch_ms(ts: pl.Expr) -> pl.Expr:
    return ts.dt.replace_time_zone("UTC").dt.cast_time_unit("ms").dt.epoch("ms")


def encode_samples(frame: pl.DataFrame) -> list[bytes]:
    """One single-sample payload per row of ``frame[ts, tag, value, unit]``, built in columns."""
    text = frame.select(
        pl.concat_str(
            pl.lit('{"ts":'), _epoch_ms(pl.col("ts")).cast(pl.String),
            pl.lit(',"value":'), pl.col("value").cast(pl.String),
            pl.lit(',"unit":'), pl.col("unit").map_batches(_json_strings, return_dtype=pl.String),
            pl.lit("}"),
        )
    ).to_series()
    return [s.encode() for s in text.to_list()]


def _json_strings(units: pl.Series) -> pl.Series:
    """Each distinct unit JSON-quoted once (units are few), mapped back onto the column."""
    distinct = units.unique()
    quoted = {u: orjson.dumps(u).decode() for u in distinct.to_list()}
    return units.replace_strict(quoted, return_dtype=pl.String)


def encode_frame(frame: pl.DataFrame) -> bytes:
    """One ``_batch`` payload holding every row of ``frame[ts, tag, value, unit]``."""
    cols = frame.select(
        pl.col("tag"), _epoch_ms(pl.col("ts")).alias("ts"), pl.col("value"), pl.col("unit")
    )
    return orjson.dumps({name: cols[name].to_list() for name in ("tag", "ts", "value", "unit")})


def encode_sample(ts: datetime | int, value: float, unit: str) -> bytes:
    ms = ts if isinstance(ts, int) else int(ts.timestamp() * 1000)
    return orjson.dumps({"ts": ms, "value": value, "unit": unit})


@dataclass
class Decoded:
    samples: pl.DataFrame  # SAMPLE_SCHEMA
    rejects: pl.DataFrame  # REJECT_SCHEMA: every one is a malformed record


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _read_chunk(payloads: Sequence[bytes], schema: dict) -> pl.DataFrame:
    frame = pl.read_ndjson(io.BytesIO(b"\n".join(payloads)), schema=schema)
    if frame.height != len(payloads):  # an empty payload or an embedded line break
        raise ValueError("line count differs")
    return frame


def _read_one(payload: bytes, schema: dict) -> pl.DataFrame | str:
    """The slow path for one message: a readable object, or why not."""
    if not payload.strip():
        return "empty payload"
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return "payload is not UTF-8"
    if payload.lstrip()[:1] != b"{":
        return "payload is not a JSON object"
    try:  # a pretty-printed object is still one object: line breaks are JSON whitespace
        return _read_chunk([payload.replace(b"\r", b" ").replace(b"\n", b" ")], schema)
    except Exception as exc:  # noqa: BLE001 - any parse failure makes the message malformed
        return f"not a valid payload: {_first_line(exc)}"


def _read_all(
    payloads: Sequence[bytes], schema: dict, index: list[int]
) -> tuple[list[pl.DataFrame], list[int], list[tuple[int, str]]]:
    """Parse in one call; on failure bisect, so only bad messages take the slow path."""
    if not payloads:
        return [], [], []
    try:
        return [_read_chunk(payloads, schema)], list(index), []
    except Exception:  # noqa: BLE001 - bisect below finds which messages broke it
        pass
    if len(payloads) == 1:
        got = _read_one(payloads[0], schema)
        if isinstance(got, str):
            return [], [], [(index[0], got)]
        return [got], list(index), []
    mid = len(payloads) // 2
    f1, i1, b1 = _read_all(payloads[:mid], schema, index[:mid])
    f2, i2, b2 = _read_all(payloads[mid:], schema, index[mid:])
    return f1 + f2, i1 + i2, b1 + b2


def parse_fields(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """ts/value/unit text -> typed columns; rows that do not parse become malformed rejects."""
    digits = pl.col("ts_text").str.contains(r"^-?\d{1,15}$")
    rfc = (
        pl.col("ts_text").str.replace(r"[Zz]$", "+00:00").str.replace(r"^(\S{10})[ tT]", "${1}T")
        .str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", strict=False,
                         time_unit="us")
    )
    epoch = pl.from_epoch(
        pl.when(digits).then(pl.col("ts_text")).str.to_integer(strict=False), time_unit="ms"
    ).dt.replace_time_zone("UTC").dt.cast_time_unit("us")
    typed = raw.with_columns(
        ts=pl.when(digits).then(epoch).otherwise(rfc),
        value=pl.col("value_text").cast(pl.Float64, strict=False),
    )
    detail = (
        pl.when(pl.col("tag").is_null() | (pl.col("tag") == "")).then(pl.lit("missing 'tag'"))
        .when(pl.col("ts_text").is_null()).then(pl.lit("missing 'ts'"))
        .when(pl.col("ts").is_null()).then(
            pl.lit("'ts' is neither epoch milliseconds nor RFC 3339 with an offset"))
        .when(pl.col("value_text").is_null()).then(pl.lit("missing 'value'"))
        .when(pl.col("value").is_null() | pl.col("value").is_infinite() | pl.col("value").is_nan())
        .then(pl.lit("'value' is not a finite number"))
        .when(pl.col("unit").is_null() | (pl.col("unit") == "")).then(pl.lit("missing 'unit'"))
    )
    typed = typed.with_columns(detail=detail)
    good = typed.filter(pl.col("detail").is_null()).select(list(SAMPLE_SCHEMA))
    bad = typed.filter(pl.col("detail").is_not_null()).select(list(REJECT_SCHEMA))
    return good, bad


def decode(
    topics: Sequence[str], payloads: Sequence[bytes], *, root: str = DEFAULT_ROOT
) -> Decoded:
    """Messages -> samples and malformed records, in columns; ``msg`` indexes the input."""
    prefix = root.rstrip("/") + "/"
    route = pl.DataFrame({"topic": list(topics)}, schema={"topic": pl.String}).with_row_index(
        "msg"
    ).with_columns(pl.col("msg").cast(pl.Int64))
    parts = pl.col("topic").str.strip_prefix(prefix).str.split("/")
    route = route.with_columns(
        inside=pl.col("topic").str.starts_with(prefix),
        levels=parts.list.len(),
        line=parts.list.get(0, null_on_oob=True),
        tag=parts.list.get(1, null_on_oob=True),
    ).with_columns(
        topic_ok=pl.col("inside") & (pl.col("levels") == 2)
        & pl.col("line").str.contains(LINE_PATTERN)
        & (pl.col("tag").str.len_chars() > 0)
    )
    kinds = route.select(
        "msg", "line", "tag", "topic_ok", frame=pl.col("tag") == FRAME_LEVEL
    )
    bad_topic = kinds.filter(~pl.col("topic_ok"))
    single_idx = kinds.filter(pl.col("topic_ok") & ~pl.col("frame"))["msg"].to_list()
    frame_idx = kinds.filter(pl.col("topic_ok") & pl.col("frame"))["msg"].to_list()

    rejects: list[pl.DataFrame] = []
    if bad_topic.height:
        rejects.append(bad_topic.select(
            "msg",
            line=pl.lit(UNKNOWN_LINE),
            tag=pl.lit(None, pl.String),
            ts_text=pl.lit(None, pl.String), value_text=pl.lit(None, pl.String),
            unit=pl.lit(None, pl.String),
            detail=pl.lit(f"topic is not {prefix}<line>/<tag> or {prefix}<line>/{FRAME_LEVEL}"),
        ))
    samples: list[pl.DataFrame] = []
    lines = kinds.select("msg", "line", "tag")

    # single-sample messages: one NDJSON parse for the lot
    frames, ok, bad = _read_all([payloads[i] for i in single_idx], _SINGLE, single_idx)
    if bad:
        rejects.append(_message_rejects(bad, lines))
    if frames:
        got = pl.concat(frames).with_columns(msg=pl.Series(ok, dtype=pl.Int64))
        got = got.join(lines, on="msg", how="left").rename(
            {"ts": "ts_text", "value": "value_text"})
        good, bad_rows = parse_fields(got)
        samples.append(good)
        rejects.append(bad_rows)

    # frame messages: parse the column arrays, check their lengths, explode to samples
    frames, ok, bad = _read_all([payloads[i] for i in frame_idx], _FRAME, frame_idx)
    if bad:
        rejects.append(_message_rejects(bad, lines))
    if frames:
        got = pl.concat(frames).with_columns(msg=pl.Series(ok, dtype=pl.Int64))
        got = got.join(lines.select("msg", "line"), on="msg", how="left")
        lens = got.select(
            "msg", "line",
            n_tag=pl.col("tag").list.len(), n_ts=pl.col("ts").list.len(),
            n_value=pl.col("value").list.len(), n_unit=pl.col("unit").list.len(),
        )
        same = (
            (pl.col("n_tag") == pl.col("n_ts")) & (pl.col("n_tag") == pl.col("n_value"))
            & (pl.col("n_tag") == pl.col("n_unit")) & (pl.col("n_tag") > 0)
        ).fill_null(False)
        uneven = lens.filter(~same)["msg"].to_list()
        if uneven:
            rejects.append(_message_rejects(
                [(m, "frame needs non-empty 'tag', 'ts', 'value', 'unit' arrays of equal length")
                 for m in uneven], lines))
        exploded = got.filter(~pl.col("msg").is_in(uneven)).explode(["tag", "ts", "value", "unit"])
        good, bad_rows = parse_fields(
            exploded.rename({"ts": "ts_text", "value": "value_text"})
        )
        samples.append(good)
        rejects.append(bad_rows)

    out_samples = pl.concat([s.cast(SAMPLE_SCHEMA) for s in samples]) if samples else (
        pl.DataFrame(schema=SAMPLE_SCHEMA))
    out_rejects = pl.concat([r.cast(REJECT_SCHEMA) for r in rejects]) if rejects else (
        pl.DataFrame(schema=REJECT_SCHEMA))
    return Decoded(out_samples, out_rejects)


def _message_rejects(bad: list[tuple[int, str]], lines: pl.DataFrame) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"msg": [m for m, _ in bad], "detail": [d for _, d in bad]},
        schema={"msg": pl.Int64, "detail": pl.String},
    )
    return frame.join(lines, on="msg", how="left").with_columns(
        tag=pl.when(pl.col("tag") == FRAME_LEVEL).then(None).otherwise(pl.col("tag")),
        ts_text=pl.lit(None, pl.String), value_text=pl.lit(None, pl.String),
        unit=pl.lit(None, pl.String),
    ).select(list(REJECT_SCHEMA))
