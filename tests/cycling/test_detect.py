"""Detection by content, the fixed schema of every output, and clear errors for non-tester files."""

from __future__ import annotations

import os
import shutil

import pytest

from batteryloop.cycling import SCHEMA, CyclerFileError, detect, read, read_pandas
from batteryloop.errors import ValidationFailed

EXPECTED = {
    "arbin/FastCharge_000025_CH8.csv": "arbin_csv",
    "arbin/2017-05-09_test-TC-contact_CH33.csv": "arbin_csv",
    "arbin/20160805_test001_45_cc_01.res": "arbin_res",
    "maccor/PreDiag_000229_000229_truncated.034": "maccor_raw",
    "maccor/PredictionDiagnostics_000109_tztest.010": "maccor_raw",
    "maccor/xTESLADIAG_000019_CH70.070": "maccor_raw",
    "maccor/maccor_001.txt": "maccor_text",
    "neware/neware_uio.csv": "neware_csv",
    "neware/filetype14-0.ndax": "neware_nda",
    "biologic/biol.mpr": "biologic_mpr",
    "biologic/GCPL-0.mpr": "biologic_mpr",
    "biologic/test_loopsnewoutput_MB_CE1_short10k.csv": "biologic_text",
    "novonix/test_Nova_Form-CH01-01_short.csv": "novonix_csv",
    "pec/pec.csv": "pec_csv",
    "bdf/DLR__LiGrHydra0b__20230131__POCV__25degC__Basytec.bdf.csv": "bdf_csv",
    "bdf/DLR__LiLNMOHydra0b__20221125__POCV__25degC__Basytec.bdf.csv": "bdf_csv",
    "bdf/SINTEF__LiGrR2032__2024-04-30__25degC__Landt.bdf.csv": "bdf_csv",
    "bdf/SINTEF__LiGrR2032__2024-04-30__25degC__Landt.csv": "landt_csv",
    "bdf/batmo_bdf.csv": "bdf_csv",
}


def test_every_shared_cycler_file_is_covered(shared_dir):
    """A new file in shared/data/cyclers must get an expected reader here."""
    root = shared_dir / "data" / "cyclers"
    data = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    sidecars = {d for d in data if d.lower().endswith(("_metadata.csv", ".mpl"))}
    assert data - sidecars == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_detect_and_schema(cycler_file, rel):
    path = cycler_file(rel)
    if rel.endswith(".res") and shutil.which("mdb-export") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mdbtools (mdb-export) missing under CI")
        pytest.skip("mdbtools not installed")
    assert detect(path).name == EXPECTED[rel]
    if rel.endswith(".ndax"):
        pytest.importorskip("NewareNDA")  # a project dependency (pyproject), BSD-3-Clause
    df, meta = read(path)
    assert df.schema == SCHEMA
    assert df.height > 0 and len(meta.sha256) == 64
    assert df["step_count"].diff().drop_nulls().min() >= 0
    assert df["cycle_count"].diff().drop_nulls().min() >= 0
    assert df["cycle_count"].null_count() == 0 and df["step_type"].null_count() == 0
    # test-cumulative capacities never decrease (BDF definition)
    for col in ("charging_capacity_ah", "discharging_capacity_ah"):
        assert df[col].diff().drop_nulls().min() >= -1e-12


def test_detection_uses_content_not_extension(cycler_file, tmp_path):
    src = cycler_file("maccor/xTESLADIAG_000019_CH70.070")
    disguised = tmp_path / "looks_like_arbin.csv"
    shutil.copy(src, disguised)
    assert detect(disguised).name == "maccor_raw"


def test_text_file_renamed_mpr_is_refused_by_name(tmp_path):
    fake = tmp_path / "notes.mpr"
    fake.write_text("this is a lab note, not a BioLogic file\n" * 20)
    with pytest.raises(CyclerFileError) as err:
        read(fake)
    assert str(fake) in str(err.value) and "not a recognised" in str(err.value)
    assert isinstance(err.value, ValidationFailed)


def test_garbage_and_empty_files(tmp_path):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(CyclerFileError, match="junk.csv"):
        read(junk)
    empty = tmp_path / "empty.010"
    empty.write_bytes(b"")
    with pytest.raises(CyclerFileError, match="empty"):
        read(empty)
    with pytest.raises(CyclerFileError, match="cannot open"):
        read(tmp_path / "missing.csv")


def test_read_pandas(cycler_file):
    pytest.importorskip("pandas")
    pdf, _ = read_pandas(cycler_file("arbin/FastCharge_000025_CH8.csv"))
    assert list(pdf.columns) == list(SCHEMA.names()) and len(pdf) == 248
